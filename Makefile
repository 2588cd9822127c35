# Two commands on a fresh machine:  `make lab` starts the course, `make test` runs every test.
PYTHON ?= python3
# torch goes in first, pinned: 2.13.0 is the version CI tests; pass TORCH=... for another one.
TORCH ?= torch==2.13.0
# On Linux, PyPI's torch is the CUDA build (a .venv of about 6.4 GB). A laptop without an
# NVIDIA GPU wants the CPU build from PyTorch's own index (torch alone: about 750 MB):
#   make lab TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Empty by default, so that a machine that reaches only PyPI (CI) installs as before.
# macOS and Windows need nothing: PyPI's torch there is already the CPU build.
TORCH_INDEX ?=
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: lab test notebooks check-notebooks clean

# JupyterLab refuses to run as root unless told to (containers, cloud machines)
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(VENV)/.installed
	@echo "JupyterLab runs in this terminal until you stop it (Ctrl-C twice); run 'make test' in a second terminal."
	$(BIN)/jupyter lab notebooks/ $(ALLOW_ROOT)

test: $(VENV)/.installed
	$(BIN)/pytest

notebooks: $(VENV)/.installed
	$(BIN)/tpsep build

check-notebooks: $(VENV)/.installed
	$(BIN)/tpsep build --check

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

clean:
	rm -rf $(VENV)
