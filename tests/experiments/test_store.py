"""The results store (issue #19): atomic files, units that record what they hold, and stale
units (truncated arrays, a record shortened by hand, other epochs) recomputed with a warning."""

import json
import shutil
import warnings

import numpy as np
import pytest

from precond.experiments.protocol import ProtocolConfig, run_protocol
from precond.experiments.store import ResultsStore, StaleUnitWarning, atomic_write, unit_id
from precond.problems.registry import get_problem

CACHE: dict = {}  # compiled steps shared by the runs of this module
SIZES = {"width": 4, "num_points": 16}
PROBLEM = get_problem("franke", quick=True, **SIZES)  # one problem: its jitted pieces are reused


def _config():
    return ProtocolConfig(problem="franke", quick=True, sizes=SIZES,
                          methods=("sgd",), seeds=1, phase1_epochs=3, phase2_epochs=4,
                          noise_batches=2, tail=2, grids={"sgd": (1e-2,)})


def _numbers(root):
    store = ResultsStore(root)
    out = {}
    for u in store.all_units():
        uid = u.get("unit") or f"{u['kind']}-{u['method']}"
        out[uid] = {k: v for k, v in u.items() if k not in ("time", "compile_time", "checksum",
                                                            "arrays_sha256")}
        if u.get("arrays"):
            out[uid]["npz"] = {k: v.tolist() for k, v in store.load_arrays(uid).items()}
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    run_protocol(_config(), root, compile_cache=CACHE, problem=PROBLEM)
    return root


def _rerun_warns(root, uid):
    with pytest.warns(StaleUnitWarning, match=uid):
        run_protocol(_config(), root, compile_cache=CACHE, problem=PROBLEM)


def test_unit_records_what_it_holds(reference):
    store = ResultsStore(reference)
    rec = store.load_unit(unit_id("phase1", 0))
    assert rec["epochs"] == 3 and len(rec["loss"]) == 3 and len(rec["checksum"]) == 64
    assert rec["arrays"]["params"]["dtype"] == "float64" and len(rec["arrays_sha256"]) == 64
    assert store.unit_problem(unit_id("phase1", 0), epochs=3) is None
    assert store.unit_problem(unit_id("run", "sgd", 0, 1e-2), epochs=4) is None


def test_truncated_unit_npz_is_recomputed_with_warning(reference, tmp_path):
    shutil.copytree(reference, tmp_path, dirs_exist_ok=True)
    npz = tmp_path / "units" / f"{unit_id('phase1', 0)}.npz"
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    _rerun_warns(tmp_path, "phase1-s0")
    assert _numbers(tmp_path) == _numbers(reference)


def test_unit_json_shortened_by_hand_is_recomputed_with_warning(reference, tmp_path):
    shutil.copytree(reference, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "units" / f"{unit_id('run', 'sgd', 0, 1e-2)}.json"
    rec = json.loads(path.read_text())
    rec["loss"], rec["rel_loss"] = rec["loss"][:-1], rec["rel_loss"][:-1]
    path.write_text(json.dumps(rec))  # still valid JSON
    _rerun_warns(tmp_path, "run-sgd-s0-lr0.01")
    assert _numbers(tmp_path) == _numbers(reference)


def test_unit_json_truncated_is_recomputed_with_warning(reference, tmp_path):
    shutil.copytree(reference, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "units" / f"{unit_id('phase1', 0)}.json"
    path.write_text(path.read_text()[:40])  # not JSON any more
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StaleUnitWarning)
        assert ResultsStore(tmp_path).unit_problem("phase1-s0") is not None
    _rerun_warns(tmp_path, "phase1-s0")
    assert _numbers(tmp_path) == _numbers(reference)


def test_unit_with_other_epochs_than_the_configuration_is_stale(tmp_path):
    store = ResultsStore(tmp_path)
    store.save_unit("u", {"status": "ok", "epochs": 2, "loss": [1.0, 0.5]},
                    {"params": np.zeros(3)})
    assert store.has_unit("u", epochs=2, arrays={"params": (3,)})
    with pytest.warns(StaleUnitWarning, match="holds 2 epochs, the experiment asks for 5"):
        assert not store.has_unit("u", epochs=5)
    with pytest.warns(StaleUnitWarning, match="'params' is not of shape"):
        assert not store.has_unit("u", arrays={"params": (4,)})
    rec = json.loads((tmp_path / "units" / "u.json").read_text())
    del rec["checksum"]  # a unit written before checksums
    (tmp_path / "units" / "u.json").write_text(json.dumps(rec))
    with pytest.warns(StaleUnitWarning, match="no checksum"):
        assert not store.has_unit("u")


def test_atomic_write_leaves_nothing_when_writing_fails(tmp_path):
    def boom(f):
        f.write(b"half")
        raise RuntimeError("killed")

    atomic_write(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "a.txt", boom)
    assert (tmp_path / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
