# Jixiao: `make run` serves the app, `make test` runs the suite, `make bench` prints timings.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501

.PHONY: run test bench sample screenshots clean

$(VENV)/.runtime: requirements.txt
	@echo "Jixiao: installing the Python packages into $(VENV) (first run only, about 2 minutes)..."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install --progress-bar on -r requirements.txt | grep -E "^(Collecting|Successfully)" || true
	$(PY) -c "import streamlit, duckdb, polars, pyarrow"    # the install above really worked
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime
	$(PY) -m data.seed
	@echo "Jixiao: starting on http://localhost:$(PORT) (the first visit asks you to create the administrator)"
	$(PY) -m streamlit run app.py --server.port $(PORT)

# two worker processes (pytest-xdist), each running whole test files (a file's server, browser and
# database fixtures start once): 8-9 minutes on 2 cores instead of 13-14 one test at a time
test: $(VENV)/.dev
	$(PY) -m pytest -n 2 --dist loadfile

bench: $(VENV)/.dev
	$(PY) -m bench.run

screenshots: $(VENV)/.dev   # the README's pictures, taken by the browser tests
	JIXIAO_SCREENSHOT_DIR=docs/screenshots $(PY) -m pytest tests/test_browser.py

sample: $(VENV)/.runtime
	$(PY) -m data.sample.generate --out data/sample/sample_bank.xlsx --template data/sample/template.xlsx

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis var
