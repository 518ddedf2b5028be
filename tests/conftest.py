"""Tests run in float64 (the science does); the library itself never flips this on import."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite is compile-bound (hundreds of small jitted programs, each run a few times): skipping
# LLVM's expensive optimization passes cuts its time by about a third, same results.
# Tests only; benchmarks and the library keep XLA's defaults.  Set XLA_FLAGS to override.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

# Hypothesis profiles (issue #19's fuzz suite, tests/fuzz): "ci" is the default — few examples,
# no deadline (first calls compile), derandomized so a CI run is reproducible; "long" explores
# 20× more: `pytest tests/fuzz --hypothesis-profile=long`.  Tests that set max_examples keep it.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", max_examples=10, deadline=None, derandomize=True,
                                      database=None, print_blob=True)
_hypothesis_settings.register_profile("long", max_examples=200, deadline=None)
_hypothesis_settings.load_profile("ci")
