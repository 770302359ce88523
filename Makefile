# Two entry points for a fresh machine (each builds its own virtual environment):
#   make demo   — the main job
#   make test   — the test suite
# and, for the notebooks:
#   make jupyter    — install JupyterLab into the environment and open notebooks/
#   make notebooks  — run every notebook (MODE=cpu: minutes; fast; full) into build/notebooks with outputs
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
GMD ?= $(or $(MUSICVAE_GMD_DIR),../shared/data/groove)

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# constraints.txt pins torch to the CPU build available here; never pulls CUDA wheels.
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,studio]'
	touch $@

.PHONY: install demo test bench notebooks jupyter
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/musicvae sample -n 8 --seed 0 --bpm 100 --out grooves --wav --png

test: $(VENV)/.installed
	MUSICVAE_GMD_DIR=$(GMD) $(PY) -m pytest -q

bench: $(VENV)/.installed
	MUSICVAE_GMD_DIR=$(GMD) $(PY) bench/preprocess.py

$(VENV)/.notebooks: $(VENV)/.installed
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,notebooks]'
	touch $@

MODE ?= cpu
# Without a GMD at $(GMD), notebook 01 downloads it into the notebooks' work folder.
NB_GMD := $(if $(wildcard $(GMD)),MUSICVAE_GMD_DIR=$(abspath $(GMD)))
notebooks: $(VENV)/.notebooks
	$(NB_GMD) $(PY) scripts/run_notebooks.py --mode $(MODE) --out build/notebooks --html

jupyter: $(VENV)/.notebooks
	$(NB_GMD) $(VENV)/bin/jupyter lab notebooks/
