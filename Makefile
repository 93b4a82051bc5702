# Every target calls the `stellarnet` CLI; the logic lives in the library.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
SN      = $(BIN)/stellarnet

EXP    ?= hr_relation
LR     ?= 0.1
LRS    ?= 0.1 0.3
EPOCHS ?= 10
COMMITTEE ?= 0
SEEDS  ?= 64
INIT   ?= same
# e.g. FIGURE_OPTS="--log --digits 3 --stride 5"
FIGURE_OPTS ?=
# A run's folder is named after its settings (results/EXP/lr=0.3, lr=0.3,epochs=300,
# sweep-lr=0.1,0.3, sweep-notebook-lr=0.1,0.3, ...: see README, "Run the experiment"), so
# `make experiment` re-runs into the folder of the same settings; it passes --force (the CLI
# alone refuses to overwrite). Set FORCE= to keep the CLI's refusal.
FORCE  ?= --force

.PHONY: install browser test lint experiment sweep study runs compare fetch figures clean

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'

# Headless Chromium and its driver from Debian for the explorer's browser tests
# (tests/test_explorer_browser.py): apt-get only when either is missing; as root (CI) or
# through sudo. Selenium is told where they are, so it never downloads a browser.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

test:
	$(BIN)/python -m pytest -q

# ruff is pinned in the dev extras, so its verdicts do not change under us.
lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

experiment:
	$(SN) experiment $(EXP) --lr $(LR) --epochs $(EPOCHS) $(FORCE)

sweep:
	$(SN) sweep $(EXP) --lr $(LRS) --epochs $(EPOCHS) $(FORCE)

# rates x seeds: summary.csv, report.md and figures (README, Studies); e.g. make study SEEDS=256
study:
	$(SN) study $(EXP) --lr $(LRS) --seeds $(SEEDS) --init $(INIT) --epochs $(EPOCHS) $(FORCE)

# every saved run and sweep: settings, status, first and last loss, folder (no TensorFlow)
runs:
	$(SN) runs

compare:
	$(SN) compare $(EXP) --committee $(COMMITTEE) $(FORCE)

fetch:
	$(SN) fetch

figures:
	$(SN) figures $(EXP) $(FIGURE_OPTS)

clean:
	rm -rf results .pytest_cache .ruff_cache build dist *.egg-info
