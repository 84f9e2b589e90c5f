"""Captions of an image folder, in the three layouts people actually have (detected in this order):

- a prepared dataset (``ganforge data prepare``): ``captions.json`` beside ``index.json``, keyed by
  the source paths that ``index.json`` lists;
- ``metadata.jsonl`` at the root, one JSON object a line with ``file_name`` (the image's path
  relative to the root) and ``text`` (a string, or a list of strings: several captions) — the
  Hugging Face ImageFolder convention;
- ``metadata.csv`` at the root with the same two columns (read with the csv module; one caption a
  row, several rows may name the same file);
- sidecar files: ``x.txt`` beside ``x.jpg`` / ``x.png``, one caption a line (blank lines ignored).

Bad captions never stop a run: an empty caption, a caption file that is not UTF-8, a metadata row
naming no image are skipped and counted (``read_captions(...).problems``; ``load_captions`` warns
with one line); whitespace runs (newlines, tabs) become one space; a caption longer than
``MAX_CAPTION_CHARS`` (1000) characters is cut at the last word boundary before it and counted as
truncated. Only when nothing usable is left is it an error (``CaptionError``, one line).
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import CaptionError, DataError, GanforgeError

MAX_CAPTION_CHARS = 1000  # longer captions are truncated (at a word boundary) and counted
CAPTIONS_FILE = "captions.json"  # a prepared dataset's captions, beside index.json
CAPTIONS_FORMAT = "ganforge-captions"
METADATA_FILES = ("metadata.jsonl", "metadata.csv")
SIDECAR_SUFFIX = ".txt"
KEEP = 50  # names kept per problem in reports


@dataclass
class CaptionProblems:
    """What was skipped or changed while reading captions (counts, and the first KEEP names)."""

    empty: int = 0                                          # empty captions (or empty caption files)
    truncated: int = 0                                      # captions cut to MAX_CAPTION_CHARS
    unreadable: list[dict] = field(default_factory=list)    # {"path", "error"}: not UTF-8, bad JSON rows
    unreadable_count: int = 0
    orphans: list[str] = field(default_factory=list)        # rows / files naming no image in the folder
    orphan_count: int = 0

    def add_unreadable(self, path: str, error: str) -> None:
        self.unreadable_count += 1
        if len(self.unreadable) < KEEP:
            self.unreadable.append({"path": path, "error": error})

    def add_orphan(self, name: str) -> None:
        self.orphan_count += 1
        if len(self.orphans) < KEEP:
            self.orphans.append(name)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def summary(self) -> str:
        """One line naming what was skipped, or '' when nothing was."""
        parts = []
        if self.empty:
            parts.append(f"{self.empty} empty caption(s) skipped")
        if self.unreadable_count:
            first = self.unreadable[0]
            parts.append(f"{self.unreadable_count} unreadable caption file(s)/row(s) skipped "
                         f"(first: {first['path']}: {first['error']})")
        if self.orphan_count:
            parts.append(f"{self.orphan_count} caption(s) naming no image skipped (first: {self.orphans[0]})")
        if self.truncated:
            parts.append(f"{self.truncated} caption(s) longer than {MAX_CAPTION_CHARS} characters truncated")
        return "; ".join(parts)


@dataclass
class CaptionSet:
    root: str
    layout: str | None                                       # prepared | jsonl | csv | sidecar | None
    captions: dict[str, list[str]]                           # image path (posix, relative) -> captions
    images: list[str]                                        # every image of the folder (relative paths)
    problems: CaptionProblems


def clean_caption(text: str) -> tuple[str, bool]:
    """(the caption with control characters dropped and whitespace runs made one space, cut to
    MAX_CAPTION_CHARS at a word boundary; whether it was cut)."""
    text = "".join(" " if ch.isspace() else ch for ch in text if unicodedata.category(ch) != "Cc" or ch.isspace())
    text = " ".join(text.split())
    if len(text) <= MAX_CAPTION_CHARS:
        return text, False
    cut = text[:MAX_CAPTION_CHARS]
    space = cut.rfind(" ")
    if space > MAX_CAPTION_CHARS // 2:
        cut = cut[:space]
    return cut.rstrip(), True


def _is_prepared(root: Path) -> bool:
    return (root / "index.json").is_file() and (root / "images.npy").is_file()


def caption_layout(root: str | os.PathLike) -> str | None:
    """Which caption layout ``root`` uses (``prepared``, ``jsonl``, ``csv``, ``sidecar``), or None."""
    root = Path(root)
    if _is_prepared(root):
        return "prepared" if (root / CAPTIONS_FILE).is_file() else None
    if (root / "metadata.jsonl").is_file():
        return "jsonl"
    if (root / "metadata.csv").is_file():
        return "csv"
    from ..data.folder import list_images

    files, _ = list_images(root)
    return "sidecar" if any(f.with_suffix(SIDECAR_SUFFIX).is_file() for f in files) else None


def has_captions(root: str | os.PathLike) -> bool:
    return Path(root).is_dir() and caption_layout(root) is not None


def _add(captions: dict[str, list[str]], problems: CaptionProblems, key: str, text) -> None:
    if not isinstance(text, str):
        problems.add_unreadable(key, f"caption is {type(text).__name__}, not text")
        return
    cleaned, cut = clean_caption(text)
    if not cleaned:
        problems.empty += 1
        return
    problems.truncated += cut
    captions.setdefault(key, []).append(cleaned)


def _key(file_name) -> str | None:
    """The normalised relative posix path a metadata row names, or None when it is not one."""
    if not isinstance(file_name, str) or not file_name.strip():
        return None
    path = PurePosixPath(file_name.strip().replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        return None
    return path.as_posix()


def _decode(data: bytes) -> tuple[str | None, str | None]:
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"


def _read_jsonl(path: Path, images: set[str], captions: dict, problems: CaptionProblems) -> None:
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        where = f"{path.name} line {number}"
        line, error = _decode(raw)
        if error is not None:
            problems.add_unreadable(where, error)
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.add_unreadable(where, f"not JSON ({exc.msg})")
            continue
        if not isinstance(row, dict) or "file_name" not in row or "text" not in row:
            problems.add_unreadable(where, "not an object with file_name and text")
            continue
        key = _key(row["file_name"])
        if key is None or key not in images:
            problems.add_orphan(str(row["file_name"]))
            continue
        texts = row["text"] if isinstance(row["text"], list) else [row["text"]]
        if not texts:
            problems.empty += 1
        for text in texts:
            _add(captions, problems, key, text)


def _read_csv(path: Path, images: set[str], captions: dict, problems: CaptionProblems) -> None:
    text, error = _decode(path.read_bytes())
    if error is not None:
        raise CaptionError(f"{path}: {error}; save it as UTF-8")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        fields = reader.fieldnames or []
        if "file_name" not in fields or "text" not in fields:
            raise CaptionError(f"{path}: needs the columns file_name and text (found: {', '.join(fields) or 'none'})")
        for row in reader:
            key = _key(row.get("file_name"))
            if key is None or key not in images:
                problems.add_orphan(str(row.get("file_name")))
                continue
            _add(captions, problems, key, row.get("text") or "")
    except csv.Error as exc:
        raise CaptionError(f"{path}: not a readable CSV file ({exc})") from None


def _read_sidecars(root: Path, files: list[Path], captions: dict, problems: CaptionProblems) -> None:
    for image in files:
        side = image.with_suffix(SIDECAR_SUFFIX)
        if not side.is_file():
            continue
        key = image.relative_to(root).as_posix()
        try:
            data = side.read_bytes()
        except OSError as exc:
            problems.add_unreadable(side.relative_to(root).as_posix(), exc.strerror or str(exc))
            continue
        text, error = _decode(data)
        if error is not None:
            problems.add_unreadable(side.relative_to(root).as_posix(), error)
            continue
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            problems.empty += 1
        for line in lines:
            _add(captions, problems, key, line)


def _read_prepared(root: Path) -> CaptionSet:
    index = json.loads((root / "index.json").read_text())
    images = list(index.get("source", {}).get("paths") or [])
    try:
        stored = json.loads((root / CAPTIONS_FILE).read_text(encoding="utf-8"))
        captions = {str(k): [str(t) for t in v] for k, v in stored["captions"].items()}
        problems = CaptionProblems(**stored.get("problems", {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CaptionError(f"{root / CAPTIONS_FILE} is unreadable ({exc}); prepare the dataset again") from None
    return CaptionSet(str(root), "prepared", captions, images, problems)


def read_captions(root: str | os.PathLike) -> CaptionSet:
    """Every caption under ``root`` with what was skipped; an empty ``captions`` (layout None) when
    the folder has no caption source at all. Raises only for a folder that is not one, or a
    metadata.csv that cannot be read at all."""
    from ..data.folder import list_images

    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root} is not a folder")
    layout = caption_layout(root)
    if layout == "prepared":
        return _read_prepared(root)
    files = [] if _is_prepared(root) else list_images(root)[0]
    names = [f.relative_to(root).as_posix() for f in files]
    captions: dict[str, list[str]] = {}
    problems = CaptionProblems()
    if layout == "jsonl":
        _read_jsonl(root / "metadata.jsonl", set(names), captions, problems)
    elif layout == "csv":
        _read_csv(root / "metadata.csv", set(names), captions, problems)
    elif layout == "sidecar":
        _read_sidecars(root, files, captions, problems)
    ordered = {name: captions[name] for name in names if name in captions}
    return CaptionSet(str(root), layout, ordered, names, problems)


def load_captions(root: str | os.PathLike, *, warn: bool = True) -> dict[str, list[str]]:
    """Image path relative to ``root`` (posix) -> its captions, for any of the layouts above (or a
    prepared dataset). What was skipped is reported in one warning line; no usable caption at all
    is a ``CaptionError``."""
    found = read_captions(root)
    summary = found.problems.summary()
    if not found.captions:
        if found.layout is None:
            raise CaptionError(f"no captions in {root}: put x.txt (one caption a line) beside each x.png/x.jpg, "
                               f"or a metadata.jsonl / metadata.csv with file_name and text")
        raise CaptionError(f"no usable captions in {root} ({found.layout} layout): {summary or 'none found'}")
    if warn and summary:
        warnings.warn(f"captions in {root}: {summary}", stacklevel=2)
    return found.captions


def captions_for(captions: dict[str, list[str]], paths: list[str]) -> list[list[str]]:
    """The captions of each of ``paths`` in order ([] for an image without captions), e.g. for a
    prepared dataset's ``index.json['source']['paths']``."""
    return [list(captions.get(p, [])) for p in paths]


def write_captions(folder: str | os.PathLike, found: CaptionSet) -> Path:
    """Write ``found`` as ``folder/captions.json`` (what a prepared dataset keeps)."""
    path = Path(folder) / CAPTIONS_FILE
    body = {"format": CAPTIONS_FORMAT, "format_version": 1, "layout": found.layout,
            "max_caption_chars": MAX_CAPTION_CHARS, "captions": found.captions, "problems": found.problems.to_dict()}
    path.write_text(json.dumps(body, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def caption_report(root: str | os.PathLike) -> dict:
    """Counts for ``ganforge data check``: images with and without captions, captions per image,
    caption length in words and characters (min / median / max), and what was skipped."""
    found = read_captions(root)
    without = [name for name in found.images if name not in found.captions]
    texts = [t for caps in found.captions.values() for t in caps]
    return {
        "layout": found.layout,
        "images": len(found.images),
        "with_captions": len(found.captions),
        "without_captions": len(without),
        "without_captions_first": without[:KEEP],
        "captions": len(texts),
        "captions_per_image": _stats([len(c) for c in found.captions.values()]),
        "words": _stats([len(t.split()) for t in texts]),
        "characters": _stats([len(t) for t in texts]),
        "max_caption_chars": MAX_CAPTION_CHARS,
        **found.problems.to_dict(),
    }


def format_caption_report(report: dict) -> str:
    """The report as lines of text for ``data check``."""
    def stats(d: dict) -> str:
        return f"{d['min']:g} / {d['median']:g} / {d['max']:g}" if d else "-"

    if "error" in report:
        return f"captions: unreadable: {report['error']}"
    lines = [f"captions ({report['layout']}): {report['captions']} caption(s) for {report['with_captions']} of "
             f"{report['images']} image(s); {report['without_captions']} image(s) without captions"]
    if report["without_captions_first"]:
        more = report["without_captions"] - min(5, len(report["without_captions_first"]))
        lines.append("  without captions: " + ", ".join(report["without_captions_first"][:5])
                     + (f", ... {more} more" if more > 0 else ""))
    lines.append(f"  captions per image min/median/max: {stats(report['captions_per_image'])}")
    lines.append(f"  caption words min/median/max: {stats(report['words'])}; "
                 f"characters: {stats(report['characters'])}")
    if report["empty"]:
        lines.append(f"  empty captions skipped: {report['empty']}")
    if report["truncated"]:
        lines.append(f"  captions truncated to {report['max_caption_chars']} characters: {report['truncated']}")
    if report["unreadable_count"]:
        lines.append(f"  unreadable caption files/rows skipped ({report['unreadable_count']}):")
        lines.extend(f"    {u['path']}: {u['error']}" for u in report["unreadable"][:5])
    if report["orphan_count"]:
        lines.append(f"  captions naming no image ({report['orphan_count']}): " + ", ".join(report["orphans"][:5]))
    return "\n".join(lines)


def read_prompts_file(path: str | Path) -> list[str]:
    """The prompts of a file, one a line (blank lines skipped), as ``ganforge sample --prompts``."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GanforgeError(f"cannot read --prompts {path}: {exc}") from None
    prompts = [line.strip() for line in lines if line.strip()]
    if not prompts:
        raise GanforgeError(f"--prompts {path} holds no prompt (one per line)")
    return prompts
