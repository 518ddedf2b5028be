"""The results store: one directory per experiment, one file per finished unit.

Layout of ``root``::

    experiment.json            the configuration (checked on resume)
    units/<unit-id>.json       one finished unit (Phase I seed, Phase II run, diagnostics)
    units/<unit-id>.npz        arrays a unit hands on (Phase I parameters, a snapshot)

Every file is written atomically (:func:`atomic_write`: a temporary file in the same directory,
then ``os.replace``), so an interrupted run leaves only whole files behind.  Each unit records
what it holds: a SHA-256 checksum of its own JSON content (``checksum``) and, when it has arrays,
their names, shapes and dtypes and the SHA-256 of the ``.npz`` bytes (``arrays``,
``arrays_sha256``).  A unit whose record or arrays do not match (edited or shortened by hand,
truncated, written before checksums, or with other epochs or shapes than the experiment asks
for) is *stale*: :meth:`ResultsStore.has_unit` warns (:class:`StaleUnitWarning`) and says it is
not there, so the protocol recomputes it instead of reusing it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ResultsStore", "StaleUnitWarning", "atomic_write", "unit_id"]


class StaleUnitWarning(UserWarning):
    """A stored unit does not match what it records or what the experiment asks for; it is
    recomputed."""


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[Any], None]) -> Path:
    """Write a file atomically: a temporary file in the same directory, fsync, ``os.replace``.

    A reader (or a rerun after a kill) sees either the old file or the whole new one, never a
    half-written one; the temporary file is removed when writing fails.

    Args:
      path: the file to write; its directory is created if missing.
      data: the content (``str`` is encoded as UTF-8), or a function that writes to a binary
        file object (``fig.savefig``, ``np.savez``).

    Returns:
      ``path`` as a :class:`~pathlib.Path`.

    Example:
      >>> import tempfile, pathlib
      >>> from precond.experiments.store import atomic_write
      >>> p = atomic_write(pathlib.Path(tempfile.mkdtemp()) / "a.txt", "hello")
      >>> p.read_text()
      'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


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


def _dumps(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)


def _checksum(record: dict) -> str:
    """SHA-256 of a cleaned record's canonical JSON, its own ``checksum`` field left out."""
    body = {k: v for k, v in record.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# Per-epoch series of a unit: each has ``epochs`` entries.
_SERIES = ("loss", "rel_loss", "time", "metric")


class ResultsStore:
    """Atomic JSON/NPZ files under ``root`` (created on demand); layout in the module docstring.

    Args:
      root: the experiment's directory.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.units = self.root / "units"

    def write_json(self, name: str, obj: dict) -> None:
        """Write ``obj`` atomically to ``root/name`` (NaN and inf become null).

        Args:
          name: the path relative to ``root``.
          obj: JSON-ready data; numpy scalars and arrays are converted.
        """
        atomic_write(self.root / name, _dumps(_clean(obj)))

    def read_json(self, name: str) -> dict | None:
        """The JSON file ``root/name``, or None when it does not exist.

        Args:
          name: the path relative to ``root``.

        Raises:
          ValueError: the file is not valid JSON (it names the file).
        """
        path = self.root / name
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is damaged (not valid JSON: {err}); delete it or use "
                             "another directory") from None

    def unit_problem(self, uid: str, *, epochs: int | None = None,
                     arrays: dict[str, tuple[int, ...]] | None = None) -> str | None:
        """Why the stored unit ``uid`` cannot be reused, or None when it is whole and matches.

        Args:
          uid: the unit's id (:func:`unit_id`).
          epochs: the epochs a unit that finished (status ``ok``) must hold.
          arrays: name → shape of the arrays it must hold.
        """
        path = self.units / f"{uid}.json"
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            return f"its record is unreadable ({type(err).__name__})"
        if not isinstance(rec, dict) or "checksum" not in rec:
            return "its record has no checksum (written by an older precond, or edited)"
        if rec["checksum"] != _checksum(rec):
            return "its record does not match its checksum (edited or shortened)"
        n = rec.get("epochs")
        if n is not None:
            for k in _SERIES:
                if k in rec and (rec[k] is None or len(rec[k]) != n):
                    return f"its {k} holds {0 if rec[k] is None else len(rec[k])} of {n} epochs"
            if epochs is not None and rec.get("status") == "ok" and n != epochs:
                return f"it holds {n} epochs, the experiment asks for {epochs}"
        held = rec.get("arrays") or {}
        for name, shape in (arrays or {}).items():
            if name not in held or tuple(held[name]["shape"]) != tuple(shape):
                return f"its array {name!r} is not of shape {tuple(shape)}"
        if held:
            npz = self.units / f"{uid}.npz"
            try:
                data = npz.read_bytes()
            except OSError:
                return "its arrays file is missing"
            if hashlib.sha256(data).hexdigest() != rec.get("arrays_sha256"):
                return "its arrays file does not match its checksum (truncated or replaced)"
        return None

    def has_unit(self, uid: str, *, epochs: int | None = None,
                 arrays: dict[str, tuple[int, ...]] | None = None) -> bool:
        """Whether a unit finished and can be reused: its JSON exists and matches
        (:meth:`unit_problem`); a stale one is reported with a :class:`StaleUnitWarning`.

        Args:
          uid: the unit's id (:func:`unit_id`).
          epochs: the epochs a unit that finished (status ``ok``) must hold.
          arrays: name → shape of the arrays it must hold.
        """
        if not (self.units / f"{uid}.json").exists():
            return False
        why = self.unit_problem(uid, epochs=epochs, arrays=arrays)
        if why is not None:
            warnings.warn(f"unit {uid} in {self.units} is recomputed: {why}", StaleUnitWarning,
                          stacklevel=2)
            return False
        return True

    def save_unit(self, uid: str, record: dict,
                  arrays: dict[str, np.ndarray] | None = None) -> None:
        """Write the unit's arrays first, then its JSON: the JSON marks the unit finished.

        The JSON records the arrays' shapes and dtypes, the SHA-256 of the ``.npz`` bytes and
        a checksum of its own content.

        Args:
          uid: the unit's id (:func:`unit_id`).
          record: the unit's JSON-ready record.
          arrays: arrays the unit hands on (saved as ``<uid>.npz``), if any.
        """
        rec = dict(record, unit=uid)
        if arrays:
            arrays = {k: np.asarray(v) for k, v in arrays.items()}
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            data = buf.getvalue()
            atomic_write(self.units / f"{uid}.npz", data)
            rec["arrays"] = {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                             for k, v in arrays.items()}
            rec["arrays_sha256"] = hashlib.sha256(data).hexdigest()
        rec = json.loads(_dumps(_clean(rec)))  # the checksum covers what a reader will see
        rec["checksum"] = _checksum(rec)
        atomic_write(self.units / f"{uid}.json", _dumps(rec))

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

        Raises:
          ValueError: the arrays file is damaged (it names the file).
        """
        path = self.units / f"{uid}.npz"
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise ValueError(f"{path} is damaged ({err}); delete it to recompute the "
                             "unit") from None

    def all_units(self) -> list[dict]:
        """Every finished unit's record, in file-name order; a unit whose JSON is unreadable
        is left out with a :class:`StaleUnitWarning`."""
        if not self.units.exists():
            return []
        out = []
        for p in sorted(self.units.glob("*.json")):
            try:
                out.append(json.loads(p.read_text()))
            except (OSError, ValueError) as err:
                warnings.warn(f"unit {p.stem} in {self.units} is left out: unreadable "
                              f"({type(err).__name__})", StaleUnitWarning, stacklevel=2)
        return out
