"""precond: measure, choose and use preconditioners for optimization, in JAX.

Layers (each imports only the ones above it): ``linalg`` → ``curvature`` → ``glm`` →
``preconditioners`` → ``optim`` / ``stochastic`` / ``composite`` → ``sklearn`` → ``diagnostics``
→ ``problems`` → ``experiments`` → ``cli``.  Beside them, ``validation`` (argument checks and the
float dtype, imported by every layer) and ``loop`` (the one host driver: epoch loops, timers,
progress bars).  Import the subpackage you need, e.g. ``from precond import linalg``; nothing
here switches ``jax_enable_x64`` on (the command line does, and says so).

Example:
  >>> import precond
  >>> precond.__version__
  '0.1.0'
"""

__version__ = "0.1.0"

from .advise import Advice as Advice  # noqa: E402
from .advise import advise as advise  # noqa: E402
