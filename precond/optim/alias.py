"""Named optimizers (optax transformations) and the registry the experiments call.

First-order methods are optax's own (they already are the algorithm); the curvature methods are
:func:`preconditioned_sgd` on a preconditioner from ``precond.preconditioners``.

The convention, for every optimizer in ``precond.optim``:

- the factory takes everything needed to evaluate the objective: ``loss_fn(params, batch)``,
  or ``model_fn(params, inputs)`` and ``output_loss`` for the Gauss–Newton methods (whose
  batch is ``(inputs, targets)``); first-order methods need neither;
- ``update(grads, state, params, *, batch=None, **extra)`` needs nothing beyond ``batch``.
  With ``batch=None`` a loss of the parameters alone is called as ``loss_fn(params)``
  (full-batch use).  ``value=`` (f(params)) and ``grad=`` (∇f(params)) may be passed to save
  work; ``value_fn=`` (params ↦ f, as for ``optax.lbfgs``) may replace ``loss_fn`` for
  full-batch use; unknown extra arguments are ignored, as optax's own transforms ignore them;
- the learning rate may be injected::

      opt = optax.inject_hyperparams(cg_hessian, static_args=("loss_fn", "maxiter"))(
          learning_rate=0.5, loss_fn=loss_fn, maxiter=5)

  ``static_args`` names the other arguments the caller passed that are callables, keys or
  structural integers (ranks, iteration caps, refresh intervals); defaults never need listing
  (structural defaults are None, resolved inside).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from precond import preconditioners as pc
from precond.validation import check_fraction, check_nonnegative, check_options, check_positive

from ._objective import evaluate, step_objective, structural_int
from .contrib import muon, sophia
from .kfac import kfac
from .nncg import nncg
from .osgm import osgm
from .preconditioned_sgd import preconditioned_sgd
from .shampoo import shampoo

__all__ = ["sgd", "momentum", "adam", "adagrad", "rmsprop", "lbfgs", "cg_hessian", "cg_ggn",
           "nystrom_sgd", "spectral_sgd", "get_optimizer", "OPTIMIZERS", "CONTEXT"]


def sgd(learning_rate: optax.ScalarOrSchedule) -> optax.GradientTransformationExtraArgs:
    """SGD, w ← w − αg (``optax.sgd``).

    Args:
      learning_rate: α, a float or an optax schedule.
    """
    return optax.sgd(learning_rate)


def momentum(learning_rate: optax.ScalarOrSchedule, *, beta: float = 0.9,
             nesterov: bool = False) -> optax.GradientTransformationExtraArgs:
    """SGD with heavy-ball momentum, v ← βv + g, w ← w − αv (``optax.sgd``).

    Args:
      learning_rate: α.
      beta: β (0.9 as in seed 001).
      nesterov: use Nesterov's form.
    """
    check_fraction(beta, "beta")
    return optax.sgd(learning_rate, momentum=beta, nesterov=nesterov)


def adam(learning_rate: optax.ScalarOrSchedule, *, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> optax.GradientTransformationExtraArgs:
    """Adam (``optax.adam``): the bias-corrected diagonal preconditioner √v̂ + ε with momentum.

    ``precond.preconditioners.adam`` is the same diagonal as a stand-alone preconditioner.

    Args:
      learning_rate: α.
      b1, b2: β₁, β₂, the decays of the first and second moments.
      eps: ε added to √v̂.
    """
    check_fraction(b1, "b1")
    check_fraction(b2, "b2")
    check_nonnegative(eps, "eps")
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


def adagrad(learning_rate: optax.ScalarOrSchedule, *, initial_accumulator_value: float = 0.1,
            eps: float = 1e-7) -> optax.GradientTransformationExtraArgs:
    """AdaGrad (``optax.adagrad``): M = diag(√Σg²).

    Args:
      learning_rate: α.
      initial_accumulator_value: the starting Σg².
      eps: ε added to √Σg².
    """
    check_nonnegative(initial_accumulator_value, "initial_accumulator_value")
    check_nonnegative(eps, "eps")
    return optax.adagrad(learning_rate, initial_accumulator_value=initial_accumulator_value,
                         eps=eps)


def rmsprop(learning_rate: optax.ScalarOrSchedule, *, decay: float = 0.9, eps: float = 1e-8,
            ) -> optax.GradientTransformationExtraArgs:
    """RMSProp (``optax.rmsprop``): M = diag(√EMA(g²) + ε).

    Args:
      learning_rate: α.
      decay: the EMA's decay.
      eps: ε.
    """
    check_fraction(decay, "decay")
    check_nonnegative(eps, "eps")
    return optax.rmsprop(learning_rate, decay=decay, eps=eps)


def lbfgs(learning_rate: optax.ScalarOrSchedule | None = None, *, loss_fn: Callable | None = None,
          memory_size: int | None = None, max_linesearch_steps: int | None = None,
          ) -> optax.GradientTransformationExtraArgs:
    """L-BFGS with the zoom (strong Wolfe) line search: ``optax.lbfgs`` on ``loss_fn``.

    ``update(grads, state, params, batch=batch)`` evaluates f = loss_fn(·, batch) for the line
    search; ``value=``/``grad=`` (f and ∇f at ``params``) save one evaluation when given.
    ``grads`` is the direction L-BFGS preconditions (the gradient, or whatever an
    ``optax.chain`` made of it); the line search uses the true gradient ``grad``.

    Args:
      learning_rate: the line search's initial step scale; None lets it pick the step
        (optax's default).
      loss_fn: the objective, ``loss_fn(params, batch)`` (or ``loss_fn(params)`` for
        ``batch=None``).  Without it, ``update`` needs ``value_fn=`` (params ↦ f), as
        ``optax.lbfgs`` does.
      memory_size: m, the number of curvature pairs kept (default 10).
      max_linesearch_steps: the zoom line search's budget (default 20).

    References:
      Liu and Nocedal 1989; ``optax.lbfgs``.
    """
    memory_size = structural_int(memory_size, "memory_size", 10)
    max_linesearch_steps = structural_int(max_linesearch_steps, "max_linesearch_steps", 20)
    inner = optax.lbfgs(
        learning_rate, memory_size=memory_size,
        linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=max_linesearch_steps))

    def update_fn(updates, state, params=None, *, batch=None, value=None, grad=None,
                  value_fn=None, **extra):
        if params is None:
            raise ValueError("lbfgs needs params: update(grads, state, params, batch=…)")
        fn, batch = step_objective(loss_fn, value_fn, batch, "lbfgs")
        fixed = lambda p: evaluate(fn, p, batch)  # noqa: E731
        if grad is None:
            value, grad = jax.value_and_grad(fixed)(params)
        elif value is None:
            value = fixed(params)
        return inner.update(updates, state, params, value=value, grad=grad, value_fn=fixed)

    def init_fn(params):
        # optax's line-search info starts weakly typed and leaves the first update strongly
        # typed: a jitted step would compile twice.  Start strongly typed.
        return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(x)),
                            inner.init(params))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def cg_hessian(learning_rate: optax.ScalarOrSchedule, loss_fn: Callable, *,
               damping: float = 1e-3, maxiter: int | None = None, warm_start: bool = False,
               momentum: float | None = None) -> optax.GradientTransformationExtraArgs:
    """CG-Hessian: w ← w − α d, d ≈ (H + λI)⁻¹g by m CG iterations on the batch's Hessian
    (``precond.preconditioners.cg_hessian``).

    Args:
      learning_rate: α.
      loss_fn: ``loss_fn(params, batch)`` (or ``loss_fn(params)`` for ``batch=None``).
      damping: λ > 0.
      maxiter: m, the fixed CG budget (default 10).
      warm_start: start CG from the previous direction.
      momentum: heavy-ball β on the directions (None: none).
    """
    maxiter = structural_int(maxiter, "maxiter", 10)
    return preconditioned_sgd(learning_rate, pc.cg_hessian(
        loss_fn, damping=damping, maxiter=maxiter, warm_start=warm_start), momentum=momentum)


def cg_ggn(learning_rate: optax.ScalarOrSchedule, model_fn: Callable, output_loss, *,
           damping: float = 1e-3, maxiter: int | None = None, warm_start: bool = False,
           momentum: float | None = None) -> optax.GradientTransformationExtraArgs:
    """CG-GGN: w ← w − α d, d ≈ (JᵀH_outJ + λI)⁻¹g by m CG iterations
    (``precond.preconditioners.cg_ggn``); the batch is ``(inputs, targets)``.

    Args:
      learning_rate: α.
      model_fn: ``model_fn(params, inputs) -> outputs``.
      output_loss: ℓ(outputs, targets), a name ("mse", …) or a
        ``precond.curvature.OutputLoss``.
      damping: λ ≥ 0.
      maxiter: m, the fixed CG budget (default 10).
      warm_start: start CG from the previous direction.
      momentum: heavy-ball β on the directions (None: none).
    """
    maxiter = structural_int(maxiter, "maxiter", 10)
    return preconditioned_sgd(learning_rate, pc.cg_ggn(
        model_fn, output_loss, damping=damping, maxiter=maxiter, warm_start=warm_start),
        momentum=momentum)


def _curvature(loss_fn, model_fn, output_loss) -> dict:
    """The GGN when ``model_fn`` and ``output_loss`` are given (PSD, as a sketch assumes), else
    the Hessian of ``loss_fn``."""
    if model_fn is not None and output_loss is not None:
        return {"model_fn": model_fn, "output_loss": output_loss}
    return {"loss_fn": loss_fn}


def nystrom_sgd(learning_rate: optax.ScalarOrSchedule, *, key: jax.Array,
                rank: int | None = None, loss_fn: Callable | None = None,
                model_fn: Callable | None = None, output_loss=None,
                damping: float | None = 1e-3, update_every: int | None = None,
                momentum: float | None = None) -> optax.GradientTransformationExtraArgs:
    """Nyström SGD (SketchySGD): w ← w − α (Â + ρI)⁻¹g with a rank-r Nyström sketch Â of the
    curvature, refreshed every k steps (``precond.preconditioners.nystrom``).

    Args:
      learning_rate: α.
      key: the ``jax.random`` key the sketches are drawn from (required).
      rank: r (default 10).
      loss_fn: the loss, for the Hessian (used when no ``model_fn``/``output_loss``).
      model_fn, output_loss: for the Gauss–Newton matrix (preferred when given: PSD, as a
        Nyström sketch assumes).
      damping: ρ > 0, or None: ρ = λ̂_r, the sketch's smallest retained eigenvalue, at each
        refresh (scale-free; ``precond.preconditioners.nystrom``).
      update_every: k, the refresh interval in steps (default 10).
      momentum: heavy-ball β on the directions (None: none).
    """
    rank = structural_int(rank, "rank", 10)
    update_every = structural_int(update_every, "update_every", 10)
    return preconditioned_sgd(learning_rate, pc.nystrom(
        rank=rank, **_curvature(loss_fn, model_fn, output_loss), damping=damping,
        update_every=update_every), momentum=momentum, key=key)


def spectral_sgd(learning_rate: optax.ScalarOrSchedule, *, key: jax.Array,
                 rank: int | None = None, loss_fn: Callable | None = None,
                 model_fn: Callable | None = None, output_loss=None, which: str = "top",
                 target=None, update_every: int | None = None, momentum: float | None = None,
                 ) -> optax.GradientTransformationExtraArgs:
    """Spectral SGD: w ← w − α M⁻¹g, M = I + U(D − I)Uᵀ from k Lanczos eigenvectors of the
    curvature (``precond.preconditioners.spectral``).

    Args:
      learning_rate: α.
      key: the ``jax.random`` key of the Lanczos starts (required).
      rank: k, the eigenpairs moved (default 10).
      loss_fn: the loss, for the Hessian (used when no ``model_fn``/``output_loss``).
      model_fn, output_loss: for the Gauss–Newton matrix (preferred when given).
      which: "top" or "bottom" eigenpairs.
      target: the eigenvalues they are moved to (None: the preconditioner's defaults).
      update_every: refresh interval in steps (default 10).
      momentum: heavy-ball β on the directions (None: none).
    """
    rank = structural_int(rank, "rank", 10)
    update_every = structural_int(update_every, "update_every", 10)
    return preconditioned_sgd(learning_rate, pc.spectral(
        rank=rank, **_curvature(loss_fn, model_fn, output_loss), which=which, target=target,
        update_every=update_every), momentum=momentum, key=key)


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
    "nncg": nncg,
    "osgm": osgm,
    "kfac": kfac,
    "shampoo": shampoo,
    "sophia": sophia,
    "muon": muon,
}

# What a problem offers every method; a method that does not use one ignores it.
CONTEXT = ("loss_fn", "model_fn", "output_loss", "key")


def get_optimizer(name: str, learning_rate: optax.ScalarOrSchedule | None, **kwargs,
                  ) -> optax.GradientTransformationExtraArgs:
    """The optimizer ``name`` (a key of :data:`OPTIMIZERS`) at ``learning_rate``.

    Keyword arguments are of two kinds.  The *context* (:data:`CONTEXT`: ``loss_fn``,
    ``model_fn``, ``output_loss``, ``key``) is what a problem offers every method: each method
    takes the parts it uses and ignores the rest, so one call site serves all.  Every other
    keyword is an *option* of the method (``damping``, ``maxiter``, …) and must be one of its
    arguments: a misspelt option raises ``TypeError`` naming the valid ones.

    Args:
      name: the method, e.g. "cg-ggn".
      learning_rate: its α (for "lbfgs" None lets the line search pick the step).
      **kwargs: context and options, as above.

    Example:
      >>> from precond.optim import get_optimizer
      >>> get_optimizer("cg-hessian", 0.5, loss_fn=lambda p, b: 0.0,
      ...               dampng=1e-2)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      TypeError: optimizer 'cg-hessian' got unknown option dampng; valid options: damping, ...
    """
    try:
        ctor = OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose from {sorted(OPTIMIZERS)}") from None
    accepted = inspect.signature(ctor).parameters
    options = {k: v for k, v in kwargs.items() if k not in CONTEXT}
    check_options(options, [p for p in accepted if p not in CONTEXT and p != "learning_rate"],
                  f"optimizer {name!r}")
    context = {k: v for k, v in kwargs.items() if k in CONTEXT and k in accepted}
    kw = {**context, **options}
    missing = [p.name for p in accepted.values()
               if p.default is inspect.Parameter.empty and p.name != "learning_rate"
               and p.name not in kw]
    if missing:
        raise TypeError(f"optimizer {name!r} needs {', '.join(missing)}")
    if learning_rate is not None and not callable(learning_rate):
        check_positive(learning_rate, "learning_rate")
    return ctor(learning_rate, **kw)
