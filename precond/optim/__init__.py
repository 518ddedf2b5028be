"""Optimizers as optax transformations: preconditioned SGD on any preconditioner, L-BFGS,
CG-Hessian, CG-GGN, Nyström SGD, NNCG and OSGM; and the training loop.

Each engineer adds explicit re-exports below (``from .x import y as y``), one line per name.
"""
from .osgm import OSGMHistory as OSGMHistory
from .osgm import OSGMResult as OSGMResult
from .osgm import OSGMState as OSGMState
from .osgm import osgm as osgm
from .osgm import osgm_minimize as osgm_minimize
from .nncg import NNCGInfo as NNCGInfo
from .nncg import NNCGState as NNCGState
from .nncg import nncg as nncg
