# kexport: every install step lives here, so a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench lint clean

install: $(STAMP)

# Reinstall when the project's dependency list changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/python -m exporter.demo demo-out

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m bench.run

lint: install
	$(BIN)/ruff check exporter serving tests bench

clean:
	rm -rf $(VENV) demo-out bench-out .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
