# roar: every target does its own set-up (a .venv keyed on pyproject.toml), so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export HYDRA_FULL_ERROR ?= 1

.PHONY: help demo test bench install clean wandb-sync

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv and install roar with its dev extras (redone when pyproject.toml changes)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1 || $(BIN)/python -m pip install --quiet torch torchvision
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: $(STAMP)  ## the whole ROAR pipeline on the embedded digits, ending with the report's path
	$(BIN)/python scripts/demo.py

test: $(STAMP)  ## run the test suite
	$(BIN)/python -m pytest tests

bench: $(STAMP)  ## run the benchmarks (ratios measured side by side)
	$(BIN)/python benchmarks/run.py

wandb-sync: $(STAMP)  ## upload the offline wandb runs under outputs/ (needs network and `wandb login`)
	find outputs -type d -name 'offline-run-*' -exec $(BIN)/wandb sync {} +

clean:  ## remove outputs and caches (keeps .venv)
	rm -rf outputs .pytest_cache
