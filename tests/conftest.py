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
