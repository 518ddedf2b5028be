"""Which curvature C a curvature-based preconditioner uses: the Hessian of ``loss_fn`` or the
GGN of ``model_fn`` with ``output_loss`` (both from precond.curvature, the one core)."""

from __future__ import annotations

from collections.abc import Callable

from precond.curvature import get_output_loss, ggn_operator, hessian_operator
from precond.validation import check_callable


def check_curvature_args(loss_fn, model_fn, output_loss) -> str:
    """'hessian' when only ``loss_fn`` is given, 'ggn' when ``model_fn`` and ``output_loss`` are."""
    if loss_fn is not None and model_fn is None and output_loss is None:
        check_callable(loss_fn, "loss_fn", "loss_fn(params, batch)")
        return "hessian"
    if loss_fn is None and model_fn is not None and output_loss is not None:
        check_callable(model_fn, "model_fn", "model_fn(params, inputs)")
        get_output_loss(output_loss)  # fails early on an unknown name
        return "ggn"
    raise ValueError("give either loss_fn (Hessian curvature) or model_fn and output_loss "
                     "(Gauss–Newton curvature)")


def curvature_operator(kind: str, loss_fn: Callable | None, model_fn: Callable | None,
                       output_loss, params, batch):
    """The flat (n, n) curvature operator at ``params`` on ``batch`` (a closure-free pytree
    that linearizes once per solve).  ``batch=None`` is a full-batch ``loss_fn(params)``."""
    if kind == "hessian":
        return hessian_operator(loss_fn, params, batch)
    if batch is None:
        raise TypeError("the GGN needs batch=(inputs, targets)")
    return ggn_operator(model_fn, output_loss, params, batch)
