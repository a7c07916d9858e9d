# Two entry points (see README.md):
#   make book   set up, run the study on the demo samples, render the book
#   make test   set up, run the test suite (unit tests and notebooks on the smoke profile)
# Both create their own virtual environment in .venv and install from pyproject.toml.

PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= demo
SAMPLES ?= demo
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: all install study book test benchmark benchmark-scan clean-book

all: book

# torch is pinned here, not in pyproject.toml: 2.13.0 is the CPU build this project is tested with.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0" -e ".[test]"
	@touch $@

install: $(STAMP)

study: $(STAMP)
	$(VENV)/bin/foamlib study run --samples $(SAMPLES) --profile $(PROFILE)

book: study
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

test: $(STAMP)
	$(PY) -m pytest

# The FID benchmark compares with torchmetrics (the peer, not a dependency of foamlib).
benchmark: $(STAMP)
	$(PY) -m pip install --quiet "torchmetrics==1.9.0"
	$(PY) benchmarks/bench_foundation.py
	$(PY) benchmarks/bench_fid.py
	$(PY) benchmarks/bench_load.py

# The study on a real, non-cubic scan from ../shared/data on the demo profile (about half an hour on 2 cores).
benchmark-scan: $(STAMP)
	$(PY) benchmarks/bench_study_scan.py --profile demo

clean-book:
	rm -rf _build
