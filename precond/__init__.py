"""precond: measure, choose and use preconditioners for optimization, in JAX.

Layers (each imports only the ones above it): ``linalg`` → ``curvature`` → ``preconditioners`` →
``optim`` / ``stochastic`` / ``composite`` → ``sklearn`` → ``diagnostics`` → ``problems`` →
``experiments`` → ``cli``.  Import the subpackage you need, e.g. ``from precond import linalg``.
"""

__version__ = "0.1.0"
