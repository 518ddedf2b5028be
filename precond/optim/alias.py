"""Named optimizers (optax transformations) and the registry the experiments call.

First-order methods are optax's own (they already are the algorithm); the curvature methods are
:func:`preconditioned_sgd` on a preconditioner from ``precond.preconditioners``.  Every one is
driven the same way (see ``precond.optim.train``)::

    value, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, state = opt.update(grads, state, params, batch=batch, value=value, grad=grads,
                                value_fn=lambda p: loss_fn(p, batch))

and ignores the extra arguments it does not need.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import jax
import optax

from precond import preconditioners as pc

from .preconditioned_sgd import preconditioned_sgd

__all__ = ["sgd", "momentum", "adam", "adagrad", "rmsprop", "lbfgs", "cg_hessian", "cg_ggn",
           "nystrom_sgd", "spectral_sgd", "get_optimizer", "OPTIMIZERS"]


def sgd(learning_rate: optax.ScalarOrSchedule) -> optax.GradientTransformationExtraArgs:
    """SGD, w ← w − αg (``optax.sgd``)."""
    return optax.sgd(learning_rate)


def momentum(learning_rate: optax.ScalarOrSchedule, *, beta: float = 0.9,
             nesterov: bool = False) -> optax.GradientTransformationExtraArgs:
    """SGD with heavy-ball momentum β = ``beta`` (0.9 as in seed 001; ``optax.sgd``)."""
    return optax.sgd(learning_rate, momentum=beta, nesterov=nesterov)


def adam(learning_rate: optax.ScalarOrSchedule, *, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> optax.GradientTransformationExtraArgs:
    """Adam (``optax.adam``): the bias-corrected diagonal preconditioner √v̂ + ε with momentum.
    ``precond.preconditioners.adam`` is the same diagonal as a stand-alone preconditioner."""
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


def adagrad(learning_rate: optax.ScalarOrSchedule, *, initial_accumulator_value: float = 0.1,
            eps: float = 1e-7) -> optax.GradientTransformationExtraArgs:
    """AdaGrad (``optax.adagrad``): M = diag(√Σg²)."""
    return optax.adagrad(learning_rate, initial_accumulator_value=initial_accumulator_value,
                         eps=eps)


def rmsprop(learning_rate: optax.ScalarOrSchedule, *, decay: float = 0.9, eps: float = 1e-8,
            ) -> optax.GradientTransformationExtraArgs:
    """RMSProp (``optax.rmsprop``): M = diag(√EMA(g²) + ε)."""
    return optax.rmsprop(learning_rate, decay=decay, eps=eps)


def lbfgs(learning_rate: optax.ScalarOrSchedule | None = None, *, loss_fn: Callable | None = None,
          memory_size: int = 10, max_linesearch_steps: int = 20,
          ) -> optax.GradientTransformationExtraArgs:
    """L-BFGS with the zoom (strong Wolfe) line search: ``optax.lbfgs``, adapted to the
    training loop.

    optax's version needs the extras ``value``, ``grad`` and ``value_fn``.  Given ``loss_fn``,
    this one also accepts just ``batch=…`` and builds ``value_fn = lambda p: loss_fn(p, batch)``
    (and ``value``/``grad`` from it and the gradient) when they are missing.  With
    ``learning_rate=None`` the line search picks the step (optax's default).

    References:
      Liu and Nocedal 1989; ``optax.lbfgs``.
    """
    inner = optax.lbfgs(
        learning_rate, memory_size=memory_size,
        linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=max_linesearch_steps))

    def update_fn(updates, state, params=None, *, batch=None, value=None, grad=None,
                  value_fn=None, **extra):
        if value_fn is None:
            if loss_fn is None or batch is None:
                raise TypeError("lbfgs needs value_fn=… (or loss_fn at construction and "
                                "batch=… at update)")
            value_fn = lambda p: loss_fn(p, batch)  # noqa: E731
        if value is None:
            value = value_fn(params)
        if grad is None:
            grad = updates
        return inner.update(updates, state, params, value=value, grad=grad, value_fn=value_fn)

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)


def cg_hessian(learning_rate: optax.ScalarOrSchedule, loss_fn: Callable, *,
               damping: float = 1e-3, maxiter: int = 10, warm_start: bool = False,
               momentum: float | None = None) -> optax.GradientTransformationExtraArgs:
    """CG-Hessian: w ← w − α d, d ≈ (H + λI)⁻¹g by ``maxiter`` CG iterations on the batch's
    Hessian (``precond.preconditioners.cg_hessian``; λ = ``damping`` > 0)."""
    return preconditioned_sgd(learning_rate, pc.cg_hessian(
        loss_fn, damping=damping, maxiter=maxiter, warm_start=warm_start), momentum=momentum)


def cg_ggn(learning_rate: optax.ScalarOrSchedule, model_fn: Callable, output_loss, *,
           damping: float = 1e-3, maxiter: int = 10, warm_start: bool = False,
           momentum: float | None = None) -> optax.GradientTransformationExtraArgs:
    """CG-GGN: w ← w − α d, d ≈ (JᵀH_outJ + λI)⁻¹g by ``maxiter`` CG iterations; the batch is
    ``(inputs, targets)`` (``precond.preconditioners.cg_ggn``)."""
    return preconditioned_sgd(learning_rate, pc.cg_ggn(
        model_fn, output_loss, damping=damping, maxiter=maxiter, warm_start=warm_start),
        momentum=momentum)


def nystrom_sgd(learning_rate: optax.ScalarOrSchedule, *, key: jax.Array, rank: int = 10,
                loss_fn: Callable | None = None, model_fn: Callable | None = None,
                output_loss=None, damping: float = 1e-3, update_every: int = 10,
                momentum: float | None = None) -> optax.GradientTransformationExtraArgs:
    """Nyström SGD (SketchySGD): w ← w − α (Â + ρI)⁻¹g with a rank-r Nyström sketch Â of the
    Hessian (``loss_fn``) or GGN (``model_fn``, ``output_loss``), refreshed every
    ``update_every`` steps (``precond.preconditioners.nystrom``).  Given both, the GGN is used
    (PSD, as a Nyström sketch assumes)."""
    loss_fn = None if model_fn is not None and output_loss is not None else loss_fn
    return preconditioned_sgd(learning_rate, pc.nystrom(
        rank=rank, loss_fn=loss_fn, model_fn=model_fn, output_loss=output_loss,
        damping=damping, update_every=update_every), momentum=momentum, key=key)


def spectral_sgd(learning_rate: optax.ScalarOrSchedule, *, key: jax.Array, rank: int = 10,
                 loss_fn: Callable | None = None, model_fn: Callable | None = None,
                 output_loss=None, which: str = "top", target=None, update_every: int = 10,
                 momentum: float | None = None) -> optax.GradientTransformationExtraArgs:
    """Spectral SGD: w ← w − α M⁻¹g, M = I + U(D − I)Uᵀ from Lanczos eigenvectors of the
    curvature (``precond.preconditioners.spectral``).  Given both ``loss_fn`` and
    ``model_fn``/``output_loss``, the GGN is used."""
    loss_fn = None if model_fn is not None and output_loss is not None else loss_fn
    return preconditioned_sgd(learning_rate, pc.spectral(
        rank=rank, loss_fn=loss_fn, model_fn=model_fn, output_loss=output_loss, which=which,
        target=target, update_every=update_every), momentum=momentum, key=key)


OPTIMIZERS: dict[str, Callable] = {
    "sgd": sgd,
    "momentum": momentum,
    "adam": adam,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "lbfgs": lbfgs,
    "cg-hessian": cg_hessian,
    "cg-ggn": cg_ggn,
    "nystrom-sgd": nystrom_sgd,
    "spectral-sgd": spectral_sgd,
}


def get_optimizer(name: str, learning_rate: optax.ScalarOrSchedule | None, **problem_kwargs,
                  ) -> optax.GradientTransformationExtraArgs:
    """The optimizer ``name`` (a key of :data:`OPTIMIZERS`) at ``learning_rate``.

    ``problem_kwargs`` may hold everything a problem offers (``loss_fn``, ``model_fn``,
    ``output_loss``, ``key``, plus hyperparameters such as ``damping``); each constructor takes
    the ones it accepts and ignores the rest, so one call site serves every method.
    """
    try:
        ctor = OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose from {sorted(OPTIMIZERS)}") from None
    accepted = inspect.signature(ctor).parameters
    kwargs = {k: v for k, v in problem_kwargs.items() if k in accepted}
    missing = [p.name for p in accepted.values()
               if p.default is inspect.Parameter.empty and p.name != "learning_rate"
               and p.name not in kwargs]
    if missing:
        raise TypeError(f"optimizer {name!r} needs {', '.join(missing)}")
    return ctor(learning_rate, **kwargs)
