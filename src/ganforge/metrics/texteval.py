"""Evaluation of text-to-image runs (``ganforge eval RUN ... [--prompts FILE] --metrics
fid,rprecision,clip``): where the prompts come from, how they are drawn, and the two text metrics.

- **Prompts**: ``--prompts FILE`` (one a line, each drawn equally often) when given; else the
  run's ``captions.json`` (the distinct captions it trained on, each weighted by how many training
  images hold it, written when the run starts); else, for older runs, the captions of the training
  folder named in ``config.json`` while it is still there. ``n`` prompts are drawn with replacement,
  weighted, from a generator seeded by ``--seed``; image i is drawn from prompt i with latent i.
- **R-precision** (:mod:`ganforge.metrics.rprecision`) with the run's own frozen text encoder
  (``builtin``: its image encoder against its sentence encoder; ``clip``: CLIP's two towers).
- **CLIP score** (:mod:`ganforge.metrics.clipscore`), skipped in one line when CLIP's weights are
  not available.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import GanforgeError
from ..text.captions import read_prompts_file
from .clipscore import ClipUnavailable, clip_score, load_clip
from .rprecision import r_precision

TEXT_METRICS = ("rprecision", "clip")


def is_text_run(spec: str | Path) -> bool:
    """A run directory trained with ``--text`` (its config says so)."""
    path = Path(spec) / "config.json"
    try:
        return bool(json.loads(path.read_text())["options"].get("text"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _training_captions(run_dir: Path) -> tuple[list[str], list[int], str] | None:
    """Caption texts and images holding each, from the training data named in config.json, if it
    is still a captioned folder (or a prepared dataset that kept its captions)."""
    from ..text.captions import load_captions

    try:
        data = json.loads((run_dir / "config.json").read_text())["options"]["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not data or not Path(data).expanduser().is_dir():
        return None
    try:
        per_image = load_captions(Path(data).expanduser())
    except GanforgeError:
        return None
    counts: dict[str, int] = {}
    for caps in per_image.values():
        for text in {c.strip() for c in caps if c and c.strip()}:
            counts[text] = counts.get(text, 0) + 1
    if not counts:
        return None
    texts = sorted(counts)
    return texts, [counts[t] for t in texts], str(Path(data).expanduser().resolve())


def run_prompts(run_dir: str | Path, prompts_file: str | Path | None = None) -> tuple[list[str], list[int], dict]:
    """(prompt texts, their weights, where they came from) for evaluating a text run."""
    from ..train.textfiles import CAPTIONS_FILE, load_run_captions

    run_dir = Path(run_dir)
    if prompts_file is not None:
        texts = read_prompts_file(prompts_file)
        return texts, [1] * len(texts), {"prompts_from": f"--prompts {Path(prompts_file).resolve()}",
                                         "prompt_weights": "each line equally"}
    stored = load_run_captions(run_dir)
    if stored is not None:
        return stored[0], stored[1], {"prompts_from": f"{CAPTIONS_FILE} of the run (its training captions)",
                                      "prompt_weights": "images holding each caption"}
    found = _training_captions(run_dir)
    if found is not None:
        return found[0], found[1], {"prompts_from": f"training folder {found[2]} (captions as they are now)",
                                    "prompt_weights": "images holding each caption"}
    raise GanforgeError(f"{run_dir} has no {CAPTIONS_FILE} and its training captions are gone; "
                        f"pass --prompts FILE (one prompt per line)")


def draw_prompts(texts: list[str], weights: list[int], n: int, seed: int) -> list[str]:
    """``n`` of ``texts`` drawn with replacement in proportion to ``weights``, seeded."""
    w = torch.tensor(weights, dtype=torch.float64)
    if len(texts) == 0 or len(w) != len(texts) or not bool((w >= 0).all()) or float(w.sum()) <= 0:
        raise GanforgeError("no prompts to draw from (empty list, or no positive weight)")
    picks = torch.multinomial(w, n, replacement=True, generator=torch.Generator().manual_seed(seed))
    return [texts[i] for i in picks.tolist()]


def sample_text_run(gen, run_dir: str | Path, n: int, *, seed: int = 0, truncation: float = 1.0,
                    prompts_file: str | Path | None = None) -> tuple[torch.Tensor, list[str], dict]:
    """``n`` images (uint8 N×C×H×W, as a saved PNG holds) of text generator ``gen``, image i drawn
    from the i-th drawn prompt with latent i of ``seed``; with the drawn prompts and the protocol."""
    if n < 1:
        raise GanforgeError(f"--n must be at least 1, got {n}")
    texts, weights, where = run_prompts(run_dir, prompts_file)
    prompts = draw_prompts(texts, weights, n, seed)
    distinct = sorted(set(prompts))
    row = {p: i for i, p in enumerate(distinct)}
    text = gen.embed(distinct)[torch.tensor([row[p] for p in prompts], dtype=torch.long)]
    z = gen.latents(n, seed, 1.0 if gen.w_space else truncation)
    x = gen.generate(z, text, truncation=truncation if gen.w_space else 1.0)
    images = x.clamp(0, 1).mul(255).round().to(torch.uint8)
    info = {**where, "prompts_available": len(texts), "prompts_distinct_drawn": len(distinct),
            "prompt_draw": f"{n} with replacement, weighted, torch.multinomial seed={seed}"}
    return images, prompts, info


def text_metrics(metrics: list[str], gen_encoder, images: torch.Tensor, prompts: list[str], *, seed: int = 0,
                 clip_model: str | None = None, device=None) -> tuple[list[tuple[str, float, float, str, dict]], dict]:
    """(metric, value, std, details, protocol) for each text metric computed, and {metric: reason}
    for each skipped (CLIP without its weights)."""
    out, skipped = [], {}
    for m in metrics:
        if m == "rprecision":
            res = r_precision(gen_encoder, images, prompts, seed=seed)
            proto = {**res["protocol"], "n": res["images"], "distinct_prompts": len(set(prompts)),
                     "images": "generated, each from its drawn prompt; the encoder: the run's own (frozen)"}
            out.append(("rprecision", res["r_precision"], res["std"],
                        f"R={proto['R']}, encoder={proto['encoder']}, {proto['distinct_prompts']} distinct prompts",
                        proto))
        elif m == "clip":
            try:
                encoder = load_clip(clip_model, device)
            except ClipUnavailable as exc:
                skipped["clip"] = str(exc)
                continue
            res = clip_score(encoder, images, prompts)
            proto = res["protocol"]
            out.append(("clip", res["clip_score"], res["std"],
                        f"{proto['model']}, {proto['distinct_prompts']} distinct prompts", proto))
    return out, skipped
