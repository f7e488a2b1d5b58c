# smp-book: two commands, each self-contained on a fresh machine with Python 3.11.
#   make book   build the whole book (every notebook executed) into _build/html
#   make test   run every test: ruff, pytest of tests/ and of the package's doctests, nbval of chapters/
# Both create .venv and install everything on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# torch: the CPU build, from PyTorch's CPU wheel index. The "+cpu" version exists only on that index
# (and on this kind of machine's disk, which its pip also searches), never on PyPI, so without the
# index pip fails loudly ("No matching distribution") instead of taking PyPI's CUDA build (GBs).
TORCH       ?= torch==2.13.0+cpu
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
# 2 workers (the machines have 2 cores); loadfile keeps every notebook's cells in one worker, in order
WORKERS ?= 2

.PHONY: book test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --extra-index-url "$(TORCH_INDEX)" "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test,book]"
	touch $(STAMP)

book: $(STAMP)
	rm -rf _build
	$(BIN)/jupyter-book build . --all -W -n --keep-going

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest tests smp chapters -p no:cacheprovider --doctest-modules \
		-n $(WORKERS) --dist loadfile \
		--nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

clean:
	rm -rf _build $(VENV) .pytest_cache .hypothesis

# Regenerate every table in data/ (scripts/make_data.py): all local cores by default, or
#   make data WORKERS=8                        8 local worker processes
#   make data SCHEDULER=tcp://host:8786        the workers of a running dask.distributed scheduler
#   make data ONLY="conv_sweep relu_sweep"     only these tables (and their producers' siblings)
# It ends by naming the stored files whose bytes changed (exit status 1 if any did).
.PHONY: data
data: $(STAMP)
	$(BIN)/python scripts/make_data.py \
		$(if $(filter command line environment,$(origin WORKERS)),--workers $(WORKERS)) \
		$(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(ONLY),--only $(ONLY))
