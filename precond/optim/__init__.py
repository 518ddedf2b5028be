"""Optimizers as optax transformations: preconditioned SGD on any preconditioner, L-BFGS,
CG-Hessian, CG-GGN, Nyström SGD, NNCG and OSGM; and the training loop.

One convention for all (see ``precond.optim.alias``): the factory takes the objective
(``loss_fn``, or ``model_fn`` + ``output_loss``), ``update(grads, state, params, batch=…)``
needs only the batch, and ``optax.inject_hyperparams`` works with the learning rate injected.
"""
from .alias import CONTEXT as CONTEXT
from .alias import OPTIMIZERS as OPTIMIZERS
from .alias import adagrad as adagrad
from .alias import adam as adam
from .alias import cg_ggn as cg_ggn
from .alias import cg_hessian as cg_hessian
from .alias import get_optimizer as get_optimizer
from .alias import lbfgs as lbfgs
from .alias import momentum as momentum
from .alias import nystrom_sgd as nystrom_sgd
from .alias import rmsprop as rmsprop
from .alias import sgd as sgd
from .alias import spectral_sgd as spectral_sgd
from .contrib import muon as muon
from .contrib import sophia as sophia
from .contrib import sophia_inverse_operator as sophia_inverse_operator
from .kfac import kfac as kfac
from .nncg import NNCGInfo as NNCGInfo
from .nncg import NNCGState as NNCGState
from .nncg import nncg as nncg
from .osgm import OSGMHistory as OSGMHistory
from .osgm import OSGMResult as OSGMResult
from .osgm import OSGMState as OSGMState
from .osgm import osgm as osgm
from .osgm import osgm_minimize as osgm_minimize
from .preconditioned_sgd import PreconditionerState as PreconditionerState
from .preconditioned_sgd import preconditioned_sgd as preconditioned_sgd
from .preconditioned_sgd import scale_by_preconditioner as scale_by_preconditioner
from .shampoo import shampoo as shampoo
from .train import TrainResult as TrainResult
from .train import make_step as make_step
from .train import train as train
