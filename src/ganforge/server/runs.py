"""The runs a server may serve, found under ``--runs`` folders (the work loads their generators
through :func:`ganforge.sample.load_generator`).

Clients name runs; names are only ever looked up in this index (built from directory listings),
never joined onto a path, so no client string reaches the filesystem. No symlink is followed out of
a ``--runs`` folder: every file served or loaded is resolved and must lie inside the (resolved)
folder it was found under; a link that stays inside is followed. A run folder that resolves
outside is not listed; a run whose files do are refused (:meth:`RunInfo.escapes`).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


FILES = {"samples": "samples/latest.png", "loss_curves": "loss_curves.png", "summary": "summary.json",
         "log": "log.jsonl"}


def inside(path: Path, root: Path) -> Path | None:
    """``path`` resolved (every symlink followed), if that lies inside ``root`` (already resolved)."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return real if real == root or real.is_relative_to(root) else None


@dataclass(frozen=True)
class RunInfo:
    name: str
    path: Path
    meta: dict
    root: Path | None = None  # the resolved --runs folder it was found under (None: the run folder)

    @property
    def jail(self) -> Path:
        return self.root if self.root is not None else self.path.resolve()

    def file(self, which: str) -> Path | None:
        """One of the run's viewable files (:data:`FILES`), resolved, if it is a file inside the
        ``--runs`` folder; else None."""
        real = inside(self.path / FILES[which], self.jail)
        return real if real is not None and real.is_file() else None

    def files(self) -> dict[str, Path | None]:
        return {which: self.file(which) for which in FILES}

    def escapes(self) -> list[str]:
        """The run's files the model loader reads (``run.json``, ``config.json``, everything under
        ``checkpoints/``) that resolve outside the ``--runs`` folder (or dangle), by relative name.
        A published network named on the command line has none."""
        if self.meta.get("published"):
            return []
        bad = [name for name in ("run.json", "config.json")
               if (self.path / name).exists() or (self.path / name).is_symlink()
               if inside(self.path / name, self.jail) is None]
        top = self.path / "checkpoints"
        if top.is_symlink() or top.exists():
            if inside(top, self.jail) is None:
                return bad + ["checkpoints"]
            for folder, dirs, names in os.walk(top, followlinks=False):
                for entry in dirs + names:
                    p = Path(folder) / entry
                    if inside(p, self.jail) is None:
                        bad.append(str(p.relative_to(self.path)))
        return bad

    def describe(self) -> dict[str, Any]:
        spec = self.meta.get("spec", {})
        files = {which: self.file(which) for which in ("samples", "loss_curves")}
        return {"name": self.name, "resolution": spec.get("resolution"), "channels": spec.get("channels"),
                "num_classes": spec.get("num_classes", 0), "class_names": self.meta.get("class_names", []),
                "z_dim": spec.get("z_dim"), "text": bool(self.meta.get("text")),  # text-to-image: takes a prompt
                "w_space": (bool(self.meta.get("published")) or self.meta.get("arch") == "stylegan2")  # /v1/edit, /v1/project
                           and not self.meta.get("text"),
                "checkpoint": latest_checkpoint_name(self.path, self.jail),
                "samples": f"/v1/runs/{self.name}/samples.png" if files["samples"] else None,
                "loss_curves": f"/v1/runs/{self.name}/loss_curves.png" if files["loss_curves"] else None,
                "summary": f"/v1/runs/{self.name}/summary"}


def is_model_file(arg: Path) -> bool:
    """A published network given to ``--runs`` in place of a folder: an official ``.pkl``, a
    rosinality ``.pt`` or a registered name such as ``stylegan2-ffhq`` (:mod:`ganforge.published`)."""
    from ..published import is_published

    return not arg.is_dir() and is_published(str(arg))


def published_info(arg: Path) -> RunInfo:
    """A published network served like a run (its spec read once, when the server starts). Its
    path is the file (or the registered name) the model loader reads; it has no run files."""
    import dataclasses

    from ..published import load_published

    gen = load_published(str(arg))
    base = re.sub(r"[^A-Za-z0-9._-]", "_", arg.stem if arg.suffix else str(arg)).lstrip("._-") or "model"
    meta = {"task": "gan", "spec": dataclasses.asdict(gen.spec), "class_names": list(gen.class_names),
            "published": True}
    return RunInfo(base[:120], arg, meta, None)


def latest_checkpoint_name(run_dir: Path, jail: Path | None = None) -> str | None:
    """The newest complete checkpoint's name (only those inside ``jail`` when given)."""
    from ..train import checkpoint

    found = checkpoint.list_checkpoints(run_dir / "checkpoints")
    if jail is not None:
        found = [p for p in found if inside(p, jail) is not None]
    return found[-1].name if found else None


def _read_meta(path: Path, jail: Path) -> dict | None:
    real = inside(path / "run.json", jail)
    if real is None:
        return None
    try:
        meta = json.loads(real.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) and meta.get("task") == "gan" and isinstance(meta.get("spec"), dict) else None


class RunIndex:
    """GAN runs under the given folders (a folder that is a run, or whose sub-folders are runs),
    re-scanned at most every ``rescan_s`` seconds."""

    def __init__(self, roots: list[Path], rescan_s: float = 5.0) -> None:
        self.roots = [Path(r) for r in roots]
        self._models = {r: published_info(r) for r in self.roots if is_model_file(r)}  # read once, here
        self.roots = [r for r in self.roots if r not in self._models]
        self._jails = {r: r.resolve() for r in self.roots}
        self.rescan_s = rescan_s
        self._runs: dict[str, RunInfo] = {}
        self._scanned = 0.0
        self._lock = threading.Lock()

    def _scan(self) -> dict[str, RunInfo]:
        found: dict[str, RunInfo] = {info.name: info for info in self._models.values()}
        for root in self.roots:
            candidates = [root] if (root / "run.json").is_file() else (
                sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
            jail = self._jails[root]
            for path in candidates:
                if inside(path, jail) is None:  # a link out of the folder
                    continue
                meta = _read_meta(path, jail)
                if meta is None:
                    continue
                base = re.sub(r"[^A-Za-z0-9._-]", "_", path.name).lstrip("._-") or "run"
                name, i = base[:120], 2
                while name in found:
                    name, i = f"{base[:115]}-{i}", i + 1
                found[name] = RunInfo(name, path, meta, jail)
        return found

    def all(self) -> dict[str, RunInfo]:
        with self._lock:
            if time.monotonic() - self._scanned > self.rescan_s:
                self._runs = self._scan()
                self._scanned = time.monotonic()
            return dict(self._runs)

    def dirs(self) -> list[str]:
        """The served folders, as given and resolved (never shown to a client)."""
        return sorted({str(p) for r in self.roots for p in (self._jails[r], r.absolute())}, key=len, reverse=True)

    def get(self, name: str) -> RunInfo | None:
        if not isinstance(name, str) or not NAME_RE.match(name):
            return None
        return self.all().get(name)

