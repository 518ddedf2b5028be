"""Two-phase protocol: resume skips finished units with identical results; divergence is
recorded and the experiment completes; the report renders from the store alone."""

import json
import os

import numpy as np
import pytest

from precond.experiments.protocol import ProtocolConfig, run_protocol
from precond.experiments.report import write_report
from precond.experiments.store import ResultsStore, unit_id

SIZES = {"width": 4, "num_points": 16}
CACHE: dict = {}  # compiled steps shared by the runs of this module (same problem and config)


def _config(**kw):
    base = dict(problem="franke", quick=True, sizes=SIZES, methods=("sgd", "cg-ggn"), seeds=2,
                phase1_epochs=5, phase2_epochs=6, noise_batches=3, tail=2,
                grids={"sgd": (1e-2, 1e6), "cg-ggn": (0.5,)})
    base.update(kw)
    return ProtocolConfig(**base)


def _numbers(root):
    """Everything but timings (and the checksums, which cover them), per unit."""
    out = {}
    for u in ResultsStore(root).all_units():
        out[u.get("unit") or f"{u['kind']}-{u['method']}"] = {k: v for k, v in u.items()
                          if k not in ("time", "compile_time", "seconds", "checksum",
                                       "arrays_sha256")}
    return out


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    run_protocol(_config(), root, compile_cache=CACHE)
    return root


def test_divergence_recorded_and_run_completes(full_run):
    store = ResultsStore(full_run)
    bad = store.load_unit(unit_id("run", "sgd", 0, 1e6))
    assert bad["status"] == "diverged" and "diverged at epoch" in bad["message"]
    choice = store.load_unit(unit_id("choice", "sgd"))
    assert choice["lr"] == 1e-2 and choice["final_losses"][1] is None  # inf stored as null
    # the other seed ran at the chosen rate, and the CG method and its diagnostics finished
    assert store.load_unit(unit_id("run", "sgd", 1, 1e-2))["status"] == "ok"
    diag = store.load_unit(unit_id("diag", "cg-ggn"))
    for k in ("L_hat_identity", "L_hat_preconditioned", "K_identity", "K_preconditioned"):
        assert np.isfinite(diag[k]) and diag[k] > 0
    # K = tr(M⁻¹Σ) < tr(Σ)/λ_min(M) and M = G + λI ⪰ λI: a sanity bound on the CG solve
    assert diag["K_preconditioned"] <= diag["K_identity"] / diag["damping"] * 1.01
    # relative loss starts at 1 and the Phase II start is shared by all methods
    runs = [u for u in store.all_units() if u.get("kind") == "phase2" and u["seed"] == 0]
    assert {r["loss"][0] for r in runs} == {runs[0]["loss"][0]}
    assert all(r["rel_loss"][0] == 1.0 for r in runs)
    assert not [p for p in os.listdir(full_run / "units") if p.endswith(".tmp")]


def test_resume_skips_finished_units_and_reproduces(full_run, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_protocol(_config(), tmp_path, stop_after=4, compile_cache=CACHE)
    first = {p.name: (p.stat().st_mtime_ns, p.read_bytes())
             for p in (tmp_path / "units").iterdir()}
    assert 4 <= len([n for n in first if n.endswith(".json")]) < len(_numbers(full_run))
    run_protocol(_config(), tmp_path, compile_cache=CACHE)
    for name, (mtime, data) in first.items():  # no finished unit redone
        p = tmp_path / "units" / name
        assert p.stat().st_mtime_ns == mtime and p.read_bytes() == data
    assert _numbers(tmp_path) == _numbers(full_run)  # identical to an uninterrupted run
    # a third run computes nothing new
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "units").iterdir()}
    # stop_after=1 would raise if a unit were computed
    run_protocol(_config(), tmp_path, stop_after=1, compile_cache=CACHE)
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "units").iterdir()}


def test_changed_configuration_refused(full_run):
    with pytest.raises(ValueError, match="different configuration"):
        run_protocol(_config(phase2_epochs=7), full_run)


def test_report_renders_from_store(full_run):
    path = write_report(full_run, command="precond compare franke …")
    text = path.read_text()
    assert "## Ranking" in text and "| sgd | 0.01 |" in text and "cg-ggn" in text
    assert "## Diagnostics" in text and "1e+06: —" in text  # the diverged grid value
    assert (full_run / "loss_vs_epoch.png").stat().st_size > 1000
    assert (full_run / "loss_vs_time.png").exists()
    js = json.loads((full_run / "results.json").read_text())
    assert set(js["ranking"]) == {"sgd", "cg-ggn"} and js["chosen_lr"]["sgd"] == 0.01
    rows = (full_run / "results.csv").read_text().splitlines()
    assert rows[0].startswith("method,lr,seed,status,epoch")
    assert len(rows) > 1 + 2 * 6


def test_bad_config_raises():
    with pytest.raises(ValueError, match="seeds"):
        _config(seeds=0)
    with pytest.raises(ValueError, match="noise_batches"):
        _config(noise_batches=1)
    assert np.isclose(_config().grid("sgd")[1], 1e6)


def test_the_mesh_splits_each_point_set_of_a_batch_on_its_own():
    # A PINN's batch holds interior and boundary points of different counts: on a mesh each is
    # split on its own rows (a 1-device mesh is `precond compare`'s default), not rejected as
    # "leaves with different row counts".
    import jax

    from precond.distributed import data_mesh
    from precond.experiments.protocol import _Runner
    from precond.problems.registry import get_problem

    problem = get_problem("poisson", quick=True)
    batch = _Runner(problem, _config(problem="poisson"), mesh=data_mesh(1)).sample(
        jax.random.key(0))
    rows = {leaf.shape[0] for leaf in jax.tree.leaves(batch)}
    assert len(rows) > 1  # the point sets differ in size
    plain = jax.jit(problem.sample_batch)(jax.random.key(0))
    for a, b in zip(jax.tree.leaves(batch), jax.tree.leaves(plain), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
