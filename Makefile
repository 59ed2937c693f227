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
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The lint runs first, so CI checks the style and the import rules of the folders (tests/test_layout.py) too.
test: lint
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check gen caption tests
	$(PY) -m pytest -q -p no:cacheprovider tests/test_layout.py

demo: $(STAMP)
	$(PY) -m caption demo

# animal-mnist's metadata requires tensorflow, which is never imported: install it without dependencies.
$(REAL_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[real]'
	$(PY) -m pip install -q --no-deps animal-mnist==0.4
	touch $(REAL_STAMP)

# Real data: prepare -> train the generator (15 min budget) and the captioner (about 4 min) -> 10 images per
# class, each the best of 8 candidates by the captioner -> classifier-based evaluation.
# TRAIN_ARGS shortens a trial run, e.g. make demo-real TRAIN_ARGS="--set train.max_steps=20".
demo-real: $(REAL_STAMP)
	test -f data/animals32/metadata.jsonl || $(PY) -m gen prepare animal-mnist data/animals32
	$(PY) -m gen train configs/gen/animals32.yaml --out runs/real/gen --overwrite $(TRAIN_ARGS)
	$(PY) -m caption train configs/caption/animals32.yaml --out runs/real/caption --overwrite $(TRAIN_ARGS)
	$(PY) -m gen sample runs/real/gen/model --prompts samples/real/prompts.txt --num-per-prompt 10 --seed 0 \
		--rerank runs/real/caption/model --candidates 8 --out samples/real --overwrite
	$(PY) -m gen evaluate samples/real --real data/animals32 --overwrite

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
