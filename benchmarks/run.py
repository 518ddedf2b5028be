"""Run every benchmarks/bench_*.py and assemble docs/benchmarks.md from their sections.

Each bench script writes one markdown section to docs/bench/<name>.md (with the command that
made it); this script runs them in turn (``--only NAME`` to run one) and concatenates the
sections, so a partial rerun keeps the other sections' last results.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER = """# precond benchmarks

Produced by `make bench` (which runs `python benchmarks/run.py`); each section names the command
that measured it and the device.  Timings are medians of repeats after a warm-up call; compile
time is reported apart.  Ratios compare programs measured in the same run.

"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--only", nargs="*", default=None, help="bench names (bench_NAME.py)")
    ap.add_argument("--assemble-only", action="store_true")
    args = ap.parse_args()
    sections = ROOT / "docs" / "bench"
    sections.mkdir(parents=True, exist_ok=True)
    failed = []
    if not args.assemble_only:
        for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
            name = script.stem.removeprefix("bench_")
            if args.only and name not in args.only:
                continue
            print(f"== {script.name}", flush=True)
            rc = subprocess.call([sys.executable, str(script), "--out",
                                  str(sections / f"{name}.md")], cwd=ROOT)
            if rc:
                failed.append(name)
    parts = [HEADER] + [p.read_text() for p in sorted(sections.glob("*.md"))]
    pathlib.Path(args.out).write_text("\n".join(parts))
    print(f"wrote {args.out}" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
