# Entry points (see README.md):
#   make book   set up, run the study on the demo samples, render the book
#   make test   set up, run the test suite (unit tests and notebooks on the smoke profile)
#   make lab    set up, write the study's notebooks for SAMPLES and PROFILE to runs/, open them in JupyterLab
# Each creates the virtual environment .venv if needed and installs foamlib into it (editable) with the
# extras of pyproject.toml that it needs: test -> foamlib[test], book -> foamlib[book], lab -> foamlib[study].

PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= demo
SAMPLES ?= demo
PY      := $(VENV)/bin/python

.PHONY: all install study book lab test validate benchmark benchmark-scan clean-book

all: book

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch is pinned here, not in pyproject.toml: 2.13.0 is the CPU build this project is tested with.
# One stamp per installation, redone when pyproject.toml changes: .installed (the core), .installed-EXTRA.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet "torch==2.13.0" -e "."
	@touch $@

$(VENV)/.installed-%: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet "torch==2.13.0" -e ".[$*]"
	@touch $@

# The core only: the library and the commands segment, analyze and phantom.
install: $(VENV)/.installed

study: $(VENV)/.installed-study
	$(VENV)/bin/foamlib study run --samples $(SAMPLES) --profile $(PROFILE)

book: $(VENV)/.installed-book study
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

# The study's notebooks with PROFILE's values in their parameters cells, one folder per sample
# (runs/<sample>/lab/), opened in JupyterLab (with ipywidgets, so tqdm draws its bars as widgets).
lab: $(VENV)/.installed-study
	$(VENV)/bin/foamlib study prepare --samples $(SAMPLES) --profile $(PROFILE)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=runs

test: $(VENV)/.installed-test
	$(PY) -m pytest

# The FID benchmark compares with torchmetrics (the peer, not a dependency of foamlib); the foundation
# benchmark with PoreSpy (the validate extra, part of test).
benchmark: $(VENV)/.installed-test
	$(PY) -m pip install --quiet "torchmetrics==1.9.0"
	$(PY) benchmarks/bench_foundation.py
	$(PY) benchmarks/bench_fid.py
	$(PY) benchmarks/bench_load.py

# The study on a real, non-cubic scan from ../shared/data on the demo profile (about half an hour on 2 cores).
benchmark-scan: $(VENV)/.installed-study
	$(PY) benchmarks/bench_study_scan.py --profile demo

# The independent validation suite (book/validation.md): the study on scans foamlib's synthesis did not make,
# scored against their truth; writes runs/_validation/ (table.md, table.json, figures/). About an hour on 2 idle cores.
validate: $(VENV)/.installed-study $(VENV)/.installed-validate
	$(PY) benchmarks/validate.py --profile $(PROFILE)

clean-book:
	rm -rf _build
