# vae-lab, on a fresh machine:  `make train` runs the default training job, `make test` the tests.
# Both create the virtual environment .venv first (once; again when pyproject.toml changes), with an
# editable install of the checkout (pip's default mode, in which Hydra finds hydra_plugins/ too):
# `make train` installs what training needs, `make test` adds the test extras.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

# Where MNIST is read from (data.root): $VAE_LAB_DATA if set; else ../shared/data when it exists (the
# developers' offline copy); else ./data, where torchvision downloads it on first use.
VAE_LAB_DATA ?= $(if $(wildcard ../shared/data/MNIST/raw),$(abspath ../shared/data),$(CURDIR)/data)
export VAE_LAB_DATA

.PHONY: install install-test torch train test docs bench reproduce clean

install: $(VENV)/.installed  # what training, evaluation, sweeps and reproducing need
install-test: $(VENV)/.installed-test  # and the test extras: every plugin and tracker, the docs, a browser driver

# PyTorch: on a machine without an NVIDIA driver, its CPU-only build (without CUDA's libraries, most of
# an install's size: docs/guide/getting-started.md) from PyTorch's own index, when that index answers;
# else PyPI's build, which runs on a CPU too. TORCH_INDEX=<url> takes torch and torchvision from
# another index; TORCH_INDEX= (empty) from PyPI.
NVIDIA_DRIVER ?= /proc/driver/nvidia/version
TORCH_INDEX ?= $(if $(wildcard $(NVIDIA_DRIVER)),,https://download.pytorch.org/whl/cpu)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(MAKE) --no-print-directory torch
	# setuptools warns at every editable install that a folder named like a package may shadow it
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

torch:  # torch and torchvision from TORCH_INDEX into an existing .venv, when the index answers
ifneq ($(TORCH_INDEX),)
	@if $(BIN)/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)" "$(TORCH_INDEX)/" 2>/dev/null; \
	then $(BIN)/python -m pip install --quiet torch torchvision --index-url "$(TORCH_INDEX)"; \
	else echo "make: $(TORCH_INDEX) does not answer: PyTorch comes from PyPI instead (TORCH_INDEX= skips this check)" >&2; fi
endif

train: install  ## the main job: one default training run (pass overrides as ARGS="k=v ...")
	$(BIN)/vae-lab train $(ARGS)
	@echo "vae-lab is in $(BIN): 'source $(BIN)/activate' puts it on the PATH (or call $(BIN)/vae-lab)" >&2

test: install-test  ## the whole test suite, one worker per core (about 18 minutes on 2 CPU cores)
	$(BIN)/python -m pytest -n auto --dist loadgroup

docs: install-test  ## the documentation site, from docs/ into site/ (strict: a broken link fails)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: install  ## training throughput: vae-lab's loop against the classic DataLoader loop
	$(BIN)/python benchmarks/throughput.py $(ARGS)

reproduce: install  ## rerun the write-ups into outputs/reproduce/ and write docs/findings/results.md (QUICK=1: seed 0, 2 epochs, into outputs/reproduce-quick/)
	$(BIN)/vae-lab reproduce $(if $(QUICK),--quick) $(ARGS)

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache
