"""Preconditioners M for preconditioned SGD: objects that build and apply M⁻¹.

Each factory returns a :class:`Preconditioner` under one protocol — ``init(params)``,
``update(state, params, *, batch=None, key=None, grads=None)``, ``apply(state, g)`` (alias
``solve``), ``inverse_operator(state)``, ``release(state)`` — working on parameter pytrees
(dicts, flax, equinox); see :mod:`precond.preconditioners.base`.
"""

from .base import Preconditioner as Preconditioner
from .cg_newton import CGInverseOperator as CGInverseOperator
from .cg_newton import CGNewtonState as CGNewtonState
from .cg_newton import cg_ggn as cg_ggn
from .cg_newton import cg_hessian as cg_hessian
from .cg_newton import ggn_linear_map as ggn_linear_map
from .cg_newton import hessian_linear_map as hessian_linear_map
from .diagonal import DiagonalState as DiagonalState
from .diagonal import adagrad as adagrad
from .diagonal import adam as adam
from .diagonal import hutchinson_diagonal as hutchinson_diagonal
from .diagonal import jacobi as jacobi
from .diagonal import rmsprop as rmsprop
from .identity import IdentityState as IdentityState
from .identity import identity as identity
from .kfac import KFACState as KFACState
from .kfac import kfac as kfac
from .lbfgs import LBFGSState as LBFGSState
from .lbfgs import lbfgs as lbfgs
from .lbfgs import two_loop as two_loop
from .nystrom import NystromState as NystromState
from .nystrom import nystrom as nystrom
from .shampoo import ShampooBlocks as ShampooBlocks
from .shampoo import ShampooState as ShampooState
from .shampoo import shampoo as shampoo
from .sophia import sophia as sophia
from .spectral import SpectralState as SpectralState
from .spectral import spectral as spectral
from .spectral import spectral_factors as spectral_factors
