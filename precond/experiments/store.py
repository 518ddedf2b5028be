"""The results store: one directory per experiment, one file per finished unit.

Layout of ``root``::

    experiment.json            the configuration (checked on resume)
    units/<unit-id>.json       one finished unit (Phase I seed, Phase II run, diagnostics)
    units/<unit-id>.npz        arrays a unit hands on (Phase I parameters, a snapshot)

Every file is written atomically (temporary file in the same directory, then ``os.replace``),
so an interrupted run leaves only whole units behind and rerunning skips exactly those.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ResultsStore", "unit_id"]


def unit_id(*parts: Any) -> str:
    """A file-safe id from parts: ints become seeds ``s<i>``, floats rates ``lr<x>``, other
    characters than letters, digits, ``_`` and ``.`` become ``_``.

    Args:
      *parts: strings, seeds (int) and learning rates (float), in order.

    Example:
      >>> from precond.experiments.store import unit_id
      >>> unit_id("run", "cg-ggn", 0, 0.1)
      'run-cg_ggn-s0-lr0.1'
    """
    out = []
    for p in parts:
        if isinstance(p, float):
            out.append(f"lr{p:.3g}")
        elif isinstance(p, int) and not isinstance(p, bool):
            out.append(f"s{p}")
        else:
            out.append(re.sub(r"[^A-Za-z0-9_.]+", "_", str(p)))
    return "-".join(out)


def _clean(x):
    """JSON-safe copy: NaN/inf → None, numpy → Python."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, np.generic):
        return _clean(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


class ResultsStore:
    """Atomic JSON/NPZ files under ``root`` (created on demand); layout in the module docstring.

    Args:
      root: the experiment's directory.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.units = self.root / "units"

    def _atomic_write(self, path: Path, write) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def write_json(self, name: str, obj: dict) -> None:
        """Write ``obj`` atomically to ``root/name`` (NaN and inf become null).

        Args:
          name: the path relative to ``root``.
          obj: JSON-ready data; numpy scalars and arrays are converted.
        """
        data = json.dumps(_clean(obj), indent=1, sort_keys=True).encode()
        self._atomic_write(self.root / name, lambda f: f.write(data))

    def read_json(self, name: str) -> dict | None:
        """The JSON file ``root/name``, or None when it does not exist.

        Args:
          name: the path relative to ``root``.
        """
        path = self.root / name
        if not path.exists():
            return None
        return json.loads(path.read_text())

    def has_unit(self, uid: str) -> bool:
        """Whether a unit finished (its JSON exists).

        Args:
          uid: the unit's id (:func:`unit_id`).
        """
        return (self.units / f"{uid}.json").exists()

    def save_unit(self, uid: str, record: dict,
                  arrays: dict[str, np.ndarray] | None = None) -> None:
        """Write the unit's arrays first, then its JSON: the JSON marks the unit finished.

        Args:
          uid: the unit's id (:func:`unit_id`).
          record: the unit's JSON-ready record.
          arrays: arrays the unit hands on (saved as ``<uid>.npz``), if any.
        """
        if arrays:
            self._atomic_write(self.units / f"{uid}.npz",
                               lambda f: np.savez(f, **{k: np.asarray(v) for k, v in
                                                        arrays.items()}))
        self.write_json(f"units/{uid}.json", dict(record, unit=uid))

    def load_unit(self, uid: str) -> dict | None:
        """A unit's record, or None when it has not finished.

        Args:
          uid: the unit's id (:func:`unit_id`).
        """
        return self.read_json(f"units/{uid}.json")

    def load_arrays(self, uid: str) -> dict[str, np.ndarray]:
        """The arrays a unit saved, name → array.

        Args:
          uid: the unit's id (:func:`unit_id`).
        """
        with np.load(self.units / f"{uid}.npz") as z:
            return {k: z[k] for k in z.files}

    def all_units(self) -> list[dict]:
        """Every finished unit's record, in file-name order."""
        if not self.units.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.units.glob("*.json"))]
