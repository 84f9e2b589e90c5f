"""The ``builtin`` text encoder on captioned digits: training time, held-out R-precision, paraphrases.

Builds captioned digits (``ganforge data digits``: MNIST shapes when present, else scikit-learn's),
trains ``train_builtin_encoder`` on the first 90 % of the images and their captions, then on the
last 10 % (images and captions never seen in training):

- R-precision (AttnGAN protocol, R = 100: the true caption against 99 captions of other images,
  mismatched in (digit, ink, background) and in text), and the plain protocol (mismatched in text
  only);
- paraphrases: for every (digit, ink, background) combination, the cosine similarity of its three
  phrasings ("a red seven ...", "a red 7 ...", "the digit seven in red ...") to each other, against
  the same phrasing of the same colours with another digit; and paraphrase retrieval: the share of
  "numeral" / "digit" phrasings whose nearest "word" phrasing is their own combination.

    python benchmarks/text_encoder.py [--n 10000] [--steps 600] [--threads 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    keep = [f for f in flags if f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")]
    return f"{model}; {' '.join(keep)}"


def paraphrases(enc, holdout) -> dict:
    from ganforge.text.digits import evaluation_prompts

    prompts = evaluation_prompts(holdout)
    emb = enc.encode([p["prompt"] for p in prompts]).cpu()
    index = {(p["split"], p["digit"], p["ink"], p["background"], p["phrasing"]): k for k, p in enumerate(prompts)}
    same, other = [], []
    for (split, d, ink, bg, ph), k in index.items():
        if ph != "word":
            continue
        for ph2 in ("numeral", "digit"):
            same.append(float(emb[k] @ emb[index[(split, d, ink, bg, ph2)]]))
        for d2 in range(10):
            key = next((key for key in index if key[1:] == (d2, ink, bg, "word")), None)
            if d2 != d and key is not None:
                other.append(float(emb[k] @ emb[index[key]]))
    words = [k for key, k in index.items() if key[4] == "word"]
    word_keys = [key[1:4] for key in index if key[4] == "word"]
    hits = []
    for key, k in index.items():
        if key[4] == "word":
            continue
        best = int((emb[words] @ emb[k]).argmax())
        hits.append(word_keys[best] == key[1:4])
    return {"cos_paraphrase_mean": round(float(np.mean(same)), 4), "cos_other_digit_mean": round(float(np.mean(other)), 4),
            "paraphrase_retrieval": round(float(np.mean(hits)), 4), "prompts": len(prompts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--source", default="auto", choices=("auto", "mnist", "digits"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from PIL import Image

    from ganforge.metrics.rprecision import r_precision
    from ganforge.text.builtin import train_builtin_encoder
    from ganforge.text.captions import load_captions
    from ganforge.text.digits import build_captioned_digits, load_digit_labels

    holdout = (("red", 7),)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = build_captioned_digits(Path(tmp) / "digits", n=args.n, resolution=args.resolution, seed=args.seed,
                                         holdout=holdout, source=args.source)
        build_s = time.perf_counter() - t0
        folder = Path(summary["out"])
        caps = load_captions(folder)
        labels = load_digit_labels(folder)["files"]
        names = sorted(caps)
        images = torch.stack([torch.from_numpy(np.array(Image.open(folder / n))).permute(2, 0, 1) for n in names])
    n_train = int(0.9 * len(names))
    t0 = time.perf_counter()
    enc = train_builtin_encoder(images[:n_train], [caps[n] for n in names[:n_train]], steps=args.steps,
                                batch_size=args.batch_size, seed=args.seed, device="cpu", progress=False)
    train_s = time.perf_counter() - t0
    test = names[n_train:]
    rng = np.random.default_rng(args.seed)
    held_captions = [caps[n][rng.integers(len(caps[n]))] for n in test]
    groups = [(labels[n]["digit"], labels[n]["ink"], labels[n]["background"]) for n in test]
    strict = r_precision(enc, images[n_train:], held_captions, groups=groups, seed=args.seed)
    plain = r_precision(enc, images[n_train:], held_captions, seed=args.seed)
    out = {"images": len(names), "train_images": n_train, "heldout_images": len(test), "source": summary["source"],
           "resolution": args.resolution, "steps": args.steps, "batch_size": args.batch_size, "seed": args.seed,
           "threads": args.threads, "build_seconds": round(build_s, 1), "train_seconds": round(train_s, 1),
           "r_precision_heldout": round(strict["r_precision"], 4), "r_precision_std": round(strict["std"], 4),
           "r_precision_heldout_text_only": round(plain["r_precision"], 4), "protocol": strict["protocol"],
           "paraphrases": paraphrases(enc, holdout), "vocab": len(enc.vocab), "final_loss": enc.trained["loss"],
           "cpu": cpu_flags(), "load_average": [round(x, 1) for x in os.getloadavg()],
           "torch": torch.__version__}
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
