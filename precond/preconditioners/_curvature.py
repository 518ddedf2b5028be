"""Which curvature C a curvature-based preconditioner uses: the Hessian of ``loss_fn`` or the
GGN of ``model_fn`` with ``output_loss``."""

from __future__ import annotations

from collections.abc import Callable

from precond.curvature import get_output_loss, ggn_operator, hessian_operator


def check_curvature_args(loss_fn, model_fn, output_loss) -> str:
    """'hessian' when only ``loss_fn`` is given, 'ggn' when ``model_fn`` and ``output_loss`` are."""
    if loss_fn is not None and model_fn is None and output_loss is None:
        if not callable(loss_fn):
            raise TypeError("loss_fn must be callable loss_fn(params, batch)")
        return "hessian"
    if loss_fn is None and model_fn is not None and output_loss is not None:
        if not callable(model_fn):
            raise TypeError("model_fn must be callable model_fn(params, inputs)")
        get_output_loss(output_loss)  # fails early on an unknown name
        return "ggn"
    raise ValueError("give either loss_fn (Hessian curvature) or model_fn and output_loss "
                     "(Gauss–Newton curvature)")


def curvature_operator(kind: str, loss_fn: Callable | None, model_fn: Callable | None,
                       output_loss, params, batch):
    """The flat (n, n) curvature operator at ``params`` on ``batch``."""
    if kind == "hessian":
        return hessian_operator(loss_fn, params, batch)
    return ggn_operator(model_fn, output_loss, params, batch)
