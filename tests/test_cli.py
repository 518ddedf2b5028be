"""The ``precond`` command: help, the ridge demo on a small size, one-line errors for user
mistakes (issue #19), and a SIGKILLed ``precond compare`` that resumes to the same numbers."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from precond.cli import main
from precond.experiments.store import ResultsStore


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "ridge" in out and "demo" in out


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "precond", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "float64" in out


def test_ridge_small(capsys):
    assert main(["ridge", "--n", "300", "--d", "60", "--ranks", "10"]) == 0
    out = capsys.readouterr().out
    assert "Nyström PCG (rank 10)" in out and "converged" in out


def test_ridge_bad_argument(capsys):
    assert main(["ridge", "--lam", "-1"]) == 2
    assert "--lam must be a finite number ≥ 0, got -1.0" in capsys.readouterr().err


# ------------------------------------------------------------------ user errors: one line, exit 2
# The cheapest valid command line of each subcommand that writes to --out.
OUT_COMMANDS = {
    "compare": ["compare", "franke", "--quick", "--methods", "sgd", "--seeds", "1"],
    "quadratic": ["quadratic", "--runs", "2", "--d", "10", "--steps", "20"],
    "osgm-bench": ["osgm-bench", "--quick"],
    "study": ["study", "diagonal", "--tiny"],
    "pinn": ["pinn", "convection", "--quick"],
}


def _one_line_error(capsys, argv, needle):
    """main(argv) exits 2 with one stderr line `precond <command>: error: …` naming `needle`."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"precond {argv[0]}: error: "), err
    assert needle in lines[0] and "Traceback" not in err
    return lines[0]


@pytest.fixture
def read_only_dir(tmp_path):
    """An existing directory nobody may write to (root ignores mode bits: use /sys/kernel)."""
    if os.geteuid() == 0:
        ro = Path("/sys/kernel")
        try:
            (ro / ".precond-probe").touch()
        except OSError:
            yield ro
            return
        pytest.skip("no read-only directory for root here")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    yield ro
    ro.chmod(0o755)


@pytest.mark.parametrize("command", sorted(OUT_COMMANDS))
def test_out_is_an_existing_file(capsys, tmp_path, command):
    f = tmp_path / "file"
    f.write_text("x")
    line = _one_line_error(capsys, OUT_COMMANDS[command] + ["--out", str(f)], "--out")
    assert "is a file, not a directory" in line


@pytest.mark.parametrize("command", sorted(OUT_COMMANDS))
def test_out_under_a_regular_file(capsys, tmp_path, command):
    f = tmp_path / "file"
    f.write_text("x")
    _one_line_error(capsys, OUT_COMMANDS[command] + ["--out", str(f / "sub")],
                    "--out")


@pytest.mark.parametrize("command", sorted(OUT_COMMANDS))
def test_out_read_only(capsys, read_only_dir, command):
    for out in (read_only_dir, read_only_dir / "sub"):
        line = _one_line_error(capsys, OUT_COMMANDS[command] + ["--out", str(out)], "--out")
        assert "cannot" in line


def test_quadratic_record_every_0(capsys, tmp_path):
    _one_line_error(capsys, ["quadratic", "--record-every", "0", "--out", str(tmp_path / "q")],
                    "--record-every")
    assert not (tmp_path / "q").exists()  # checked before any work


def test_compare_diagnostics_epoch_minus_5(capsys, tmp_path):
    _one_line_error(capsys, OUT_COMMANDS["compare"] + ["--diagnostics-epoch", "-5", "--out",
                                                       str(tmp_path / "c")],
                    "--diagnostics-epoch")
    assert not (tmp_path / "c").exists()  # refused before Phase I, nothing written


@pytest.mark.parametrize("flag", ["--seeds", "--phase1-epochs", "--phase2-epochs", "--cg-iters"])
def test_compare_zero_counts(capsys, tmp_path, flag):
    _one_line_error(capsys, ["compare", "franke", flag, "0", "--out", str(tmp_path / "c")], flag)


def test_report_damaged_experiment_json(capsys, tmp_path):
    (tmp_path / "experiment.json").write_text('{"problem": "fr')
    _one_line_error(capsys, ["report", str(tmp_path)], "experiment.json")


def test_report_dir_is_a_file(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    _one_line_error(capsys, ["report", str(tmp_path / "f")], "DIR")


# ------------------------------------------------------- SIGKILL during `precond compare`, resume
# The smallest run the command line allows: franke at its quick size, one method, two seeds,
# a few epochs (7 units: Phase I × 2, the sgd grid × 3 on seed 0, the choice, seed 1 at it).
KILL_ARGV = ["compare", "franke", "--quick", "--methods", "sgd", "--seeds", "2",
             "--phase1-epochs", "3", "--phase2-epochs", "3"]

# Runs `precond compare` and kills itself with SIGKILL at its K-th os.replace: a temporary file
# written, not yet renamed (every file of the store is written that way).
_KILLER = textwrap.dedent("""
    import os, signal, sys
    k, argv, count, real = int(sys.argv[1]), sys.argv[2:], [0], os.replace
    def replace(a, b):
        count[0] += 1
        if count[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
        real(a, b)
    os.replace = replace
    from precond.cli import main
    sys.exit(main(argv))
""")


def _stored_numbers(root: Path) -> dict:
    """Every stored number but timings and checksums, per unit; arrays as lists."""
    store = ResultsStore(root)
    out = {}
    for u in store.all_units():
        uid = u.get("unit") or f"{u['kind']}-{u['method']}"
        out[uid] = {k: v for k, v in u.items() if k not in (
            "time", "compile_time", "seconds", "checksum", "arrays_sha256")}
        if u.get("arrays"):
            out[uid]["npz"] = {k: v.tolist() for k, v in store.load_arrays(uid).items()}
    return out


def test_compare_killed_with_sigkill_resumes_to_the_same_numbers(tmp_path):
    from precond.cli import build_parser
    from precond.cli.compare import config_from_args
    from precond.experiments.protocol import run_protocol
    from precond.problems.registry import get_problem

    killed = tmp_path / "killed"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    # Kill while experiment.json is written (before any unit), then between a unit's arrays
    # file and its record (the second run's third file: experiment.json, phase1-s0.npz, .json).
    for k in (1, 3):
        proc = subprocess.run([sys.executable, "-c", _KILLER, str(k), *KILL_ARGV,
                               "--out", str(killed)], capture_output=True, text=True, env=env)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    units = killed / "units"
    assert [p.name for p in units.glob("*.npz")] == ["phase1-s0.npz"]
    assert not list(units.glob("*.json")) and list(units.glob(".phase1-s0.json.*.tmp"))
    # Resume, and an uninterrupted run, in this process (one compilation serves both).
    config = config_from_args(build_parser().parse_args(KILL_ARGV + ["--out", str(killed)]))
    problem, cache = get_problem("franke", quick=True), {}
    run_protocol(config, killed, problem=problem, compile_cache=cache)
    whole = tmp_path / "whole"
    run_protocol(config, whole, problem=problem, compile_cache=cache)
    got, want = _stored_numbers(killed), _stored_numbers(whole)
    assert set(got) == set(want) and len(want) == 7
    for uid in want:
        assert got[uid] == want[uid], uid
    assert np.isfinite(want["phase1-s0"]["loss"]).all()
