"""Seed 002's three mechanisms measured on small MLPs and real data (``precond study``):
``diagonal`` (adaptive second moments as diagonal preconditioners), ``regularization`` (Adam + L2
vs AdamW as L2 on intrinsic parameters, and the L1 variant) and ``normalization`` (BatchNorm /
LayerNorm and Hessian conditioning)."""

STUDIES = ("diagonal", "regularization", "normalization")
