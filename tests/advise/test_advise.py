"""precond.advise: closed forms on quadratics, the Lyapunov recursion, rankings, bad input."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import precond
from precond.advise import CANDIDATES, Advice, advise, default_candidates
from precond.advise import registry as reg
from precond.advise.model import SpectralModel, predicted_loss
from precond.diagnostics.conditioning import m_lanczos
from precond.optim import train

KEY = jax.random.key(0)


# ---- a quadratic with known H, Σ, and mini-batch noise of exactly that sample covariance ----

def _quadratic(n=6, B=8, seed=0):
    """F(w) = ½(w − w*)ᵀH(w − w*); batch b adds e_bᵀw, with Σ_b e_b = 0 and
    1/(B−1)Σ_b e_b e_bᵀ = Σ exactly, so ḡ = ∇F and the sample covariance is Σ."""
    rng = np.random.default_rng(seed)
    Qh = np.linalg.qr(rng.normal(size=(n, n)))[0]
    H = Qh @ np.diag(np.geomspace(50.0, 0.5, n)) @ Qh.T
    C = rng.normal(size=(n, n))
    Sigma = 0.05 * (C @ C.T + np.eye(n))
    U = np.linalg.qr(np.c_[np.ones(B), rng.normal(size=(B, n))])[0][:, 1:]  # ⟂ ones
    E = np.sqrt(B - 1) * U @ np.linalg.cholesky(Sigma).T
    w_star = rng.normal(size=n)

    def loss(w, e):
        d = w - w_star
        return 0.5 * d @ (jnp.asarray(H) @ d) + e @ w

    return loss, H, Sigma, jnp.asarray(E), w_star


def _lyapunov_expected_loss(H, P, Sigma, alpha, d0, T):
    """E[F_T] − F* of w ← w − αP(H(w − w*) + ε), Cov ε = Σ: the mean by A^T and the covariance
    by V_{t+1} = AV_tAᵀ + α²PΣPᵀ, both by repeated doubling."""
    n = H.shape[0]
    A = np.eye(n) - alpha * P @ H
    Q = alpha**2 * P @ Sigma @ P.T
    V, Ak = np.zeros((n, n)), np.eye(n)  # V_T and A^T for the bits of T read so far
    Ap, Sp = A, Q  # A^(2^i) and S_(2^i) = Σ_{s<2^i} A^s Q A^sᵀ
    t = int(T)
    while t:
        if t & 1:
            V = Ap @ V @ Ap.T + Sp
            Ak = Ap @ Ak
        Sp = Sp + Ap @ Sp @ Ap.T
        Ap = Ap @ Ap
        t >>= 1
    m = Ak @ d0
    return 0.5 * m @ H @ m + 0.5 * np.trace(H @ V)


def _rmsprop_Minv(G, decay=0.9, eps=1e-8):
    """RMSProp's M at its steady state: the bias-corrected EMA of g²."""
    v = np.zeros(G.shape[1])
    for g in G:
        v = decay * v + (1 - decay) * g**2
    return np.diag(1.0 / (np.sqrt(v / (1 - decay ** len(G))) + eps))


def test_closed_forms_and_lyapunov_prediction_on_a_quadratic():
    loss, H, Sigma, E, w_star = _quadratic()
    n = H.shape[0]
    w0 = jnp.zeros(n)
    a = advise(loss, w0, E, key=KEY, candidates=["sgd", "rmsprop"], budget_seconds=0.01,
               noise="constant", lower_bound=None, predict="model")
    G = np.asarray(H @ (np.zeros(n) - w_star))[None] + np.asarray(E)
    for name, P in (("sgd", np.eye(n)), ("rmsprop", _rmsprop_Minv(G))):
        m = a.measurement(name)
        lam = scipy.linalg.eigh(H, np.linalg.inv(P), eigvals_only=True)  # of M⁻¹H
        np.testing.assert_allclose([m.L_hat, m.c_hat], [lam[-1], lam[0]], rtol=1e-6)
        assert m.K == pytest.approx(np.trace(P @ Sigma), rel=1e-8)
        assert m.alpha == pytest.approx(1 / lam[-1], rel=1e-6) == m.learning_rate
        for T in (m.steps, 3, 40):
            exact = _lyapunov_expected_loss(H, P, Sigma, m.alpha, -w_star, T)
            got = m.predicted_loss if T == m.steps else a.predict(name, steps=T)
            assert got == pytest.approx(exact, rel=0.1), (name, T)
            assert got == pytest.approx(exact, rel=1e-6), (name, T)  # exact: k = n


def test_pilot_fit_reads_the_rate_of_a_one_over_t_decay():
    from precond.advise.advisor import pilot_fit

    start = np.array([2.0, 4.0, 3.0])  # each batch's loss at w₀; F_low = 1
    t = np.arange(6)
    losses = 1.0 + (start[t % 3] - 1.0) / (1 + t / 5.0)
    inv_tau, r_bar = pilot_fit(losses, start, 1.0)
    assert inv_tau == pytest.approx(0.2) and r_bar == pytest.approx(np.mean(1 / (1 + t[3:] / 5)))
    flat = pilot_fit(start[t % 3] + 0.5, start, 1.0)  # no progress: 1/τ < 0, r̄ > 1
    assert flat[0] < 0 and flat[1] > 1


def test_m_lanczos_gauss_weights_and_ritz_vectors():
    rng = np.random.default_rng(3)
    H = np.diag([1.0, 2.0, 3.0, 4.0, 5.0])
    lz = m_lanczos(H, None, jnp.array([1.0, 1.0, 0.0, 0.0, 0.0]), 5)
    assert lz.steps == 2  # the Krylov space closed: exact invariant subspace
    np.testing.assert_allclose(lz.theta, [1.0, 2.0])
    np.testing.assert_allclose(lz.weights, [0.5, 0.5])
    M = np.diag(rng.uniform(0.5, 2.0, 5))
    lz = m_lanczos(H, np.linalg.inv(M), jnp.asarray(rng.normal(size=5)), 5)
    np.testing.assert_allclose(lz.theta, np.sort(np.diag(H) / np.diag(M)), rtol=1e-10)
    X = np.asarray(lz.vectors)
    np.testing.assert_allclose(X.T @ M @ X, np.eye(5), atol=1e-10)


def test_model_matches_closed_form_sums():
    theta, w, s2 = np.array([1.0, 4.0]), np.array([2.0, 8.0]), np.array([0.1, 0.3])
    model = SpectralModel(theta, w, s2)
    alpha, T = 0.2, 7
    rho = (1 - alpha * theta) ** 2
    F0 = 0.5 * np.sum(w / theta) + 1.0
    want = 1.0 + 0.5 * np.sum(w / theta * rho**T) + 0.5 * alpha**2 * np.sum(
        theta * s2 * (1 - rho**T) / (1 - rho))
    got, floor = predicted_loss(F0, model, alpha, T, noise="constant")
    assert got == pytest.approx(want, rel=1e-12)
    assert floor == pytest.approx(0.5 * alpha * np.sum(s2 / (2 - alpha * theta)), rel=1e-12)
    # relative noise (Σ ∝ F − F_low) is smaller as the loss falls
    rel, _ = predicted_loss(F0, model, alpha, T, noise="relative", lower_bound=0.0)
    assert 1.0 < rel < got
    loss, floor = predicted_loss(F0, model, 0.6, 50)  # αθ ≥ 2: unstable
    assert floor == np.inf and loss > 1e6 * F0


# ---- least squares: ill-conditioned → curvature first; well-conditioned → first order ----

def _ls_loss(w, b):
    return 0.5 * jnp.mean((b[0] @ w - b[1]) ** 2)


def _least_squares(scales, noise, seed=0, B=4, m=32):
    """B mini-batches of m rows; one loss function and one shape for all the least-squares
    problems here, so the advisor's compiled programs are shared between them."""
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    n = len(scales)
    X = jax.random.normal(k1, (B, m, n)) * jnp.asarray(scales)
    y = X @ jax.random.normal(k2, (n,)) + noise * jax.random.normal(k3, (B, m))
    return _ls_loss, jnp.zeros(n), (X, y)


@pytest.fixture(scope="module")
def ill():
    loss, w0, data = _least_squares([30.0, 1.0, 0.3, 0.03], 0.0)
    return loss, w0, data, advise(loss, w0, data, key=KEY, candidates=["sgd", "cg-hessian"],
                                  budget_seconds=0.5)


def test_ill_conditioned_least_squares_ranks_curvature_first(ill):
    *_, a = ill
    assert a.ranking == ("cg-hessian", "sgd") and a.recommended == "cg-hessian"
    cg, sgd = a.measurement("cg-hessian"), a.measurement("sgd")
    assert sgd.kappa > 100 * cg.kappa
    assert set(a.learning_rate) == set(a.predicted) == {"sgd", "cg-hessian"}
    target = 1e-8 * a.initial_loss
    t = a.seconds_to("cg-hessian", target)
    assert 0 < t < a.seconds_to("sgd", target)
    assert a.predict("cg-hessian", seconds=t) <= target
    text = a.table()
    assert "cg-hessian" in text and "predicted_loss" in text
    d = json.loads(a.to_json())
    assert d["recommended"] == "cg-hessian" and len(d["measurements"]) == 2


def test_well_conditioned_with_costly_curvature_ranks_first_order_first():
    loss, w0, (X, y) = _least_squares([1.0, 1.2, 0.9, 1.1], 0.5, B=16)

    def sample_batch(key):  # data as a function key → batch: advise draws num_batches of them
        i = jax.random.randint(key, (), 0, X.shape[0])
        return X[i], y[i]

    a = advise(loss, w0, sample_batch, key=KEY, candidates=["cg-hessian", "sgd"], num_batches=4)
    assert a.recommended == "sgd", a.table()
    assert a.num_batches == 4 and a.budget_seconds > 0  # default budget: 100 slowest steps


def test_advice_optimizer_trains(ill):
    loss, w0, data, a = ill
    out = train(loss, w0, a.optimizer(), data, num_epochs=3).check()
    assert out.losses[-1] < 1e-3 * out.losses[0]
    # another rate (a grid's) is another optimizer, not the one timed at the advised rate
    other = dataclasses.replace(a, learning_rate={**a.learning_rate, "sgd": 123.0})
    assert other.optimizer("sgd") is not a.optimizer("sgd")
    assert other.optimizer("cg-hessian") is a.optimizer("cg-hessian")
    with pytest.raises(ValueError, match="no advice"):
        a.optimizer("adam")


def test_verify_gives_a_rank_correlation(ill):
    loss, w0, data, a = ill
    v = a.verify(loss, w0, data, key=KEY, seeds=2, budget_seconds=0.02)
    assert v.names == ("cg-hessian", "sgd") and v.seeds == 2
    assert all(len(v.realized[n]) == 2 for n in v.names)
    assert -1.0 <= v.spearman_rho <= 1.0
    assert json.loads(v.to_json())["realized_ranking"] == list(v.realized_ranking)


def test_a_step_whose_timing_run_diverges_is_halved_then_ranked_last(monkeypatch):
    """w⁴ − bw near w = 0.1: the local curvature 12w² is far below the curvature the steps
    meet, so 1/L̂ diverges; α is halved, and past MAX_HALVINGS the prediction is inf."""
    from precond.advise import advisor

    monkeypatch.setattr(advisor, "MAX_HALVINGS", 1)
    loss = lambda w, b: jnp.sum(w**4) - b @ w  # noqa: E731
    a = advise(loss, jnp.full(2, 0.1), jnp.ones((2, 2)) * jnp.array([[1.0], [1.2]]), key=KEY,
               candidates=["sgd"], budget_seconds=0.1, lower_bound=None, noise="constant")
    m = a.measurement("sgd")
    assert m.diverged and a.predicted["sgd"] == np.inf and "diverged" in m.note
    assert m.alpha == pytest.approx(1 / m.L_hat / 2)


# ---- registry and bad input ----

def test_registry_takes_optimizers_registered_later(monkeypatch):
    from precond.optim import OPTIMIZERS

    monkeypatch.setitem(OPTIMIZERS, "fancy-new", OPTIMIZERS["sgd"])
    assert "fancy-new" in default_candidates()
    assert default_candidates()[: len(CANDIDATES)] == list(CANDIDATES)
    spec = reg.resolve("fancy-new")
    assert spec.preconditioner is None and "M = I" in spec.note
    assert "nncg" not in default_candidates()
    # momentum: half the stability limit of the momentum iteration (SGD: 1/L̂ = half of 2/L̂)
    assert reg.momentum_factor("alpha", 0.9) == 1.0
    assert reg.momentum_factor("heavy-ball", 0.9) == pytest.approx(1.9)
    assert reg.momentum_factor("ema-momentum", 0.9) == pytest.approx(19.0)
    assert reg.resolve("adam").step == "ema-momentum" and reg.resolve("momentum").beta == 0.9


def test_bad_input_is_a_clear_error():
    loss, w0, data = _least_squares([1.0, 2.0, 1.0, 1.0], 0.1)
    with pytest.raises(ValueError, match="unknown candidate 'nope'.*sgd"):
        advise(loss, w0, data, key=KEY, candidates=["sgd", "nope"])
    with pytest.raises(ValueError, match="budget_seconds"):
        advise(loss, w0, data, key=KEY, budget_seconds=0.0)
    with pytest.raises(ValueError, match="scalar"):
        advise(lambda w, b: b[0] @ w, w0, data, key=KEY, candidates=["sgd"])
    with pytest.raises(ValueError, match="NaN"):
        advise(lambda w, b: jnp.nan * jnp.sum(w), w0, data, key=KEY, candidates=["sgd"])
    with pytest.raises(TypeError, match="key"):
        advise(loss, w0, data, key=None)


def test_cg_ggn_is_skipped_without_a_model():
    loss, w0, data = _least_squares([1.0, 2.0, 1.0, 1.0], 0.1)
    with pytest.raises(ValueError, match="no candidate could be measured.*model_fn"):
        advise(loss, w0, data, key=KEY, candidates=["cg-ggn"])


def test_exported_from_precond():
    assert precond.advise is advise and precond.Advice is Advice
