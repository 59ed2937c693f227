"""`gen serve`: its request checks, and its HTTP API on a real uvicorn server over loopback, with the tiny trained
generator and captioner (conftest.py): scored results best first, seeds, bad input, cancelling, PNG parameters,
and a burst of concurrent requests against the bounded queue."""
from __future__ import annotations

import io
import sys
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import one_error_line
from gen.core.config import SampleConfig
from gen.core.errors import UserError
from gen.generator.png_params import DrawParams, read_params
from gen.serve.request import MAX_COUNT, MAX_STEPS, RANDOM_SEEDS, parse_request

pytest.importorskip("fastapi", reason="gen serve's tests need the serve extra: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="gen serve's tests need the serve extra: pip install -e '.[serve]'")

from gen.serve.jobs import WAITING  # noqa: E402
from gen.serve.server import build_app, is_loopback  # noqa: E402
from serve_support import call, fetch, running, served, wait_for  # noqa: E402

PROMPT = "a red circle on the left"
SAMPLERS = ["DPMSolverMultistepScheduler", "DDIMScheduler"]


@pytest.fixture(scope="module")
def server(gen_run, captioner_dir):
    """Base URL of `gen serve` on the tiny models, as `gen serve` builds it (loopback Host names only)."""
    with served(gen_run / "model", captioner_dir) as base:
        yield base


def draw(base: str, **fields) -> dict:
    status, job = call("POST", f"{base}/api/generate", {"prompt": PROMPT, "steps": 3, **fields})
    assert status == 202, job
    return wait_for(base, job["id"])


def pixels(base: str, url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(fetch(base + url))), dtype=int)


# ---------------------------------------------------------------- request checks (no server)


def test_a_request_takes_the_models_defaults_and_a_random_seed():
    request = parse_request({"prompt": "  a blue square  "}, SAMPLERS, SampleConfig(steps=7, guidance=2.5))
    assert (request.prompt, request.steps, request.guidance, request.count) == ("a blue square", 7, 2.5, 4)
    assert request.scheduler == SAMPLERS[0] and request.negative_prompt == ""
    assert 0 <= request.seed < RANDOM_SEEDS
    # A form's text boxes send digits as strings; they count as numbers.
    request = parse_request({"prompt": "x", "seed": "12", "steps": "5", "guidance": "1.5", "count": "2",
                             "scheduler": "DDIMScheduler"}, SAMPLERS, SampleConfig())
    assert (request.seed, request.steps, request.guidance, request.count, request.scheduler) == \
        (12, 5, 1.5, 2, "DDIMScheduler")
    assert request.params(1, "m") == DrawParams(prompt="x", seed=13, steps=5, guidance=1.5, negative_prompt="",
                                                scheduler="DDIMScheduler", model="m")


@pytest.mark.parametrize("fields, message", [
    ({"prompt": "   "}, "the prompt is empty"),
    ({"prompt": "x", "steps": MAX_STEPS + 1}, f"steps must be from 1 to {MAX_STEPS}, not {MAX_STEPS + 1}"),
    ({"prompt": "x", "count": 0}, f"count must be from 1 to {MAX_COUNT}, not 0"),
    ({"prompt": "x", "count": 2.5}, "count must be a whole number, not 2.5"),
    ({"prompt": "x", "steps": "abc"}, "steps must be a whole number, not 'abc'"),
    ({"prompt": "x", "guidance": "lots"}, "guidance must be a number, not 'lots'"),
    ({"prompt": "x", "guidance": float("nan")}, "guidance must be a finite number"),
    ({"prompt": "x", "seed": -1}, "seed must be from 0 to"),
    ({"prompt": "x", "scheduler": "os.system"}, "unknown sampler 'os.system'; choose one of"),
    ({"prompt": "x" * 301}, "prompt is 301 characters long; at most 300"),
    ({"prompt": "x", "stepz": 3}, "unknown field 'stepz'"),
    (["x"], "the request must be a JSON object"),
])
def test_bad_requests_are_refused_with_a_message(fields, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_request(fields, SAMPLERS, SampleConfig())


def test_without_the_extra_the_command_says_how_to_install_it(gen_run, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # what Python does for a package that is not installed
    from gen.__main__ import main as gen_main

    assert gen_main(["serve", str(gen_run / "model")]) == 2
    assert one_error_line(capsys) == ("error: gen serve needs FastAPI and uvicorn: pip install -e '.[serve]' "
                                      "(or `make setup`)")


def test_the_pipeline_reports_each_step_and_stops_where_the_callback_raises(tiny_pipe):
    seen: list[tuple[int, int]] = []
    tiny_pipe("a red circle", num_inference_steps=3, callback=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]

    def stop_after_two(i: int, n: int) -> None:
        seen.append((i, n))
        if i == 2:
            raise KeyboardInterrupt  # any exception: gen serve raises its Cancelled

    seen.clear()
    with pytest.raises(KeyboardInterrupt):
        tiny_pipe("a red circle", num_inference_steps=5, callback=stop_after_two)
    assert seen == [(1, 5), (2, 5)]


def test_the_command_refuses_folders_that_are_not_models(gen_run, tmp_path, capsys):
    from gen.__main__ import main as gen_main

    assert gen_main(["serve", str(tmp_path)]) == 2
    assert "is not a generator model folder (no model_index.json)" in one_error_line(capsys)
    assert gen_main(["serve", str(gen_run / "model"), "--captioner", str(tmp_path)]) == 2
    assert "is not a captioner model folder (no config.json)" in one_error_line(capsys)


def test_only_loopback_hosts_count_as_loopback():
    assert [is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2")] == [True] * 5
    assert [is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "example.org", "::")] == [False] * 4


# ---------------------------------------------------------------- the API on a real server


def test_generate_returns_captioned_results_best_first(server, judge):
    status, info = call("GET", f"{server}/api/info")
    assert status == 200 and info["captioner"] is True and info["samplers"][0] == "DPMSolverMultistepScheduler"
    assert info["limits"] == {"count": MAX_COUNT, "steps": MAX_STEPS, "prompt": 300, "waiting": WAITING}
    job = draw(server, seed=7, count=3)
    assert job["status"] == "done" and (job["step"], job["total"]) == (3, 3)
    assert job["request"]["seed"] == 7 and job["request"]["scheduler"] == "DPMSolverMultistepScheduler"
    results = job["results"]
    assert sorted(r["seed"] for r in results) == [7, 8, 9]
    assert [r["seed"] - 7 for r in results] == [r["index"] for r in results]
    scores = [r["score"] for r in results]
    assert all(0 < s <= 1 for s in scores), scores  # a shapes prompt: p(every attribute right)
    assert scores == sorted(scores, reverse=True)
    # Each caption is the captioner's own reading of that image (a captioner this young may say nothing yet).
    images = [Image.open(io.BytesIO(fetch(server + r["url"]))).convert("RGB") for r in results]
    assert [r["caption"] for r in results] == judge.caption(torch.stack([judge.pil_to_pixels(im) for im in images]))
    assert results[0]["url"] == f"/api/images/{job['id']}/{results[0]['index']}.png"
    assert pixels(server, results[0]["url"]).shape == (16, 16, 3)


def test_the_seed_decides_the_image(server):
    first = draw(server, seed=3, count=1)["results"][0]
    again = draw(server, seed=3, count=1)["results"][0]
    other = draw(server, seed=4, count=1)["results"][0]
    assert np.array_equal(pixels(server, first["url"]), pixels(server, again["url"]))
    assert first["score"] == pytest.approx(again["score"])
    assert np.abs(pixels(server, first["url"]) - pixels(server, other["url"])).mean() > 5
    random_seed = draw(server, count=1)["request"]["seed"]  # none given: drawn, and reported
    assert isinstance(random_seed, int) and 0 <= random_seed < RANDOM_SEEDS


@pytest.mark.parametrize("body, message", [
    ({"prompt": ""}, "the prompt is empty; describe the image to draw, e.g. 'a red circle on the left'"),
    ({"prompt": PROMPT, "steps": 101}, "steps must be from 1 to 100, not 101"),
    ({"prompt": PROMPT, "count": 0}, "count must be from 1 to 8, not 0"),
    ({"prompt": PROMPT, "steps": "abc"}, "steps must be a whole number, not 'abc'"),
])
def test_bad_input_is_a_400_with_a_message(server, body, message):
    status, answer = call("POST", f"{server}/api/generate", body)
    assert status == 400 and answer == {"error": message}


def test_a_body_that_is_not_json_or_not_sent_as_json_is_refused(server):
    assert call("POST", f"{server}/api/generate", raw=b"{prompt") == (400, {"error": "the request body is not valid JSON"})
    status, answer = call("POST", f"{server}/api/generate", {"prompt": PROMPT}, headers={"Content-Type": "text/plain"})
    assert status == 415 and "Content-Type: application/json" in answer["error"]


def test_unknown_jobs_and_images_are_404(server):
    status, answer = call("GET", f"{server}/api/jobs/nope")
    assert status == 404 and "no job 'nope'" in answer["error"]
    job = draw(server, seed=1, count=1)
    status, answer = call("GET", f"{server}/api/images/{job['id']}/5.png")
    assert status == 404 and f"no image 5 of job '{job['id']}'" in answer["error"]


def test_a_host_other_than_loopback_is_refused(server):
    """A page on another site that resolves its own name to 127.0.0.1 (DNS rebinding) cannot use the API."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{server}/api/info", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 400


def test_cancel_stops_a_running_job_between_steps_and_a_waiting_one_before_it_starts(server):
    _, running_job = call("POST", f"{server}/api/generate", {"prompt": PROMPT, "steps": MAX_STEPS, "count": MAX_COUNT})
    _, waiting_job = call("POST", f"{server}/api/generate", {"prompt": PROMPT, "steps": 3, "count": 1})
    deadline = time.monotonic() + 60
    while call("GET", f"{server}/api/jobs/{running_job['id']}")[1]["step"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for job in (waiting_job, running_job):
        status, answer = call("DELETE", f"{server}/api/jobs/{job['id']}")
        assert status == 200 and answer["id"] == job["id"]
    stopped = wait_for(server, running_job["id"])
    assert stopped["status"] == "cancelled" and 1 <= stopped["step"] < MAX_STEPS and stopped["results"] == []
    never = wait_for(server, waiting_job["id"])
    assert never["status"] == "cancelled" and never["step"] == 0
    assert draw(server, seed=2, count=1)["status"] == "done"  # the worker goes on


def test_the_downloaded_png_carries_its_parameters(server, gen_run, tmp_path):
    job = draw(server, seed=20, count=2, negative_prompt="a blue square", guidance=2.0,
               scheduler="DDIMScheduler")
    for result in job["results"]:
        path = tmp_path / f"{result['index']}.png"
        path.write_bytes(fetch(server + result["url"]))
        assert read_params(path) == DrawParams(prompt=PROMPT, seed=result["seed"], steps=3, guidance=2.0,
                                               negative_prompt="a blue square", scheduler="DDIMScheduler",
                                               model=f"{gen_run.name}/model")


def test_gen_sample_from_png_draws_a_served_image_again(server, gen_run, tmp_path):
    from gen.__main__ import main as gen_main

    result = draw(server, seed=31, count=2, scheduler="DDIMScheduler")["results"][1]
    png = tmp_path / "served.png"
    png.write_bytes(fetch(server + result["url"]))
    assert gen_main(["sample", str(gen_run / "model"), "--from-png", str(png), "--out", str(tmp_path / "again")]) == 0
    [again] = (tmp_path / "again").glob(f"*-seed{result['seed']}.png")
    drawn = np.asarray(Image.open(again).convert("RGB"), dtype=int)
    assert np.abs(drawn - pixels(server, result["url"])).max() <= 1  # batch composition may move a level


def test_without_a_captioner_images_keep_seed_order(gen_run):
    app, jobs = build_app(gen_run / "model")
    with running(app) as base:
        assert call("GET", f"{base}/api/info")[1]["captioner"] is False
        results = draw(base, seed=5, count=3)["results"]
    jobs.close()
    assert [(r["seed"], r["score"], r["caption"]) for r in results] == [(5, None, None), (6, None, None),
                                                                           (7, None, None)]


# ---------------------------------------------------------------- load


def test_a_burst_of_requests_is_served_or_refused_at_once_and_none_is_lost(server):
    """20 concurrent requests while the model is busy: WAITING are queued and drawn, each with its own prompt and
    seed; the rest are refused at once with 429 and a message; nothing is lost or mixed up."""
    _, blocker = call("POST", f"{server}/api/generate", {"prompt": PROMPT, "steps": MAX_STEPS, "count": MAX_COUNT})
    while call("GET", f"{server}/api/jobs/{blocker['id']}")[1]["status"] == "queued":
        time.sleep(0.01)
    prompts = ["a red circle on the left", "a blue square at the top", "a green triangle on the right",
               "a yellow circle at the bottom"]
    answers: list[tuple[int, dict, dict, float]] = [None] * 20  # type: ignore[list-item]

    def send(i: int) -> None:
        body = {"prompt": prompts[i % 4], "seed": 1000 + 10 * i, "steps": 2, "count": 2}
        start = time.monotonic()
        status, answer = call("POST", f"{server}/api/generate", body)
        answers[i] = (status, answer, body, time.monotonic() - start)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    busy = call("GET", f"{server}/api/jobs/{blocker['id']}")[1]["status"] == "running"
    call("DELETE", f"{server}/api/jobs/{blocker['id']}")

    accepted = [a for a in answers if a[0] == 202]
    refused = [a for a in answers if a[0] == 429]
    assert len(accepted) + len(refused) == 20
    if busy:  # the model held the blocker throughout: exactly the queue's room was taken
        assert len(accepted) == WAITING
    assert len(accepted) >= WAITING and refused
    for _, answer, _, seconds in refused:
        assert answer == {"error": f"the server is busy: {WAITING} requests are already waiting; try again when "
                                   "one has finished"}
        assert seconds < 5
    for _, answer, body, _ in accepted:
        job = wait_for(server, answer["id"])
        assert job["status"] == "done" and job["request"]["prompt"] == body["prompt"]
        assert sorted(r["seed"] for r in job["results"]) == [body["seed"], body["seed"] + 1]
