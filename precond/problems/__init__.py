"""Benchmark problems and offline real-data loaders.

- :mod:`.quadratic`: the diagnostic quadratic of seed 001 §4.1 with closed-form L̂, ĉ, κ̂, K;
- :mod:`.registry` (:mod:`.franke`, :mod:`.poisson`, :mod:`.green`): seed 001's SciML problems;
- :mod:`.pinn`: the PINN benchmarks of NNCG (convection, reaction, wave);
- :mod:`.classification`, :mod:`.data`: offline real data (nothing downloads).

Every problem is a set of pure functions over a parameter pytree (:class:`.base.Problem`), in
the default float dtype (float64 iff ``jax_enable_x64`` is on).
"""
