"""``diagnose``: seed 001's design criteria for one preconditioner at one point, as a report."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from precond.curvature import hessian_operator, minibatch_gradients
from precond.linalg import LinearOperator
from precond.validation import check_key, check_positive

from ._operators import as_square_operator, spd_sqrt
from .conditioning import local_conditioning
from .noise import noise_level
from .theory import noise_floor, recommended_step

__all__ = ["BatchMean", "DesignReport", "diagnose", "preconditioner_state", "stack_batches"]


@dataclass(frozen=True)
class DesignReport:
    """L̂, ĉ, κ̂ and K = tr(M⁻¹Σ) without (``*_before``, M = I) and with the preconditioner
    (``*_after``), Theorem 3.2's floor αL̂K/(2ĉμ) for both at the same α, and the recommended α
    for M (the largest admissible, μ/L̂, or the one meeting ``target_floor``)."""

    preconditioner: str
    n_params: int
    num_batches: int
    alpha: float
    mu: float
    L_hat_before: float
    c_hat_before: float
    kappa_before: float
    K_before: float
    K_stderr_before: float
    L_hat_after: float
    c_hat_after: float
    kappa_after: float
    K_after: float
    K_stderr_after: float
    floor_before: float
    floor_after: float
    recommended_alpha: float
    proxy_before: str = ""
    proxy_after: str = ""
    method: str = "lanczos"

    @property
    def reductions(self) -> dict[str, float]:
        """before/after ratios (> 1 means M improved the quantity; for ĉ, < 1 is better)."""
        r = lambda a, b: a / b if b != 0 else math.inf  # noqa: E731
        return {"L_hat": r(self.L_hat_before, self.L_hat_after),
                "c_hat": r(self.c_hat_before, self.c_hat_after),
                "kappa": r(self.kappa_before, self.kappa_after),
                "K": r(self.K_before, self.K_after),
                "floor": r(self.floor_before, self.floor_after)}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            with open(path, "w") as f:
                f.write(text)
        return text

    @classmethod
    def from_dict(cls, data: dict) -> DesignReport:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown DesignReport fields: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike) -> DesignReport:
        s = os.fspath(text_or_path)
        if not s.lstrip().startswith("{"):
            with open(s) as f:
                s = f.read()
        return cls.from_dict(json.loads(s))

    def table(self):
        """A ``rich.table.Table`` of the criteria before/after M and their ratios."""
        from rich.table import Table

        t = Table(title=f"design criteria: {self.preconditioner} ({self.n_params} parameters, "
                        f"{self.num_batches} mini-batches, α = {self.alpha:.3g}, μ = {self.mu:g})")
        for col in ("quantity", "M = I", "with M", "before/after"):
            t.add_column(col, justify="right" if col != "quantity" else "left")
        red = self.reductions
        rows = [("L̂ (largest eig. of M⁻¹H)", self.L_hat_before, self.L_hat_after, red["L_hat"]),
                ("ĉ (smallest / PL proxy)", self.c_hat_before, self.c_hat_after, red["c_hat"]),
                ("κ̂ = L̂/ĉ", self.kappa_before, self.kappa_after, red["kappa"]),
                ("K = tr(M⁻¹Σ)", self.K_before, self.K_after, red["K"]),
                ("floor αL̂K/(2ĉμ)", self.floor_before, self.floor_after, red["floor"])]
        for name, b, a, r in rows:
            t.add_row(name, f"{b:.4g}", f"{a:.4g}", f"{r:.3g}")
        t.add_row("K standard error", f"{self.K_stderr_before:.2g}", f"{self.K_stderr_after:.2g}",
                  "")
        t.add_row("recommended α (for M)", "", f"{self.recommended_alpha:.3g}", "")
        if self.proxy_before or self.proxy_after:
            t.caption = f"ĉ proxies: before: {self.proxy_before or '—'}; after: " \
                        f"{self.proxy_after or '—'}"
        return t

    def __rich__(self):
        return self.table()

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=110, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
        console.print(self.table())
        return console.export_text()


@dataclass(frozen=True)
class BatchMean:
    """(params, batches) ↦ (1/B) Σ_b loss_fn(params, batch_b) over batches stacked on a leading
    axis; frozen, so equal for one ``loss_fn``: repeated diagnoses of one loss reuse the compiled
    solvers (its Hessian is the mean mini-batch Hessian)."""

    loss_fn: Callable

    def __call__(self, params, batches):
        return jnp.mean(jax.lax.map(lambda b: self.loss_fn(params, b), batches))


def stack_batches(batches):
    """B ≥ 2 mini-batches (a list, or a pytree stacked on a leading axis) as one stacked pytree;
    ``ValueError`` when fewer than 2 or the leading axes differ."""
    if isinstance(batches, list):
        if len(batches) < 2:
            raise ValueError(f"batches must hold at least 2 mini-batches (for the noise level), "
                             f"got {len(batches)}")
        return jax.tree.map(lambda *xs: jnp.stack(xs), *batches)
    leaves = jax.tree.leaves(batches)
    if not leaves:
        raise ValueError("batches has no array leaves")
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else -1 for x in leaves}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(f"stacked batches must share a leading mini-batch axis, got {sizes}")
    if sizes.pop() < 2:
        raise ValueError("batches must hold at least 2 mini-batches (for the noise level)")
    return batches


def preconditioner_state(preconditioner, params, stacked, G, key):
    """The preconditioner's state after B steps of training at ``params``: ``init``, then
    ``update`` once per mini-batch b = 1..B with that batch, a key and the b-th mini-batch
    gradient — the first eagerly-shaped, the rest in one ``lax.scan`` (the CG preconditioners'
    state gains its linearization point at the first update).

    Args:
      preconditioner: any object of the ``precond.preconditioners`` protocol.
      params: the point w (any pytree).
      stacked: the B mini-batches, stacked on a leading axis.
      G: (B, n) the flat mini-batch gradients at ``params`` (``minibatch_gradients``).
      key: jax.random key, split into one per update.
    """
    unravel = ravel_pytree(params)[1]
    keys = jax.random.split(key, G.shape[0])

    @jax.jit
    def run(params, stacked, G, keys):
        def update(state, xs):
            batch, g, k = xs
            return preconditioner.update(state, params, batch=batch, key=k, grads=unravel(g))

        first = jax.tree.map(lambda x: x[0], (stacked, G, keys))
        rest = jax.tree.map(lambda x: x[1:], (stacked, G, keys))
        state = update(preconditioner.init(params), first)
        return jax.lax.scan(lambda s, xs: (update(s, xs), None), state, rest)[0]

    return run(params, stacked, G, keys)


def _resolve_m_inv(preconditioner, M_inv, state, params, stacked, G, key, n, dtype):
    if preconditioner is not None and M_inv is not None:
        raise ValueError("pass either preconditioner or M_inv, not both")
    if preconditioner is None:
        if M_inv is None:
            raise ValueError("pass a preconditioner (an object with inverse_operator(state)) or "
                             "M_inv (an operator applying M⁻¹)")
        return as_square_operator(M_inv, "M_inv", n, dtype), "M_inv"
    if hasattr(preconditioner, "inverse_operator"):
        if state is None:
            if not (hasattr(preconditioner, "init") and hasattr(preconditioner, "update")):
                raise TypeError("preconditioner has no init(params)/update(state, params, …); "
                                "pass its state")
            state = preconditioner_state(preconditioner, params, stacked, G, key)
        op = preconditioner.inverse_operator(state)
        name = getattr(preconditioner, "name", type(preconditioner).__name__)
        return as_square_operator(op, "preconditioner.inverse_operator(state)", n, dtype), name
    if isinstance(preconditioner, LinearOperator) or hasattr(preconditioner, "__array__") \
            or callable(preconditioner):
        return as_square_operator(preconditioner, "preconditioner", n, dtype), "M_inv"
    raise TypeError("preconditioner must have inverse_operator(state), or be an operator, array "
                    f"or callable applying M⁻¹; got {type(preconditioner).__name__}")


def diagnose(loss_fn: Callable, params, batches, preconditioner=None, *, M_inv=None, state=None,
             key: jax.Array | None = None, alpha: float | None = None, mu: float = 1.0,
             curvature=None, method: str = "auto", num_steps: int | None = None,
             target_floor: float | None = None, label: str | None = None) -> DesignReport:
    """Measure seed 001's design criteria of a preconditioner at ``params``.

    From B mini-batches (``batches``: a list, or a pytree stacked on a leading axis, B ≥ 2):
    H = the Hessian of the mean mini-batch loss (``precond.curvature.hessian_operator``,
    linearized once per solve; or ``curvature``, any (n, n) operator such as a GGN), the B flat
    mini-batch gradients g_b, then ``local_conditioning`` (L̂, ĉ, κ̂) and ``noise_level`` (K)
    without and with M, Theorem 3.2's floor αL̂K/(2ĉμ) for both at the same α (default: the
    recommended α for M) and the recommended α for M.

    Every preconditioner of ``precond.preconditioners`` is accepted as is, and any object with
    the same protocol.  Unless ``state`` is given, diagnose builds it the way B steps of training
    at ``params`` would: ``init(params)``, then ``update(state, params, batch=batch_b, key=k_b,
    grads=g_b)`` for b = 1..B, in one compiled program, with g_b the mini-batch gradients it
    computes anyway.  So the diagonal ones (AdaGrad, RMSProp, Adam) accumulate the B gradient
    statistics (RMSProp without bias correction, as in training); curvature ones that refresh on
    every update (CG-Hessian/GGN, Jacobi) hold the last mini-batch's curvature and lazily
    refreshed ones (Nyström, spectral) the first's; L-BFGS sees no curvature pair at one point,
    so its M is I.  Then ``inverse_operator(state)`` is M⁻¹.  Or pass ``M_inv`` (an operator,
    a matrix or a callable on flat vectors in ``ravel_pytree`` order).

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``.
      params: the point w, any pytree (n entries).
      batches: B ≥ 2 mini-batches (a list, or stacked on a leading axis).
      preconditioner: a ``precond.preconditioners`` object (or anything with ``init``,
        ``update``, ``inverse_operator``), or an operator/array/callable applying M⁻¹.
      M_inv: M⁻¹ as an operator, array or callable (instead of ``preconditioner``).
      state: the preconditioner's state to use as is (skips the B updates).
      key: jax.random key (required): preconditioner updates and the two eigen-solves.
      alpha: α for both floors (default: the recommended α for M).
      mu: μ, the gradient-alignment constant (1 for unbiased gradients).
      curvature: H as any (n, n) operator (default: the mean mini-batch Hessian).
      method: "auto", "lanczos", "m-lanczos" or "power" for the conditioning with M (see
        ``local_conditioning``).  "auto": Lanczos on M^{-1/2}HM^{-1/2} when M⁻¹ has an exact
        square root, else "m-lanczos" (Lanczos in the M-inner product, M⁻¹ products only, as
        for a CG-based M⁻¹) — so ĉ before and after follow one rule (the smallest Ritz value
        above the PL threshold on an indefinite H), never a Ritz value against a floor.
      num_steps: Lanczos steps.
      target_floor: recommend the α whose floor meets this target instead.
      label: the report's name for the preconditioner.
    """
    key = check_key(key)
    mu = check_positive(mu, "mu")
    alpha = None if alpha is None else check_positive(alpha, "alpha")
    if target_floor is not None:
        check_positive(target_floor, "target_floor")
    flat, unravel = ravel_pytree(params)
    n = flat.size
    if n == 0:
        raise ValueError("params has no array leaves")
    dtype = flat.dtype
    stacked = stack_batches(batches)
    G = minibatch_gradients(loss_fn, params, stacked)
    if not bool(jnp.all(jnp.isfinite(G))):
        raise ValueError("the mini-batch gradients of loss_fn at params contain NaN or inf")
    B = G.shape[0]
    k_pre, k_before, k_after = jax.random.split(key, 3)
    Minv, name = _resolve_m_inv(preconditioner, M_inv, state, params, stacked, G, k_pre, n,
                                dtype)
    if curvature is None:
        H = hessian_operator(BatchMean(loss_fn), params, stacked)
    else:
        H = as_square_operator(curvature, "curvature", n, dtype)
    before = local_conditioning(H, None, k_before, num_steps=num_steps)
    if method == "auto" and spd_sqrt(Minv, "M_inv") is None:
        method = "m-lanczos"
    after = local_conditioning(H, Minv, k_after, method=method, num_steps=num_steps)
    nb, na = noise_level(G), noise_level(G, Minv)
    rec = recommended_step(after.L_hat, after.c_hat, na.K, mu=mu, target_floor=target_floor)
    a = rec if alpha is None else float(alpha)
    return DesignReport(
        preconditioner=label or name, n_params=int(n), num_batches=int(B), alpha=a,
        mu=float(mu),
        L_hat_before=before.L_hat, c_hat_before=before.c_hat, kappa_before=before.kappa,
        K_before=nb.K, K_stderr_before=nb.stderr,
        L_hat_after=after.L_hat, c_hat_after=after.c_hat, kappa_after=after.kappa,
        K_after=na.K, K_stderr_after=na.stderr,
        floor_before=noise_floor(a, before.L_hat, before.c_hat, nb.K, mu),
        floor_after=noise_floor(a, after.L_hat, after.c_hat, na.K, mu),
        recommended_alpha=rec, proxy_before=before.proxy, proxy_after=after.proxy,
        method=after.method)
