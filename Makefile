# Everything runs from .venv, built from this project's own pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := runs/demo
# The suite is mostly real subprocesses, which wait on each other as often as they compute: three
# workers keep a two-core CI machine busy (measured: 6.6 min against 9.2 with two). Whole files
# go to one worker, so a module's fixtures are built once.
WORKERS ?= 3

.PHONY: test lint docs demo doc-examples bench clean

# The framework with its extras (sign: attestations, checked with the ecosystem's verifiers),
# then the ai/ pipeline's own distribution (pipeline/), which gives the vmaf-train command; the
# framework's wheel carries neither.
# Only a cold or stale .venv gets here: pip stays quiet, so say what the wait is for.
$(STAMP): pyproject.toml pipeline/pyproject.toml
	@echo "Building $(VENV): installing provenance with its dev, ai and sign extras (numpy, pyarrow,"
	@echo "onnx, onnxruntime, mkdocs, ...) and the pipeline; the first time takes a few minutes."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,ai,sign]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-build-isolation -e pipeline
	touch $@

test: lint $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile
	$(BIN)/mkdocs build --strict --quiet --site-dir build/site

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir build/site

demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/python -m ai.demo --out $(DEMO)
	$(BIN)/python -m provenance report $(DEMO) --html $(DEMO)/site

# The example outputs in docs/ rewritten from a fresh demo; make test fails when one is stale.
doc-examples: demo
	$(BIN)/python -m tools.doc_examples --update

# Benchmarks print measured ratios; they are not tests. b3sum and openssl are compared when
# installed; DVC is installed into a throwaway environment under build/bench/ on first use.
bench: $(STAMP)
	$(BIN)/python bench/large_file.py
	$(BIN)/python bench/small_files.py
	$(BIN)/python bench/corpus_150k.py
	$(BIN)/python bench/decorator_overhead.py
	$(BIN)/python bench/dvc_peer.py
	$(BIN)/python bench/lineage_scale.py
	$(BIN)/python bench/ranks_job.py

clean:
	rm -rf $(VENV) build runs .pytest_cache .ruff_cache
