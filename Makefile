# Canopy Explorer: every task is one command. `make demo` and `make test` do all set-up.
SHELL := /bin/bash
# The virtualenv scripts/setup.sh builds and the targets use (the QGIS 3.40 root has its own: /opt/canopy-venv).
VENV ?= .venv
export VENV
PY := $(VENV)/bin/python
export QT_QPA_PLATFORM ?= offscreen
QGIS_PLUGIN_DIR ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default/python/plugins
PYTEST_ARGS ?=

.PHONY: setup test test-host test-qgis340 qgis340-shell demo bench robustness-doc sample-data screenshots zip deploy clean

setup:
	bash scripts/setup.sh

# The whole suite twice: on this machine's QGIS (3.22 on Debian 12), then on QGIS 3.40 LTR in a Debian 13
# root that scripts/qgis_root.sh builds with debootstrap and caches outside the checkout
# (/var/cache/canopy-explorer; CANOPY_ROOT_REBUILD=1 builds it again). The second runs even when the first
# fails; a summary names each QGIS version with its counts, and the status fails if either run failed.
test: setup
	@rm -f build/test-results/*; host=0; root=0; \
	$(PY) scripts/test_report.py run host -- $(PYTEST_ARGS) || host=$$?; \
	bash scripts/qgis_root.sh test $(PYTEST_ARGS) || root=$$?; \
	$(PY) scripts/test_report.py summary host=$$host qgis-root=$$root

# One of the two: the suite on this machine's QGIS, or in the QGIS 3.40 root.
test-host: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-qgis340: setup
	bash scripts/qgis_root.sh test $(PYTEST_ARGS)

# A shell in the QGIS 3.40 root, in the checkout (its venv: /opt/canopy-venv).
qgis340-shell: setup
	bash scripts/qgis_root.sh shell

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
	$(PY) -m canopy_explorer.plugin.core.samples.granules sample_data/atl08

# Refuses to build when Bandit or detect-secrets (run by plugins.qgis.org on every upload) find anything.
zip: setup
	$(PY) scripts/package_plugin.py zip dist/canopy_explorer.zip

deploy:
	python3 scripts/package_plugin.py deploy "$(QGIS_PLUGIN_DIR)"

clean:
	rm -rf dist demo_output .pytest_cache
