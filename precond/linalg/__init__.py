"""Matrix-free linear algebra: operators, PCG, randomized Nyström, Lanczos, spectra, traces.

Everything works on flat 1-D arrays and knows nothing of models, losses or pytrees.  Operators
are closure-free pytrees (``from_matvec(fn, *params, size=n)`` keeps its arrays as leaves), so a
new operator of the same kind and shapes reuses every compiled solver; solvers call
``A.linearize()`` once, before their loop.  A scipy ``LinearOperator`` is accepted wherever an
operator is (a host callback).
"""

from .cg import CGResult as CGResult
from .cg import cg as cg
from .density import SpectralDensity as SpectralDensity
from .density import spectral_density as spectral_density
from .lanczos import LanczosResult as LanczosResult
from .lanczos import extreme_eigenvalues as extreme_eigenvalues
from .lanczos import lanczos as lanczos
from .matvec import HostOperator as HostOperator
from .matvec import MatvecOperator as MatvecOperator
from .matvec import from_matvec as from_matvec
from .nystrom import NystromApprox as NystromApprox
from .nystrom import NystromPreconditioner as NystromPreconditioner
from .nystrom import nystrom as nystrom
from .nystrom import nystrom_adaptive as nystrom_adaptive
from .nystrom import nystrom_pcg as nystrom_pcg
from .operators import CongruenceOperator as CongruenceOperator
from .operators import DenseOperator as DenseOperator
from .operators import DiagonalOperator as DiagonalOperator
from .operators import IdentityOperator as IdentityOperator
from .operators import LinearOperator as LinearOperator
from .operators import LowRankPlusIdentity as LowRankPlusIdentity
from .operators import ScaledOperator as ScaledOperator
from .operators import SparseOperator as SparseOperator
from .operators import SumOperator as SumOperator
from .operators import as_operator as as_operator
from .operators import as_scipy as as_scipy
from .operators import congruence as congruence
from .operators import to_dense as to_dense
from .power import PowerResult as PowerResult
from .power import power_iteration as power_iteration
from .status import SUCCESSES as SUCCESSES
from .status import SolverError as SolverError
from .status import Status as Status
from .status import check_status as check_status
from .trace import TraceEstimate as TraceEstimate
from .trace import hutchinson_trace as hutchinson_trace
from .trace import hutchpp_trace as hutchpp_trace

hutchpp = hutchpp_trace  # the name the literature uses
