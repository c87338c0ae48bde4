# SURE Fusion — set-up, demo, tests and benchmarks. Everything runs inside .venv (created by `make setup`).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done
export QT_QPA_PLATFORM := offscreen
# keep torch from fighting over the two cores with itself
export OMP_NUM_THREADS ?= 2

.PHONY: setup system dev-plugin lint test golden test-modern test-core test-plugin qa demo bench-apex bench-apex-paper bench-s2-real bench-hsms bench-pan bench-scale bench-tile-profile bench-coregistration bench-network-gain bench-error gui-screenshots batch package clean

# QGIS ≥ 3.40 and GDAL from apt (checked every time, in about a second), then the venv (once per requirements change)
setup: system $(STAMP)

system:
	@tools/install_qgis.sh

$(STAMP): requirements.txt requirements-dev.txt constraints.txt tools/venv_constraints.py | system
	@[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	/usr/bin/python3 tools/venv_constraints.py constraints.txt > $(VENV)/constraints.txt
	$(PY) -m pip install -q --disable-pip-version-check --use-pep517 -c $(VENV)/constraints.txt -r requirements-dev.txt
	@touch $(STAMP)

# ruff (settings in pyproject.toml) over the whole repository; CI runs it beside `make test`
lint: setup
	$(PY) -m ruff check .

# The README's test command. Core tests run without starting QGIS; plugin tests through pytest-qgis.
test: setup
	@status=0; \
	$(PY) -m pytest -q -p no:pytest_qgis tests/core || status=1; \
	if [ -d tests/plugin ]; then $(PY) -m pytest -q tests/plugin || status=1; fi; \
	exit $$status

# The same tests on Debian 13 (Python 3.13, numpy 2, QGIS 3.40) in a chroot that tools/modern_env.sh builds or reuses
test-modern:
	tools/modern_env.sh test

# Records tests/golden/ anew (tests/plugin/golden_cases.py): only for a change meant to change the outputs
golden: setup
	GOLDEN_WRITE=1 $(PY) -m pytest -q tests/plugin/test_golden_outputs.py
	tools/modern_env.sh run 'GOLDEN_WRITE=1 QT_QPA_PLATFORM=offscreen $$VENV/bin/python -m pytest -q tests/plugin/test_golden_outputs.py'

test-core: setup
	$(PY) -m pytest -q -p no:pytest_qgis tests/core

# QGIS plugin tests: pytest-qgis + processing.run, qgis_process.bin smoke runs, a .model3, the package
test-plugin: setup
	$(PY) -m pytest -q tests/plugin

# The hostile-input QA of 2026-12 (114 cases: bad inputs, output paths, signals, full disk, batch, security) as a
# script; writes out/qa/qa_report.md. 15–20 min. ARGS="--cases 1-30,72" runs some of them.
qa: setup
	PYTHONPATH=$(CURDIR)/tests/plugin $(PY) -m tools.qa_hostile $(ARGS)

# Sharpens the embedded (simulated) sample through qgis_process; prints where the GeoTIFF, PNG and report are
demo: setup
	$(PY) -m tools.demo

# build/qgis-plugins: a folder holding only a link to sure_fusion_qgis/, for QGIS_PLUGINPATH (one plugin, not 7)
dev-plugin:
	@python3 -m tools.qgis_cli

# dist/sure_fusion_qgis-<version>.zip for QGIS's "Install from ZIP" (sure_core bundled) + dist/requirements.txt
package:
	python3 -m tools.package

bench-apex: setup
	$(PY) -m benchmarks.apex $(ARGS)

bench-apex-paper: setup
	$(PY) -m benchmarks.apex --paper-recipe $(ARGS)

# Real S2 crops (DSen2, vietnam), Wald protocol through the plugin's code path, beside bicubic and gdal:pansharp
bench-s2-real: setup
	$(PY) -m benchmarks.s2_real $(ARGS)

# HS+MS fusion on the EO-1 Paris pair: real protocol (estimated SRF/PSF) beside peers + the paper's simulated protocol
bench-hsms: setup
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.hsms $(ARGS)

# WorldView-2 pansharpening: Wald protocol (Q8, ERGAS, SAM) beside bicubic and gdal:pansharp, + full-resolution QNR
bench-pan: setup
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.pan $(ARGS)

# S2 sharpening of growing areas through GDAL windows (one network on crops, tiles): time, peak RSS, full-tile
# estimate; ARGS="--quality" compares tiled with whole-window training on real data
bench-scale: setup
	$(PY) -m benchmarks.scale $(ARGS)

# A scene tile's seconds by phase (GDAL read, problem, first estimate, write and compression, read-back), 2046² px
bench-tile-profile: setup
	$(PY) -m benchmarks.tile_profile $(ARGS)

# Quality against a sub-pixel misregistration of the coarse input, co-registration on and off: APEX and DSen2 (shifts
# 0…1 px), vietnam (really misregistered), EO-1 and WV2 pairs. ARGS="--first-estimate" takes seconds; the full
# pipeline about an hour on 2 cores
bench-coregistration: setup
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.coregistration $(ARGS)

# The per-band error estimate against the true error: APEX (SNR 30, 40), the DSen2 and vietnam crops (Wald), EO-1, WV2
bench-error: setup
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.error_estimate $(ARGS)

# The real QGIS window under Xvfb (apt-get install xvfb): each dialog and a finished run, as PNGs in out/gui
gui-screenshots: setup
	$(PY) -m tools.gui_screenshots out/gui

# What the network adds by SURE and in truth, and NETWORK=auto's seconds against always (docs/decisions.md):
# e.g. ARGS="apex30 --seeds 0 1 2 --network always auto --json out/ng/apex30.json", then ARGS="--table out/ng/*.json"
bench-network-gain: setup
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.network_gain $(ARGS)

# Many Sentinel-2 scenes on Dask, without QGIS (a LocalCluster here, or --scheduler ADDRESS); no ARGS: the help.
# e.g. make batch ARGS="scenes.csv S2B_MSIL2A_....SAFE -o out/batch --iterations 300"
batch: setup
	$(PY) -m sure_fusion_qgis.batch $(or $(ARGS),--help)

clean:
	rm -rf $(VENV) build dist .pytest_cache
