# Two commands on a fresh machine:  `make lab` starts the course, `make test` runs every test.
PYTHON ?= python3
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
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

clean:
	rm -rf $(VENV)
