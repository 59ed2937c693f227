"""The model work of one job: a request's images, then the captioner's score and caption of each, best first.

Scoring is best-of-N's own path (gen/generator/rerank.py): the captioner is the `roundtrip.scorers` entry point
that `gen sample --rerank` loads, so the page shows the score best-of-N would keep an image by. A scorer that
can also say what it sees (`describe`, as caption's JudgeScorer can) gives each image its caption.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch

from gen.generator.pipeline import TextToImagePipeline
from gen.generator.rerank import Scorer, load_scorer
from gen.generator.schedulers import scheduler_names, with_scheduler
from gen.serve.jobs import Job, Result


def load_captioner(captioner_dir: str | Path, model_dir: str | Path, device: str) -> Scorer:
    """The captioner as best-of-N's scorer, judging in the generator's domain (as `gen sample --rerank` does)."""
    from gen.domains import of_model

    return load_scorer("captioner", model_dir=str(captioner_dir), kind="prob", device=device,
                       domain=of_model(model_dir))


class Drawer:
    """Runs jobs on one pipeline (and an optional scorer); the JobQueue's `work`."""

    def __init__(self, pipe: TextToImagePipeline, scorer: Scorer | None = None, model_name: str = "") -> None:
        self.pipe = pipe
        self.scorer = scorer
        self.model_name = model_name
        own = type(pipe.scheduler).__name__
        # The model's own sampler first: the default, the one `gen sweep` chose for it; then the rest, sorted.
        self.samplers = [own, *(n for n in scheduler_names(pipe) if n != own)]
        pipe.set_progress_bar_config(disable=True)

    def __call__(self, job: Job) -> list[Result]:
        request = job.request
        device = self.pipe._execution_device
        gens = [torch.Generator(device).manual_seed(request.seed + i) for i in range(request.count)]
        pipe = with_scheduler(self.pipe, request.scheduler)
        images = pipe([request.prompt] * request.count, negative_prompt=request.negative_prompt,
                      num_inference_steps=request.steps, guidance_scale=request.guidance, generator=gens,
                      callback=job.progress).images
        results = [Result(i, request.seed + i, image) for i, image in enumerate(images)]
        if self.scorer is None:
            return results
        job.status = "scoring"
        scores = self.scorer(images, [request.prompt] * len(images))
        describe: Callable | None = getattr(self.scorer, "describe", None)
        captions = describe(images) if describe is not None else [None] * len(images)
        for result, score, caption in zip(results, scores, captions):
            result.score = None if math.isnan(score) else float(score)
            result.caption = caption
        # Best first; a NaN score (no reading) last; seed order on ties.
        return sorted(results, key=lambda r: (r.score is None, -(r.score or 0.0), r.index))
