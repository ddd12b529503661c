# Two commands on a fresh machine: `make demo` runs the end-to-end demo, `make test` runs the tests.
# Both create .venv and install the project with its test extras first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck bench clean browser

setup: $(STAMP)

# torch first, from the local CPU wheel (a plain `torch` requirement would pull a multi-GB CUDA build);
# lpips without its dependencies, because its torchvision requirement would replace that torch.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps lpips==0.1.4
	touch $(STAMP)

demo: setup
	$(BIN)/python -m sweettok_platform.demo

test: setup browser
	$(BIN)/python -m pytest -q --durations=15 tests

# headless Chromium (Debian package) for the endpoint's API-docs test; installed when missing and apt-get can run
# (root, or sudo without a password); otherwise that one test skips, saying why
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if [ "$$SUDO" != none ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (apt-get) for the API-docs browser test"; \
	    $$SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null \
	      || echo "could not install chromium: the API-docs browser test will skip"; \
	  else echo "no chromium and no apt-get as root: the API-docs browser test will skip"; fi; }

# ruff (pyflakes, pycodestyle, bugbear; config in pyproject.toml) over all code, mypy over the model package
lint: setup
	$(BIN)/ruff check sweettok platform tests benchmarks

typecheck: setup
	$(BIN)/mypy sweettok

# every benchmark once with its default arguments (each prints its own figures); the quality study is a
# training study, not a benchmark: `python benchmarks/quality_study.py` (see docs/results.md)
BENCHMARKS := $(filter-out benchmarks/quality_study.py,$(wildcard benchmarks/*.py))
bench: setup
	@set -e; for b in $(BENCHMARKS); do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) demo_out
