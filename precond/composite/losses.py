"""The smooth losses ℓ(t) of NysADMM's problems live in :mod:`precond.glm.losses`; this module
keeps the old import path."""

from precond.glm.losses import LogisticLoss as LogisticLoss
from precond.glm.losses import SquaredLoss as SquaredLoss

__all__ = ["SquaredLoss", "LogisticLoss"]
