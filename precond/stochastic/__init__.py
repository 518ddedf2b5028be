"""Finite-sum GLMs and the PROMISE family: SketchySGD, SketchySVRG, SketchySAGA,
SketchyKatyusha, and their unpreconditioned twins SGD, SVRG, SAGA, Katyusha.

Each method is a :class:`StochasticMethod`: a pure, jittable ``init``/``epoch`` pair with its
hyperparameter rule (``SketchySGD``, ``SGD``, ``SketchySVRG``, ``SVRG``, ``SketchySAGA``,
``SAGA``, ``SketchyKatyusha``, ``Katyusha``).  :func:`solve` runs one under the host driver
:func:`precond.loop.run_epochs` (ahead-of-time compilation, timers, progress bar, stop rules);
the functions ``sketchy_sgd(problem, *, epochs, key, …)`` … ``katyusha(…)`` are ``solve`` with
each method.

One private module per solver family (``_sgd``, ``_svrg``, ``_saga``, ``_katyusha``: each holds
the Sketchy method and its twin), so the public function names do not shadow module names.  The
data rows, losses and the Hessian operator (``GLMHessian``, now
:class:`precond.glm.GramOperator`) come from :mod:`precond.glm`.
"""

from precond.glm.penalties import L1 as L1
from precond.glm.penalties import ElasticNetPenalty as ElasticNetPenalty

from ._common import RANK_MEMORY as RANK_MEMORY
from ._common import Curvature as Curvature
from ._common import StochasticMethod as StochasticMethod
from ._common import StochasticResult as StochasticResult
from ._common import adaptive_batch_size as adaptive_batch_size
from ._common import adaptive_rank as adaptive_rank
from ._common import epoch_batches as epoch_batches
from ._common import estimate_curvature as estimate_curvature
from ._common import snapshot as snapshot
from ._common import solve as solve
from ._common import variance_reduced_grad as variance_reduced_grad
from ._katyusha import Katyusha as Katyusha
from ._katyusha import KatyushaParams as KatyushaParams
from ._katyusha import KatyushaState as KatyushaState
from ._katyusha import SketchyKatyusha as SketchyKatyusha
from ._katyusha import katyusha as katyusha
from ._katyusha import sketchy_katyusha as sketchy_katyusha
from ._saga import SAGA as SAGA
from ._saga import SagaState as SagaState
from ._saga import SketchySAGA as SketchySAGA
from ._saga import saga as saga
from ._saga import sketchy_saga as sketchy_saga
from ._sapphire import SapphireState as SapphireState
from ._sapphire import sapphire as sapphire
from ._sapphire import scaled_prox as scaled_prox
from ._sgd import SGD as SGD
from ._sgd import SketchySGD as SketchySGD
from ._sgd import sgd as sgd
from ._sgd import sketchy_sgd as sketchy_sgd
from ._svrg import SVRG as SVRG
from ._svrg import SketchySVRG as SketchySVRG
from ._svrg import sketchy_svrg as sketchy_svrg
from ._svrg import svrg as svrg
from .problems import GLMHessian as GLMHessian
from .problems import GLMProblem as GLMProblem
from .problems import least_squares as least_squares
from .problems import logistic as logistic
