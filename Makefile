# Jixiao: `make run` serves the app, `make test` runs the suite, `make bench` prints timings.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501

.PHONY: run test bench sample screenshots clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime
	$(PY) -m data.seed
	$(PY) -m streamlit run app.py --server.port $(PORT)

test: $(VENV)/.dev
	$(PY) -m pytest

bench: $(VENV)/.dev
	$(PY) -m bench.run

screenshots: $(VENV)/.dev   # the README's pictures, taken by the browser tests
	JIXIAO_SCREENSHOT_DIR=docs/screenshots $(PY) -m pytest tests/test_browser.py

sample: $(VENV)/.runtime
	$(PY) -m data.sample.generate --out data/sample/sample_bank.xlsx --template data/sample/template.xlsx

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis var
