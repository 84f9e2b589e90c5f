"""``ganforge data check DIR``: what is in an image folder before you spend hours training on it
(class balance, sizes, odd modes, broken files, duplicates that a GAN would over-learn)."""

from __future__ import annotations

import hashlib
import os
import statistics
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..imageio import open_image
from .folder import ROOT_CLASS, _workers, class_of, list_images, require_folder

# (upper bound of width/height, label); the last bucket is open-ended.
ASPECT_BUCKETS = ((0.5, "<0.5 tall"), (0.8, "0.5-0.8"), (1.25, "0.8-1.25 squarish"), (2.0, "1.25-2"),
                  (float("inf"), ">=2 wide"))


@dataclass
class FolderReport:
    root: str
    images: int = 0                                            # readable images
    per_class: dict[str, int] = field(default_factory=dict)
    width: dict[str, float] = field(default_factory=dict)      # min / median / max
    height: dict[str, float] = field(default_factory=dict)
    aspect: dict[str, int] = field(default_factory=dict)       # bucket -> count
    modes: dict[str, int] = field(default_factory=dict)        # original PIL mode -> count
    formats: dict[str, int] = field(default_factory=dict)
    corrupt: list[dict[str, str]] = field(default_factory=list)  # {"path", "error"}
    duplicates: list[list[str]] = field(default_factory=list)    # groups of identical files
    ignored: int = 0                                           # files without an image suffix

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def format(self) -> str:
        def stats(d: dict[str, float]) -> str:
            return f"{d['min']:g} / {d['median']:g} / {d['max']:g}" if d else "-"

        lines = [f"{self.root}: {self.images} readable images, {len(self.corrupt)} unreadable, "
                 f"{self.ignored} non-image files ignored"]
        lines.append(f"classes ({len(self.per_class)}): "
                     + ", ".join(f"{k}={v}" for k, v in self.per_class.items()))
        lines.append(f"width  min/median/max: {stats(self.width)}")
        lines.append(f"height min/median/max: {stats(self.height)}")
        lines.append("aspect (w/h): " + ", ".join(f"{k}: {v}" for k, v in self.aspect.items() if v))
        lines.append("modes: " + ", ".join(f"{k}={v}" for k, v in self.modes.items()))
        lines.append("formats: " + ", ".join(f"{k}={v}" for k, v in self.formats.items()))
        if self.corrupt:
            lines.append(f"unreadable ({len(self.corrupt)}):")
            lines.extend(f"  {c['path']}: {c['error']}" for c in self.corrupt)
        if self.duplicates:
            extra = sum(len(g) - 1 for g in self.duplicates)
            lines.append(f"exact duplicates: {len(self.duplicates)} group(s), {extra} redundant file(s):")
            lines.extend("  " + "  ==  ".join(group) for group in self.duplicates)
        return "\n".join(lines)


def _inspect(path: Path) -> dict:
    """sha256 of the bytes, the original mode/format from the header, and a full decode through
    the same reader training uses, so "unreadable" here means "skipped by training"."""
    info: dict = {"sha256": None, "mode": None, "format": None, "size": None, "error": None}
    try:
        info["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        with Image.open(path) as probe:
            info["mode"], info["format"] = probe.mode, probe.format
        info["size"] = open_image(path, "RGB").size  # after EXIF rotation: what training sees
    except Exception as exc:  # noqa: BLE001 -- a report lists failures, it does not stop on them
        info["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return info


def _summary(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def check_folder(path: str | os.PathLike, *, progress: bool = False) -> FolderReport:
    """Inspect every file under ``path`` (recursively); raises DataError only if it is not a folder."""
    root = require_folder(path)
    files, others = list_images(root)
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        infos = pool.map(_inspect, files)
        if progress:
            from tqdm.auto import tqdm

            infos = tqdm(infos, total=len(files), unit="img", desc="checking")
        infos = list(infos)

    report = FolderReport(root=str(root), ignored=len(others))
    rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    classes: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    aspect = Counter({label: 0 for _, label in ASPECT_BUCKETS})
    widths, heights = [], []
    by_hash: dict[str, list[str]] = defaultdict(list)
    has_sub = any(class_of(root, p) is not None for p in files)
    for file, info in zip(files, infos):
        if info["sha256"] is not None:
            by_hash[info["sha256"]].append(rel(file))
        if info["mode"] is not None:
            modes[info["mode"]] += 1
            formats[info["format"] or "?"] += 1
        if info["error"] is not None:
            report.corrupt.append({"path": rel(file), "error": info["error"]})
            continue
        name = class_of(root, file) or (ROOT_CLASS if has_sub else (root.name or "images"))
        classes[name] += 1
        w, h = info["size"]
        widths.append(w)
        heights.append(h)
        ratio = w / h
        aspect[next(label for bound, label in ASPECT_BUCKETS if ratio < bound)] += 1

    report.images = len(widths)
    report.per_class = dict(sorted(classes.items()))
    report.width, report.height = _summary(widths), _summary(heights)
    report.aspect = dict(aspect)
    report.modes = dict(modes.most_common())
    report.formats = dict(formats.most_common())
    report.duplicates = sorted(group for group in by_hash.values() if len(group) > 1)
    return report
