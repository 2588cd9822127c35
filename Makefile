# Two commands on a fresh machine:  `make lab` starts the course, `make test` runs every test.
PYTHON ?= python3
# torch goes in first and pinned: an unpinned torch pulls a CUDA build of several GB on Linux.
# 2.13.0 is the version CI tests; pass TORCH=... for another build (e.g. one for your GPU).
TORCH ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: lab test notebooks check-notebooks clean

# JupyterLab refuses to run as root unless told to (containers, cloud machines)
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(VENV)/.installed
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
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

clean:
	rm -rf $(VENV)
