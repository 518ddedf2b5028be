"""Finite-sum GLMs and the PROMISE family: SketchySGD, SketchySVRG, SketchySAGA,
SketchyKatyusha, and their unpreconditioned twins SGD, SVRG, SAGA, Katyusha.

One private module per solver family (``_sgd``, ``_svrg``, ``_saga``, ``_katyusha``: each holds
the Sketchy method and its twin), so the public function names do not shadow module names.
"""

from ._common import StochasticResult as StochasticResult
from ._common import estimate_curvature as estimate_curvature
from ._katyusha import katyusha as katyusha
from ._katyusha import sketchy_katyusha as sketchy_katyusha
from ._saga import saga as saga
from ._saga import sketchy_saga as sketchy_saga
from ._sgd import sgd as sgd
from ._sgd import sketchy_sgd as sketchy_sgd
from ._svrg import sketchy_svrg as sketchy_svrg
from ._svrg import svrg as svrg
from .problems import GLMHessian as GLMHessian
from .problems import GLMProblem as GLMProblem
from .problems import least_squares as least_squares
from .problems import logistic as logistic
