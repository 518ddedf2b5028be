"""The ``precond`` command: help, and the ridge demo on a small size."""

import subprocess
import sys

from precond.cli import main


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
