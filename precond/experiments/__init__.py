"""Experiment runners: protocols, results stores, plots and reports.

- :mod:`.protocol` (with :mod:`.store`, :mod:`.report`, :mod:`.plots`): seed 001's two-phase
  protocol on the SciML problems, resumable, and its report (``precond compare``);
- :mod:`.quadratic`: the quadratic diagnostic of seed 001 §4.1 (``precond quadratic``);
- :mod:`.pinn`: Adam → L-BFGS → NNCG on the PINN benchmarks (``precond pinn``);
- :mod:`.solved_instances`: the OSGM papers' solved-instances protocol (``precond osgm-bench``);
- :mod:`.study`: seed 002's three mechanisms (``precond study``).

Measured numbers live in ``docs/results/`` with the commands that made them.
"""
