# Canopy Explorer: every task is one command. `make demo` and `make test` do all set-up.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export QT_QPA_PLATFORM ?= offscreen
QGIS_PLUGIN_DIR ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default/python/plugins
PYTEST_ARGS ?=

.PHONY: setup test demo bench robustness-doc sample-data screenshots zip deploy clean

setup:
	bash scripts/setup.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(PY) scripts/demo.py

# Every benchmark, each writing its section of docs/BENCHMARKS.md, then a section with their run times
# (tests/benchmarks/run_all.py). The synthetic databases (5.8 M, 11 M and 25 M segments) and the baselines'
# virtualenvs are built once into build/bench and reused by later runs.
bench: setup
	$(PY) tests/benchmarks/run_all.py

# The desktop session of make test (tests/test_desktop_qgis.py), writing its screenshots into docs/img.
screenshots: setup
	CANOPY_SCREENSHOT_DIR=docs/img $(PY) -m pytest tests/test_desktop_qgis.py -q

robustness-doc: setup
	$(PY) scripts/robustness_doc.py

sample-data: setup
	$(PY) -m canopy_explorer.plugin.core.sample_granules sample_data/atl08

# Refuses to build when Bandit or detect-secrets (run by plugins.qgis.org on every upload) find anything.
zip: setup
	$(PY) scripts/package_plugin.py zip dist/canopy_explorer.zip

deploy:
	python3 scripts/package_plugin.py deploy "$(QGIS_PLUGIN_DIR)"

clean:
	rm -rf dist demo_output .pytest_cache
