"""precond: measure, choose and use preconditioners for optimization, in JAX.

Layers (each imports only the ones before it): ``validation`` (argument checks, the float
dtype) → ``distributed`` (the data mesh, row sharding) → ``linalg`` → ``loop`` (the one host
driver) → ``curvature`` → ``glm`` → ``preconditioners`` → ``optim`` → ``stochastic`` →
``composite`` → ``diagnostics`` → ``advise`` → ``sklearn`` → ``problems`` → ``experiments`` →
``cli`` (the README's Architecture section).
``precond.advise`` and ``precond.Advice`` are the advisor's entry points.  Import the
subpackage you need, e.g. ``from precond import linalg``; nothing
here switches ``jax_enable_x64`` on (the command line does, and says so).

Example:
  >>> import precond
  >>> precond.__version__
  '0.1.0'
"""

__version__ = "0.1.0"

from .advise import Advice as Advice  # noqa: E402
from .advise import advise as advise  # noqa: E402
