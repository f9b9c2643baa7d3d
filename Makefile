# roar: every target does its own set-up (a .venv keyed on pyproject.toml), so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SOURCES := src tests benchmarks scripts setup.py examples
# the PyTorch pin, written once in pyproject.toml ([tool.roar])
TORCH  := $(shell $(PYTHON) -c 'import tomllib; t = tomllib.load(open("pyproject.toml", "rb"))["tool"]["roar"]; print("torch==" + t["torch"], "torchvision==" + t["torchvision"])')

export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export HYDRA_FULL_ERROR ?= 1
export NO_MKDOCS_2_WARNING ?= 1

.PHONY: help demo test test-fast lint format system bench install clean wandb-sync docs

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv and install roar with its dev extras (redone when pyproject.toml changes)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH) || $(BIN)/python -m pip install --quiet torch torchvision
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: $(STAMP)  ## the whole ROAR pipeline on the embedded digits, ending with the report's path
	$(BIN)/python scripts/demo.py

system:  ## install the system packages the full suite uses (slurm-wlm, munge, chromium) when missing
	@bash scripts/setup-system.sh

lint: $(STAMP)  ## ruff (format and lint, 120 columns) and the architecture contracts (import-linter)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/lint-imports

format: $(STAMP)  ## let ruff format and fix what it can
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

test: $(STAMP) lint system  ## the whole test suite (a real one-node SLURM cluster included)
	$(BIN)/python -m pytest tests

test-fast: $(STAMP)  ## the edit loop: no training longer than a few seconds, no SLURM (under 2 minutes)
	$(BIN)/python -m pytest tests -m "not slow and not slurm" -q

docs: $(STAMP)  ## build the documentation site into site/ (strict: a broken link or reference fails); open site/index.html
	$(BIN)/mkdocs build --strict --quiet

bench: $(STAMP)  ## run the benchmarks (ratios measured side by side)
	$(BIN)/python benchmarks/run.py

OUTPUTS ?= outputs
WANDB_SYNC_TIMEOUT ?= 300

wandb-sync: $(STAMP)  ## upload the offline wandb runs under outputs/, oldest first so each artifact's maker precedes its users (needs network and `wandb login`; gives up after WANDB_SYNC_TIMEOUT s)
	@runs=$$(find $(OUTPUTS) -type d -name 'offline-run-*' 2>/dev/null | awk -F/ '{print $$NF " " $$0}' | sort | cut -d' ' -f2-); \
	if [ -z "$$runs" ]; then echo "wandb-sync: no offline wandb runs under $(OUTPUTS)/"; exit 0; fi; \
	timeout $(WANDB_SYNC_TIMEOUT) $(BIN)/wandb sync $$runs || { \
	  echo "wandb-sync: wandb sync failed or did not finish within $(WANDB_SYNC_TIMEOUT) s: check the network and 'wandb login' (WANDB_SYNC_TIMEOUT=... waits longer). The runs stay under $(OUTPUTS)/; a later make wandb-sync uploads them." >&2; exit 1; }

clean:  ## remove outputs and caches (keeps .venv)
	rm -rf outputs .pytest_cache
