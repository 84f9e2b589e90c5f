"""The runs a server may serve, found under ``--runs`` folders (the work loads their generators
through :func:`ganforge.sample.load_generator`).

Clients name runs; names are only ever looked up in this index (built from directory listings),
never joined onto a path, so no client string reaches the filesystem.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class RunInfo:
    name: str
    path: Path
    meta: dict

    def files(self) -> dict[str, Path]:
        """The run's viewable files (fixed names inside the run directory)."""
        return {"samples": self.path / "samples" / "latest.png", "loss_curves": self.path / "loss_curves.png",
                "summary": self.path / "summary.json"}

    def describe(self) -> dict[str, Any]:
        spec = self.meta.get("spec", {})
        files = self.files()
        return {"name": self.name, "resolution": spec.get("resolution"), "channels": spec.get("channels"),
                "num_classes": spec.get("num_classes", 0), "class_names": self.meta.get("class_names", []),
                "z_dim": spec.get("z_dim"),
                "checkpoint": latest_checkpoint_name(self.path),
                "samples": f"/v1/runs/{self.name}/samples.png" if files["samples"].is_file() else None,
                "loss_curves": f"/v1/runs/{self.name}/loss_curves.png" if files["loss_curves"].is_file() else None,
                "summary": f"/v1/runs/{self.name}/summary"}


def latest_checkpoint_name(run_dir: Path) -> str | None:
    from ..train import checkpoint

    found = checkpoint.list_checkpoints(run_dir / "checkpoints")
    return found[-1].name if found else None


def _read_meta(path: Path) -> dict | None:
    try:
        meta = json.loads((path / "run.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) and meta.get("task") == "gan" and isinstance(meta.get("spec"), dict) else None


class RunIndex:
    """GAN runs under the given folders (a folder that is a run, or whose sub-folders are runs),
    re-scanned at most every ``rescan_s`` seconds."""

    def __init__(self, roots: list[Path], rescan_s: float = 5.0) -> None:
        self.roots = [Path(r) for r in roots]
        self.rescan_s = rescan_s
        self._runs: dict[str, RunInfo] = {}
        self._scanned = 0.0
        self._lock = threading.Lock()

    def _scan(self) -> dict[str, RunInfo]:
        found: dict[str, RunInfo] = {}
        for root in self.roots:
            candidates = [root] if (root / "run.json").is_file() else (
                sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
            for path in candidates:
                meta = _read_meta(path)
                if meta is None:
                    continue
                base = re.sub(r"[^A-Za-z0-9._-]", "_", path.name).lstrip("._-") or "run"
                name, i = base[:120], 2
                while name in found:
                    name, i = f"{base[:115]}-{i}", i + 1
                found[name] = RunInfo(name, path, meta)
        return found

    def all(self) -> dict[str, RunInfo]:
        with self._lock:
            if time.monotonic() - self._scanned > self.rescan_s:
                self._runs = self._scan()
                self._scanned = time.monotonic()
            return dict(self._runs)

    def get(self, name: str) -> RunInfo | None:
        if not isinstance(name, str) or not NAME_RE.match(name):
            return None
        return self.all().get(name)

