"""Seed 002's three mechanisms measured on small MLPs and real data (``precond study``):
``diagonal`` (adaptive second moments as diagonal preconditioners), ``regularization`` (Adam + L2
vs AdamW as L2 on intrinsic parameters, and the L1 variant), ``normalization`` (BatchNorm /
LayerNorm and Hessian conditioning) and ``kronecker`` (seed 002's open question: Shampoo, K-FAC
and MUON against Adam's diagonal)."""

STUDIES = ("diagonal", "regularization", "normalization", "kronecker")
