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

from ..errors import CaptionError, DataError
from ..imageio import open_image
from .folder import GRAY_MODES, ROOT_CLASS, _workers, class_of, list_images, require_folder

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
    captions: dict | None = None                               # text.captions.caption_report, when captioned

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
        if self.captions is not None:
            from ..text.captions import format_caption_report

            lines.append(format_caption_report(self.captions))
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


def _inspect_files(files: list[Path], progress: bool) -> list[dict]:
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        infos = pool.map(_inspect, files)
        if progress:
            from tqdm.auto import tqdm

            infos = tqdm(infos, total=len(files), unit="img", desc="checking")
        return list(infos)


def check_folder(path: str | os.PathLike, *, progress: bool = False) -> FolderReport:
    """Inspect every file under ``path`` (recursively); raises DataError only if it is not a folder.
    A captioned folder (x.txt beside x.png, metadata.jsonl or metadata.csv) gets a ``captions``
    section (``ganforge.text.captions.caption_report``)."""
    from ..text.captions import caption_report, has_captions

    root = require_folder(path)
    report = _check_folder(root, progress)[0]
    if has_captions(root):
        try:
            report.captions = caption_report(root)
        except CaptionError as exc:  # e.g. a metadata.csv that is not UTF-8: reported, not raised
            report.captions = {"error": str(exc)}
    return report


def _check_folder(root: Path, progress: bool) -> tuple[FolderReport, dict[Path, dict]]:
    """The folder's report and each image file's inspection (sha256, mode, format, size, error)."""
    files, others = list_images(root)
    infos = _inspect_files(files, progress)

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
    return report, dict(zip(files, infos))


# --------------------------------------------------------------------------- image-to-image layouts

LAYOUTS = ("auto", "single", "paired", "unpaired", "labels")
SHOW = 5  # names listed per problem in the text report
KEEP = 50  # names kept per problem in the JSON report


def _kind(mode: str | None) -> str:
    return "gray" if mode in GRAY_MODES else "colour"


@dataclass
class PairReport:
    """``data check`` of an image-to-image dataset: each side's FolderReport plus what goes wrong
    between the sides (names without a counterpart, pairs of different sizes or channel kinds,
    label maps that are not class ids or hold ids beyond --num-classes)."""

    root: str
    layout: str                                                # paired | paired-ab | unpaired | labels
    sides: dict[str, FolderReport] = field(default_factory=dict)
    pairs: int = 0                                             # matched names (paired, labels)
    unmatched_count: dict[str, int] = field(default_factory=dict)
    unmatched: dict[str, list[str]] = field(default_factory=dict)  # first KEEP names per side
    size_mismatch: list[dict] = field(default_factory=list)    # {"name", side: [w, h], ..., "aspect_differs"}
    channel_mismatch: list[dict] = field(default_factory=list)  # {"name", side: mode, ...}
    channels: dict[str, dict[str, int]] = field(default_factory=dict)  # side -> {"gray": n, "colour": m}
    odd_width: list[str] = field(default_factory=list)          # side-by-side images of odd width
    num_classes: int | None = None
    classes: dict[str, int] = field(default_factory=dict)       # class id -> label maps containing it
    max_class: int | None = None
    out_of_range: list[dict] = field(default_factory=list)      # {"path", "max"}
    not_class_ids: list[dict] = field(default_factory=list)     # {"path", "mode"}: colour label maps
    lossy_labels: list[str] = field(default_factory=list)       # JPEG label maps
    problems: list[str] = field(default_factory=list)           # one line per kind of problem

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["sides"] = {k: v.to_dict() for k, v in self.sides.items()}
        return out

    def format(self) -> str:
        what = {"paired": "paired (A/ + B/ matched by name)", "paired-ab": "paired (side-by-side AB images)",
                "unpaired": "unpaired (A/ and B/)", "labels": "label maps + images"}[self.layout]
        head = f"{self.root}: {what}"
        if self.layout in ("paired", "labels"):
            head += f", {self.pairs} pair(s), {sum(self.unmatched_count.values())} file(s) without a counterpart"
        lines = [head]
        for side, rep in self.sides.items():
            lines.append(f"--- {side} ---")
            lines.append(rep.format())
        if self.sides:
            lines.append("---")
        lines.append("channels: " + "; ".join(
            f"{side} " + ", ".join(f"{k}={v}" for k, v in kinds.items() if v) for side, kinds in self.channels.items()))
        for side, names in self.unmatched.items():
            if names:
                more = self.unmatched_count[side] - min(SHOW, len(names))
                lines.append(f"no counterpart in {side} ({self.unmatched_count[side]}): " + ", ".join(names[:SHOW])
                             + (f", ... {more} more" if more > 0 else ""))
        sides = list(self.sides)
        if self.size_mismatch:
            lines.append(f"size mismatches within pairs ({len(self.size_mismatch)}):")
            lines.extend(f"  {m['name']}: " + ", ".join(f"{s} {m[s][0]}x{m[s][1]}" for s in sides if s in m)
                         + (" (different aspect ratio: the crops do not align)" if m["aspect_differs"] else "")
                         for m in self.size_mismatch[:SHOW])
        if self.channel_mismatch:
            lines.append(f"pairs whose gray/colour combination differs from most pairs ({len(self.channel_mismatch)}):")
            lines.extend(f"  {m['name']}: " + ", ".join(f"{s} {m[s]}" for s in sides if s in m)
                         for m in self.channel_mismatch[:SHOW])
        if self.odd_width:
            lines.append(f"odd widths, halves differ by a column ({len(self.odd_width)}): "
                         + ", ".join(self.odd_width[:SHOW]))
        if self.layout == "labels":
            ids = ", ".join(f"{k}={v}" for k, v in self.classes.items())
            lines.append(f"class ids (label maps containing each): {ids or '-'}"
                         + (f"; max id {self.max_class}" if self.max_class is not None else ""))
            if self.num_classes is not None:
                lines.append(f"--num-classes {self.num_classes}: {len(self.out_of_range)} label map(s) out of range"
                             + (":" if self.out_of_range else ""))
                lines.extend(f"  {o['path']}: max id {o['max']}" for o in self.out_of_range[:SHOW])
            if self.not_class_ids:
                lines.append(f"not class-id images ({len(self.not_class_ids)}; save as palette or greyscale PNG):")
                lines.extend(f"  {o['path']}: {o['mode']}" for o in self.not_class_ids[:SHOW])
            if self.lossy_labels:
                lines.append(f"JPEG label maps ({len(self.lossy_labels)}; compression invents class ids at edges): "
                             + ", ".join(self.lossy_labels[:SHOW]))
        lines.append("problems: none" if not self.problems else f"problems ({len(self.problems)}):")
        lines.extend(f"  {p}" for p in self.problems)
        return "\n".join(lines)


def _keyed(folder: Path, infos: dict[Path, dict]) -> dict[str, tuple[Path, dict]]:
    return {p.relative_to(folder).with_suffix("").as_posix(): (p, info) for p, info in infos.items()}


def _channels(infos: dict[Path, dict]) -> dict[str, int]:
    kinds = Counter(_kind(i["mode"]) for i in infos.values() if i["error"] is None)
    return {"gray": kinds["gray"], "colour": kinds["colour"]}


def _aspect_differs(a, b) -> bool:
    (wa, ha), (wb, hb) = a, b
    return abs(wa * hb - wb * ha) > max(wa, ha, wb, hb)


def _match(report: PairReport, names: tuple[str, str], folders: tuple[Path, Path],
           infos: tuple[dict[Path, dict], dict[Path, dict]], *, compare_channels: bool) -> list[str]:
    """Fill pairs, unmatched, size and channel mismatches; return the matched names."""
    a, b = _keyed(folders[0], infos[0]), _keyed(folders[1], infos[1])
    matched = sorted(a.keys() & b.keys())
    report.pairs = len(matched)
    for side, own, other in ((names[0], a, b), (names[1], b, a)):
        missing = sorted(own.keys() - other.keys())
        report.unmatched_count[side] = len(missing)
        report.unmatched[side] = missing[:KEEP]
    good = [(name, a[name][1], b[name][1]) for name in matched
            if a[name][1]["error"] is None and b[name][1]["error"] is None]
    for name, ia, ib in good:
        if ia["size"] != ib["size"]:
            report.size_mismatch.append({"name": name, names[0]: list(ia["size"]), names[1]: list(ib["size"]),
                                         "aspect_differs": _aspect_differs(ia["size"], ib["size"])})
    if compare_channels and good:
        # gray A with colour B (colourisation) is a layout, not a fault: flag pairs unlike the majority
        combos = Counter((_kind(ia["mode"]), _kind(ib["mode"])) for _, ia, ib in good)
        usual = combos.most_common(1)[0][0]
        report.channel_mismatch = [{"name": name, names[0]: ia["mode"], names[1]: ib["mode"]}
                                   for name, ia, ib in good if (_kind(ia["mode"]), _kind(ib["mode"])) != usual]
    return matched


def _scan_labels(report: PairReport, folder: Path, infos: dict[Path, dict], num_classes: int | None) -> None:
    import numpy as np

    from .labelmap import LABEL_MODES, read_label_map

    present: Counter[int] = Counter()
    top = None
    for path, info in infos.items():
        rel = path.relative_to(folder).as_posix()
        if path.suffix.lower() in (".jpg", ".jpeg"):
            report.lossy_labels.append(rel)
        if info["error"] is not None:
            continue
        if info["mode"] not in LABEL_MODES:
            report.not_class_ids.append({"path": rel, "mode": info["mode"]})
            continue
        try:
            arr = read_label_map(path)
        except Exception:  # noqa: BLE001 -- unreadable files are already listed in the side's report
            continue
        ids = np.flatnonzero(np.bincount(arr.ravel())) if arr.size else np.array([], dtype=np.int64)
        present.update(int(i) for i in ids)
        if ids.size:
            mx = int(ids[-1])
            top = mx if top is None else max(top, mx)
            if num_classes is not None and mx >= num_classes:
                report.out_of_range.append({"path": rel, "max": mx})
    report.classes = {str(k): present[k] for k in sorted(present)}
    report.max_class = top


def _problems(report: PairReport) -> list[str]:
    out = []
    for side, rep in report.sides.items():
        if rep.corrupt:
            out.append(f"{len(rep.corrupt)} unreadable file(s) in {side}")
        if not rep.images:
            out.append(f"no readable images in {side}")
    for side, n in report.unmatched_count.items():
        if n:
            out.append(f"{n} file(s) in {side} without a counterpart of the same name")
    if report.layout in ("paired", "labels") and not report.pairs:
        out.append("no pairs at all")
    if report.size_mismatch:
        bad = sum(m["aspect_differs"] for m in report.size_mismatch)
        out.append(f"{len(report.size_mismatch)} pair(s) of different sizes ({bad} with different aspect ratios)")
    if report.channel_mismatch:
        out.append(f"{len(report.channel_mismatch)} pair(s) with a gray/colour combination unlike the others")
    for side, kinds in report.channels.items():
        if kinds.get("gray") and kinds.get("colour"):
            out.append(f"{side} mixes gray ({kinds['gray']}) and colour ({kinds['colour']}) images")
    if report.odd_width:
        out.append(f"{len(report.odd_width)} side-by-side image(s) of odd width")
    if report.out_of_range:
        out.append(f"{len(report.out_of_range)} label map(s) with class ids >= --num-classes {report.num_classes} "
                   f"(max id {report.max_class})")
    if report.not_class_ids:
        out.append(f"{len(report.not_class_ids)} label map(s) are colour images, not class ids")
    if report.lossy_labels:
        out.append(f"{len(report.lossy_labels)} label map(s) saved as JPEG")
    return out


def resolve_layout(root: Path, layout: str, num_classes: int | None) -> str:
    """The layout ``auto`` stands for in ``root``: labels/ + images/ (or A/ + B/ with
    --num-classes) is a label-map set; A/ + B/ sharing names is paired, without any shared name
    unpaired; anything else a plain folder (``single``). Side-by-side AB images only on request."""
    from .labelmap import label_folders

    if layout not in LAYOUTS:
        raise DataError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout != "auto":
        return layout
    if (root / "labels").is_dir() and (root / "images").is_dir():
        return "labels"
    if (root / "A").is_dir() and (root / "B").is_dir():
        if num_classes is not None and label_folders(root) is not None:
            return "labels"
        key = lambda folder: {p.relative_to(folder).with_suffix("").as_posix()  # noqa: E731
                              for p in list_images(folder)[0]}
        return "paired" if key(root / "A") & key(root / "B") else "unpaired"
    return "single"


def check_dataset(path: str | os.PathLike, *, layout: str = "auto", num_classes: int | None = None,
                  progress: bool = False) -> FolderReport | PairReport:
    """``check_folder`` for a plain folder (``layout="single"``, or ``auto`` finding no A/ + B/ or
    labels/ + images/), a PairReport for the image-to-image layouts."""
    from .labelmap import label_folders

    root = require_folder(path)
    if num_classes is not None and num_classes < 1:
        raise DataError(f"--num-classes must be at least 1, got {num_classes}")
    layout = resolve_layout(root, layout, num_classes)
    if layout == "single":
        if num_classes is not None:
            raise DataError(f"--num-classes is for label maps, but {root} has no labels/ + images/ or A/ + B/ "
                            f"folders (or pass --layout labels)")
        return check_folder(root, progress=progress)
    if layout in ("paired", "unpaired") and num_classes is not None:
        raise DataError("--num-classes is for label maps: use --layout labels (or auto)")

    if layout == "labels":
        folders = label_folders(root)
        if folders is None:
            raise DataError(f"{root}: --layout labels needs labels/ and images/ (or A/ and B/) folders")
        names = (folders[0].name, folders[1].name)
    elif layout == "unpaired" or (root / "A").is_dir() and (root / "B").is_dir():
        if not ((root / "A").is_dir() and (root / "B").is_dir()):
            raise DataError(f"{root}: --layout unpaired needs A/ and B/ folders")
        folders, names = (root / "A", root / "B"), ("A", "B")
    else:  # paired without A/ + B/: side-by-side AB images
        report = PairReport(root=str(root), layout="paired-ab")
        rep, infos = _check_folder(root, progress)
        report.sides = {"AB": rep}
        report.channels = {"AB": _channels(infos)}
        report.pairs = rep.images
        report.odd_width = [p.relative_to(root).as_posix() for p, i in infos.items()
                            if i["error"] is None and i["size"][0] % 2]
        report.problems = _problems(report)
        return report

    report = PairReport(root=str(root), layout=layout, num_classes=num_classes)
    checked = [_check_folder(folder, progress) for folder in folders]
    report.sides = {name: rep for name, (rep, _) in zip(names, checked)}
    infos = (checked[0][1], checked[1][1])
    if layout == "labels":
        report.channels = {names[1]: _channels(infos[1])}
        _match(report, names, folders, infos, compare_channels=False)
        _scan_labels(report, folders[0], infos[0], num_classes)
    else:
        report.channels = {name: _channels(info) for name, info in zip(names, infos)}
        if layout == "paired":
            _match(report, names, folders, infos, compare_channels=True)
    report.problems = _problems(report)
    return report
