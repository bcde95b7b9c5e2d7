# The two commands of the quick start. Each works on a fresh machine: it creates .venv
# and installs the project (and what the tests need) when missing or out of date.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The compiled core (setup.py), rebuilt in place when a rule's source changes: a
# compiled module older than its source would run yesterday's rules.
CORE := lifecycle/.compiled

.PHONY: demo test bench clean

demo: $(CORE)
	$(BIN)/lifecycle demo

# Two workers, one a core: each test starts the brokers and servers it needs on ports of its own.
test: $(CORE)
	$(BIN)/python -m pytest -n 2

bench: $(CORE)
	$(BIN)/python benchmarks/derive.py

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed: set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(CORE): $(STAMP) setup.py $(wildcard lifecycle/*.py lifecycle/*.pxd)
	$(BIN)/python setup.py --quiet build_ext --inplace --parallel 2
	touch $(CORE)

clean:
	rm -rf $(VENV) .lifecycle .pytest_cache build lifecycle/*.c lifecycle/*.so $(CORE)
