"""Captioned digits: offline demo and test data for text-to-image.

``build_captioned_digits(out_dir, n=...)`` writes ``00000.png`` + ``00000.txt`` (several phrasings
of one caption, one a line) per image and ``labels.json`` (digit, ink, background, stroke, size
per file; the palette; the held-out pairs). The shapes are MNIST's (from GANFORGE_DATA_DIR or the
cache when already there: nothing is downloaded) or scikit-learn's 8×8 digits upsampled (always
available); each is drawn in one ink colour on one background colour, thick or regular, full size
or small. The ``holdout`` (ink, digit) pairs never occur in the written images or captions, so a
model can be asked for a combination it never saw.

For evaluation: :func:`evaluation_prompts` (seen / unseen combinations, three phrasings of each),
:func:`classify_ink` / :func:`classify_background` (the palette colour nearest to the median of a
generated image's ink / border pixels) and :func:`ink_mask` (the ink as white-on-black grey, what
ganforge's MNIST classifier reads, whatever the colours).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError

INKS: dict[str, tuple[int, int, int]] = {
    "red": (235, 45, 45), "green": (40, 200, 70), "blue": (60, 110, 255), "yellow": (250, 220, 50),
    "white": (245, 245, 245),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"black": (15, 15, 15), "white": (240, 240, 240),
                                               "blue": (35, 60, 190)}
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
STROKES = ("regular", "thick")
SIZES = ("regular", "small")
TEMPLATES = (
    "a {ink} {word} on a {bg} background",
    "{ink} {num}",
    "the digit {word} in {ink}",
    "a {ink} number {num} on {bg}",
    "{word} written in {ink} on a {bg} background",
    "the number {num} in {ink} ink",
    "{ink} digit {word}, {bg} background",
    "a {attrs}{ink} {num} on a {bg} background",
)
# the paraphrases the benchmark compares ("seven" / "7" / "the digit seven")
PHRASINGS = {"word": "a {ink} {word} on a {bg} background", "numeral": "a {ink} {num} on a {bg} background",
             "digit": "the digit {word} in {ink} on a {bg} background"}
LABELS_FILE = "labels.json"


def allowed(ink: str, background: str) -> bool:
    """An ink is never drawn on a background of its own colour name."""
    return ink != background


def combos(holdout=()) -> tuple[list[tuple[int, str, str]], list[tuple[int, str, str]]]:
    """(seen, unseen) (digit, ink, background) triples for a holdout of (ink, digit) pairs."""
    held = {(str(c), int(d)) for c, d in holdout}
    every = [(d, i, b) for d in range(10) for i in INKS for b in BACKGROUNDS if allowed(i, b)]
    return [t for t in every if (t[1], t[0]) not in held], [t for t in every if (t[1], t[0]) in held]


def caption(template: str, digit: int, ink: str, background: str, stroke: str = "regular",
            size: str = "regular") -> str:
    attrs = ("small " if size == "small" else "") + ("thick " if stroke == "thick" else "")
    return template.format(ink=ink, bg=background, word=WORDS[digit], num=digit, attrs=attrs)


def check_holdout(holdout) -> tuple[tuple[str, int], ...]:
    out = []
    for item in holdout or ():
        if isinstance(item, str):
            colour, _, digit = item.partition(":")
            item = (colour, digit)
        try:
            colour, digit = str(item[0]).strip().lower(), int(item[1])
        except (TypeError, ValueError, IndexError):
            raise DataError(f"holdout must be colour:digit pairs such as red:7, got {item!r}") from None
        if colour not in INKS or not 0 <= digit <= 9:
            raise DataError(f"holdout {colour}:{digit}: the colour must be one of {', '.join(INKS)} and the digit 0-9")
        out.append((colour, digit))
    out = list(dict.fromkeys(out))
    if any(sum(c == colour for c, _ in out) >= 10 for colour in INKS):
        raise DataError("a holdout may not remove every digit of an ink colour")
    return tuple(out)


def _shapes(n: int, resolution: int, source: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(n grey digit shapes uint8 n×1×R×R, their digits, the source's name)."""
    from ..data.builtin import load_builtin, present_locally

    if source not in ("auto", "mnist", "digits"):
        raise DataError(f"source must be auto, mnist or digits, got {source!r}")
    if source == "mnist" or (source == "auto" and present_locally("mnist", "train")):
        ds = load_builtin("mnist:train", resolution=resolution, channels=1, max_images=min(n, 60000), progress=False)
        name = "mnist"
    else:
        ds = load_builtin("digits", resolution=resolution, channels=1, progress=False)
        name = "digits"
    reps = -(-n // len(ds.images))
    return ds.images.repeat(reps, 1, 1, 1)[:n], ds.labels.repeat(reps)[:n], name


def render(shapes: torch.Tensor, inks: list[str], backgrounds: list[str], strokes: list[str],
           sizes: list[str]) -> torch.Tensor:
    """Colour grey shapes (uint8 N×1×R×R): ink over background, dilated when thick, shrunk when small."""
    mask = shapes.float() / 255.0
    thick = torch.tensor([s == "thick" for s in strokes]).view(-1, 1, 1, 1)
    mask = torch.where(thick, F.max_pool2d(mask, 3, 1, 1) * 0.5 + mask * 0.5, mask)
    small = torch.tensor([s == "small" for s in sizes])
    if small.any():
        r = mask.shape[-1]
        s = max(2, round(r * 0.7))
        shrunk = F.interpolate(mask[small], size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        a = (r - s) // 2
        mask[small] = F.pad(shrunk, (a, r - s - a, a, r - s - a))
    ink = torch.tensor([INKS[i] for i in inks], dtype=torch.float32).view(-1, 3, 1, 1)
    bg = torch.tensor([BACKGROUNDS[b] for b in backgrounds], dtype=torch.float32).view(-1, 3, 1, 1)
    return (bg * (1 - mask) + ink * mask).round().clamp(0, 255).to(torch.uint8)


def build_captioned_digits(out_dir: str | os.PathLike, *, n: int = 10000, resolution: int = 32, seed: int = 0,
                           holdout=(("red", 7),), source: str = "auto", captions_per_image: int = 4,
                           progress: bool = False) -> dict:
    """Write ``n`` captioned coloured digits into ``out_dir`` (new or empty); returns a summary."""
    from PIL import Image
    from tqdm.auto import tqdm

    from ..data.dataset import check_resolution

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DataError(f"n must be a positive integer, got {n!r}")
    if not 1 <= captions_per_image <= len(TEMPLATES):
        raise DataError(f"captions_per_image must be 1..{len(TEMPLATES)}, got {captions_per_image}")
    resolution = check_resolution(resolution)
    holdout = check_holdout(holdout)
    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} exists and is not an empty folder; choose another --out")
    t0 = time.perf_counter()
    shapes, digits, name = _shapes(n, resolution, source)
    rng = np.random.default_rng(seed)
    held = set(holdout)
    ink_names, bg_names = list(INKS), list(BACKGROUNDS)
    labels, inks, bgs, strokes, sizes = [], [], [], [], []
    for d in digits.tolist():
        choices = [i for i in ink_names if (i, d) not in held]
        ink = choices[rng.integers(len(choices))]
        bg_choices = [b for b in bg_names if allowed(ink, b)]
        inks.append(ink)
        bgs.append(bg_choices[rng.integers(len(bg_choices))])
        strokes.append(STROKES[rng.integers(len(STROKES))])
        sizes.append(SIZES[int(rng.random() < 0.25)])
    images = render(shapes, inks, bgs, strokes, sizes)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for i in tqdm(range(n), desc="writing digits", unit="img", disable=not progress):
        stem = f"{i:05d}"
        d = int(digits[i])
        picks = rng.choice(len(TEMPLATES), size=captions_per_image, replace=False)
        lines = [caption(TEMPLATES[t], d, inks[i], bgs[i], strokes[i], sizes[i]) for t in sorted(picks)]
        Image.fromarray(images[i].permute(1, 2, 0).numpy()).save(out / f"{stem}.png", compress_level=1)
        (out / f"{stem}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        files[f"{stem}.png"] = {"digit": d, "ink": inks[i], "background": bgs[i], "stroke": strokes[i],
                                "size": sizes[i]}
        labels.append(files[f"{stem}.png"])
    seen, unseen = combos(holdout)
    summary = {"out": str(out), "images": n, "resolution": resolution, "source": name, "seed": seed,
               "holdout": [f"{c}:{d}" for c, d in holdout], "captions_per_image": captions_per_image,
               "inks": INKS, "backgrounds": BACKGROUNDS, "seen_combinations": len(seen),
               "unseen_combinations": len(unseen), "seconds": round(time.perf_counter() - t0, 2)}
    body = {**summary, "format": "ganforge-captioned-digits", "format_version": 1, "files": files}
    (out / LABELS_FILE).write_text(json.dumps(body) + "\n")
    return summary


def load_digit_labels(folder: str | os.PathLike) -> dict:
    """``labels.json`` of a captioned-digits folder (``files``: name -> digit, ink, background, ...)."""
    path = Path(folder) / LABELS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a captioned-digits labels file ({exc})") from None


def evaluation_prompts(holdout=(("red", 7),), *, phrasings=tuple(PHRASINGS)) -> list[dict]:
    """Every (digit, ink, background) combination in each phrasing: ``split`` is ``unseen`` for the
    held-out pairs, ``seen`` otherwise."""
    holdout = check_holdout(holdout)
    seen, unseen = combos(holdout)
    out = []
    for split, triples in (("seen", seen), ("unseen", unseen)):
        for d, ink, bg in triples:
            for p in phrasings:
                out.append({"prompt": caption(PHRASINGS[p], d, ink, bg), "digit": d, "ink": ink,
                            "background": bg, "phrasing": p, "split": split})
    return out


def _rgb(images: torch.Tensor) -> torch.Tensor:
    """uint8 or [-1, 1] float N×C×H×W -> float N×3×H×W on 0..255."""
    x = images.float() if images.dtype == torch.uint8 else (images.float().clamp(-1, 1) + 1) * 127.5
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _border(x: torch.Tensor) -> torch.Tensor:
    """Median colour of each image's one-pixel border (N×3)."""
    edge = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], dim=-1)
    return edge.median(dim=-1).values


def _nearest(colours: torch.Tensor, palette: dict[str, tuple[int, int, int]]) -> list[str]:
    names = list(palette)
    ref = torch.tensor([palette[k] for k in names], dtype=torch.float32)
    return [names[i] for i in torch.cdist(colours, ref).argmin(1).tolist()]


def ink_mask(images: torch.Tensor, *, noise_floor: bool = True) -> torch.Tensor:
    """The ink as grey white-on-black (float N×1×H×W in [0, 1]): each pixel's colour distance from
    the image's border median, scaled by the image's 99th percentile. Feed this to the MNIST
    classifier: it reads digits whatever the ink and background colours.

    ``noise_floor``: first subtract the background's own noise, the 90th percentile of that
    distance over the two-pixel border (where the builder never draws ink). A real image's
    background is flat, so its mask is unchanged (the same digit accuracy on the builder's images);
    a generated image's faint colour speckle would otherwise reach the classifier as grey strokes
    and read as an "8" however well the digit is drawn (docs/benchmarks.md, issue 20)."""
    x = _rgb(images)
    dist = (x - _border(x).view(-1, 3, 1, 1)).norm(dim=1, keepdim=True)
    top = dist.flatten(1).quantile(0.99, dim=1).clamp(min=1.0).view(-1, 1, 1, 1)
    if not noise_floor:
        return (dist / top).clamp(0, 1)
    w = min(2, dist.shape[-1] // 4)
    band = torch.cat([dist[..., :w, :].flatten(1), dist[..., -w:, :].flatten(1),
                      dist[..., w:-w, :w].flatten(1), dist[..., w:-w, -w:].flatten(1)], dim=1)
    floor = band.quantile(0.9, dim=1).view(-1, 1, 1, 1).clamp(max=top - 1.0)
    return ((dist - floor) / (top - floor)).clamp(0, 1)


def classify_background(images: torch.Tensor) -> list[str]:
    return _nearest(_border(_rgb(images)), BACKGROUNDS)


def classify_ink(images: torch.Tensor) -> list[str]:
    """The palette ink nearest (in RGB) to the median colour of each image's ink pixels (those at
    least half as far from the background colour as the farthest pixel). RGB, not hue: white ink
    has no hue."""
    x = _rgb(images)
    dist = (x - _border(x).view(-1, 3, 1, 1)).norm(dim=1)
    colours = []
    for img, d in zip(x, dist):
        sel = d >= 0.5 * d.max().clamp(min=1e-6)
        colours.append(img[:, sel].median(dim=1).values)
    return _nearest(torch.stack(colours), INKS) if colours else []


def score_digit_images(images: torch.Tensor, prompts: list[dict], *, classifier=None, batch_size: int = 500,
                       noise_floor: bool = True) -> dict:
    """Digit and ink accuracy of generated ``images`` (uint8 or [-1, 1] float N×3×H×W), one per
    entry of ``prompts`` (dicts with ``digit`` and ``ink``, as :func:`evaluation_prompts` gives):
    the digit by ganforge's MNIST classifier on :func:`ink_mask`, the ink by :func:`classify_ink`.
    ``classifier``: a ``metrics.classifier.DomainClassifier`` (default: ``load_classifier("mnist")``,
    trained and cached on first use). ``noise_floor``: as :func:`ink_mask`'s."""
    if len(images) != len(prompts):
        raise DataError(f"{len(images)} images but {len(prompts)} prompts")
    if classifier is None:
        from ..metrics.classifier import load_classifier

        classifier = load_classifier("mnist", progress=False)
    classifier.eval()
    with torch.no_grad():
        digits = torch.cat([classifier(ink_mask(images[i:i + batch_size], noise_floor=noise_floor)).argmax(1)
                            for i in range(0, len(images), batch_size)]) if len(images) else torch.zeros(0)
        inks = classify_ink(images)
    digit_ok = [int(d) == int(p["digit"]) for d, p in zip(digits.tolist(), prompts)]
    ink_ok = [i == p["ink"] for i, p in zip(inks, prompts)]
    n = max(len(prompts), 1)
    return {"digit_accuracy": sum(digit_ok) / n, "ink_accuracy": sum(ink_ok) / n, "images": len(prompts),
            "digits": digits.tolist(), "inks": inks,
            "protocol": {"digit": "ganforge MNIST classifier (metrics/classifier.py) on ink_mask(image)"
                                  + (", the border's noise floor subtracted" if noise_floor else ""),
                         "ink": "nearest palette ink (RGB) to the median of the ink pixels"}}
