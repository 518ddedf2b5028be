"""Finite-sum GLMs and the PROMISE family: SketchySGD, SketchySVRG, SketchySAGA,
SketchyKatyusha, and their unpreconditioned twins SGD, SVRG, SAGA, Katyusha."""

from ._common import StochasticResult as StochasticResult
from ._common import estimate_curvature as estimate_curvature
from .katyusha import katyusha as katyusha
from .katyusha import sketchy_katyusha as sketchy_katyusha
from .problems import GLMHessian as GLMHessian
from .problems import GLMProblem as GLMProblem
from .problems import least_squares as least_squares
from .problems import logistic as logistic
from .saga import saga as saga
from .saga import sketchy_saga as sketchy_saga
from .sketchy_sgd import sgd as sgd
from .sketchy_sgd import sketchy_sgd as sketchy_sgd
from .svrg import sketchy_svrg as sketchy_svrg
from .svrg import svrg as svrg
