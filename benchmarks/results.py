"""Assemble docs/results.md from the measured sections in docs/results/*.md.

Each section is written by hand from a run whose command it names; this script only orders them,
adds an index, and rewrites the sections' relative links (``compare/x.png`` → ``results/compare/
x.png``) so that they resolve from docs/.
"""

from __future__ import annotations

import argparse
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
ORDER = (
    ("quadratic", "Seed 001 §4.1 — the quadratic diagnostic (issue 3)"),
    ("compare", "Seed 001 §4.2–4.5 — SciML benchmarks, two-phase protocol (issue 5)"),
    ("pinn", "Seeds 003/004 — NysNewton-CG on PINNs (issue 8)"),
    ("nysadmm", "Seed 004 — NysADMM and the scikit-learn estimators (issue 6)"),
    ("promise", "Seed 003 — PROMISE with default hyperparameters (issue 7)"),
    ("osgm", "Seed 003 — OSGM, solved instances (issue 9)"),
    ("study", "Seed 002 — the three mechanisms (issue 10)"),
    ("advise", "precond advise — predicted vs realized at equal wall time (issue 20)"),
)
HEADER = """# precond results

Measured results, each section with the command that produced it and the machine it ran on.
Speed comparisons against peer libraries are in [benchmarks.md](benchmarks.md).  This file is
assembled by `python benchmarks/results.py` from `docs/results/*.md`.

"""
_LINK = re.compile(r"(\]\()(?!https?://|/|#)([^)]+\))")


def assemble(sections: pathlib.Path) -> str:
    parts = [HEADER]
    for name, title in ORDER:
        if (sections / f"{name}.md").exists():
            parts.append(f"- [{title}](results/{name}.md)\n")
    parts.append("\n")
    for name, _ in ORDER:
        path = sections / f"{name}.md"
        if path.exists():
            parts.append(_LINK.sub(r"\1results/\2", path.read_text()).rstrip() + "\n\n")
    return "".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    args = ap.parse_args()
    pathlib.Path(args.out).write_text(assemble(ROOT / "docs" / "results"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
