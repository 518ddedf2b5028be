"""``advise``: which preconditioner, at what step size, for this model — predicted from seed 001's
design criteria (L̂, ĉ, κ̂ and K in each candidate's M-geometry, the admissible step, the cost
of a step), then verified by training at equal wall time.

The candidates come from a registry (``precond.advise.registry``) built on
``precond.optim.OPTIMIZERS`` and ``precond.preconditioners``, so an optimizer registered later
is a candidate without a change here.  The predicted loss is the spectral model of
``precond.advise.model``.
"""

from .advisor import C_HAT_RTOL as C_HAT_RTOL
from .advisor import Advice as Advice
from .advisor import Measurement as Measurement
from .advisor import advise as advise
from .registry import CANDIDATES as CANDIDATES
from .registry import EXCLUDED as EXCLUDED
from .registry import CandidateSpec as CandidateSpec
from .registry import default_candidates as default_candidates
from .verify import Verification as Verification
from .verify import verify as verify
