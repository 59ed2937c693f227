# Every target creates .venv when needed, so a fresh clone needs only Python 3.10+.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REAL_STAMP := $(VENV)/.installed-real
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup test lint demo demo-real gpu-wheels clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,serve]'
	touch $(STAMP)

# The lint runs first, so CI checks the style and the import rules of the folders (tests/test_layout.py) too.
test: lint browser
	$(PY) -m pytest -q

# Every figure the README and docs quote from a committed JSON against that JSON (tests/docs_numbers.py); `make
# test` runs it too.
.PHONY: docs-check
docs-check: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/test_docs_numbers.py

lint: $(STAMP)
	$(PY) -m ruff check gen caption roundtrip tests
	$(PY) -m pytest -q -p no:cacheprovider tests/test_layout.py

# Debian's chromium for tests/test_serve_browser.py: playwright (in the dev extra) drives it and never downloads a
# browser of its own. Installed with apt where this runs as root; elsewhere that test skips and says why.
.PHONY: browser
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "warning: no /usr/bin/chromium (as root: apt-get install chromium); tests/test_serve_browser.py skips"

# The demo writes under runs/ (git-ignored). The committed samples/ change only through `make update-samples`.
# DEMO_ARGS shortens a trial run: make demo DEMO_ARGS="--set train.max_minutes=null --set train.max_steps=20"
demo: $(STAMP)
	$(PY) -m caption demo --out runs/demo/samples $(DEMO_ARGS)

# The models that ship in models/tiny-shapes/ (safetensors and model cards, about 10 MB): the demo's recipe, with
# the step counts its 15- and 10-minute budgets reached on a 2-core CPU fixed, so a busy machine makes the same
# models, only slower (about 25 minutes on 2 idle cores).
MODELS := models/tiny-shapes
.PHONY: update-models quickstart update-samples
update-models: $(STAMP)
	$(PY) -m caption train configs/caption/shapes32.yaml --out runs/models/caption --overwrite \
		--set train.max_minutes=null --set train.max_steps=1600
	$(PY) -m gen train configs/gen/shapes32.yaml --out runs/models/gen --overwrite \
		--set train.max_minutes=null --set train.max_steps=2000
	rm -rf $(MODELS) && mkdir -p $(MODELS)
	cp -r runs/models/gen/model $(MODELS)/generator
	cp -r runs/models/caption/model $(MODELS)/captioner

# Two minutes from `make setup`: the shipped models draw eight prompts twice and the captioner scores them;
# open runs/quickstart/report.html. Writes only runs/quickstart/ (git-ignored).
quickstart: $(STAMP)
	$(PY) -m gen sample $(MODELS)/generator --prompts configs/quickstart_prompts.txt --num-per-prompt 2 \
		--out runs/quickstart --overwrite
	$(PY) -m caption score $(MODELS)/captioner runs/quickstart --overwrite
	@echo "open runs/quickstart/report.html (the images, the captioner's captions and scores)"

# The web page and HTTP API on the shipped models: open http://127.0.0.1:8000/ (README.md, "Web UI and HTTP API").
.PHONY: serve
serve: $(STAMP)
	$(PY) -m gen serve $(MODELS)/generator --captioner $(MODELS)/captioner

# The committed examples under samples/: re-made only here, on purpose.
update-samples: $(STAMP) update-picture
	$(PY) -m caption demo --out samples/demo

# The README's picture: what `make quickstart` drew and how the captioner scored it.
.PHONY: update-picture
update-picture: quickstart
	cp runs/quickstart/scored_grid.png docs/quickstart.png

# animal-mnist's metadata requires tensorflow, which is never imported: install it without dependencies.
$(REAL_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[real]'
	$(PY) -m pip install -q --no-deps animal-mnist==0.4
	touch $(REAL_STAMP)

# Real data: prepare -> train the generator (15 min budget) and the captioner (about 4 min) -> 10 images per
# class, each the best of 8 candidates by the captioner -> classifier-based evaluation.
# TRAIN_ARGS shortens a trial run, e.g. make demo-real TRAIN_ARGS="--set train.max_steps=20".
# Writes runs/real/ (git-ignored); `make update-samples-real` writes the committed samples/real instead.
REAL_OUT ?= runs/real/samples
.PHONY: update-samples-real
update-samples-real:
	$(MAKE) demo-real REAL_OUT=samples/real

demo-real: $(REAL_STAMP)
	test -f data/animals32/metadata.jsonl || $(PY) -m gen prepare animal-mnist data/animals32
	$(PY) -m gen train configs/gen/animals32.yaml --out runs/real/gen --overwrite $(TRAIN_ARGS)
	$(PY) -m caption train configs/caption/animals32.yaml --out runs/real/caption --overwrite $(TRAIN_ARGS)
	$(PY) -m gen sample runs/real/gen/model --prompts samples/real/prompts.txt --num-per-prompt 10 --seed 0 \
		--rerank runs/real/caption/model --candidates 8 --out $(REAL_OUT) --overwrite
	$(PY) -m gen evaluate $(REAL_OUT) --real data/animals32 --overwrite

# What .ci/gpu_bench needs on a lent GPU machine and cannot fetch there: diffusers, at the version used here, as a
# pure-Python wheel in .whl/ (git-ignored; the device tool carries it). Its other needs are installed there.
gpu-wheels: $(STAMP)
	$(PY) -m pip download -q --no-deps --only-binary=:all: -d .whl \
		diffusers==$$($(PY) -c 'import diffusers; print(diffusers.__version__)')

# The scenes world (gen/domains/scenes/): train configs/gen/scenes48.yaml (30 minutes on a 2-core CPU; its set is
# drawn into data/scenes48 first), then GenEval's six tasks by the strict pixel oracle, the table printed (4 images
# of each of 335 prompts: about 15 minutes more there). Writes only runs/demo-scenes/ and data/scenes48/ (both
# git-ignored). A trial run:
#   make demo-scenes TRAIN_ARGS="--set train.max_minutes=0.3" GENEVAL_ARGS="--limit 2"
.PHONY: demo-scenes gpu-scenes-data
demo-scenes: $(STAMP)
	$(PY) -m gen train configs/gen/scenes48.yaml --out runs/demo-scenes/gen --overwrite $(TRAIN_ARGS)
	$(PY) -m gen geneval runs/demo-scenes/gen/model --out runs/demo-scenes/geneval --overwrite $(GENEVAL_ARGS)

# What .ci/gpu_scenes carries to a lent GPU machine besides `make gpu-wheels`: the 64 px scenes set of
# configs/gen/scenes64_gpu.yaml, drawn here into data/scenes64 (git-ignored; about 27 MB) so that no device minute
# goes to drawing it.
gpu-scenes-data: $(STAMP)
	$(PY) .ci/scenes_data.py configs/gen/scenes64_gpu.yaml

clean:
	rm -rf $(VENV) runs
