# talkface: two commands set everything up from a fresh clone (Python 3.11 and make).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: demo test lint install bench clean pipecat-env

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(STAMP)

# The Pipecat agent's own venv (protobuf>=5, cannot share .venv): docs/pipecat.md
PIPECAT_VENV := .venv-pipecat
$(PIPECAT_VENV)/.installed: requirements-pipecat.txt pyproject.toml
	$(PYTHON) -m venv $(PIPECAT_VENV)
	$(PIPECAT_VENV)/bin/pip install --quiet --upgrade pip
	$(PIPECAT_VENV)/bin/pip install --quiet -r requirements-pipecat.txt
	$(PIPECAT_VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

pipecat-env: $(PIPECAT_VENV)/.installed

demo: $(STAMP)
	$(BIN)/talkface generate --text "Hello! I am a talking portrait, made by talkface from a single photo." -o demo.mp4
	@echo "wrote demo.mp4"

lint: $(DEV_STAMP)
	$(BIN)/ruff check talkface tests
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/talkface bench --json bench.json

clean:
	rm -rf $(VENV) $(PIPECAT_VENV) demo.mp4 bench.json .pytest_cache
