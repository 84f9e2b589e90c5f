"""The demo page's "Prompts → images" section (issue 20): captioned digits built from the demo's
dataset, a text run trained on a tiny budget, a grid with one row per prompt (with provenance and
the held-out prompt marked), wired into ``ganforge demo`` and its ``--no-text``. Tiny budgets."""

from __future__ import annotations

import json
import re

import numpy as np
from PIL import Image

from ganforge.provenance import read_provenance
from ganforge.report.textdemo import HELD_OUT_PROMPT, LATENTS, PROMPTS, budget, demo_section, shape_source
from ganforge.text.digits import load_digit_labels


def test_the_section_draws_one_row_per_prompt_from_a_text_run(tmp_path):
    out = tmp_path / "demo"
    fragment = demo_section(out, "digits", steps=3, encoder_steps=3, n_images=200, precision="fp32", device="cpu",
                            progress=False)
    # the data: captioned digits from scikit-learn's shapes, the held-out pair never drawn or captioned
    labels = load_digit_labels(out / "text-data")
    assert labels["source"] == "digits" and labels["images"] == 200 and labels["holdout"] == ["red:7"]
    assert not any(f["ink"] == "red" and f["digit"] == 7 for f in labels["files"].values())
    captions = " ".join(p.read_text() for p in (out / "text-data").glob("*.txt"))
    assert "red seven" not in captions and "red 7" not in captions and "green" in captions
    # the run: a text run with --text's defaults, the tiny budget, its encoder stored
    run = out / "text-run"
    config = json.loads((run / "config.json").read_text())["options"]
    assert config["text"] and config["resolution"] == 32 and config["steps"] == 3 and config["arch"] == "dcgan"
    assert (run / "text_encoder.safetensors").is_file()

    # the grid: one row of LATENTS images per prompt, every row from the same latents
    grid = np.asarray(Image.open(out / "text_prompts.png").convert("RGB"))
    assert grid.shape == (len(PROMPTS) * 34 + 2, LATENTS * 34 + 2, 3)
    tiles = [[grid[2 + 34 * r:34 * (r + 1), 2 + 34 * c:34 * (c + 1)].astype(int) for c in range(LATENTS)]
             for r in range(len(PROMPTS))]
    assert any(np.abs(tiles[0][c] - tiles[0][0]).mean() > 1 for c in range(1, LATENTS))  # latents differ
    assert np.abs(tiles[0][0] - tiles[1][0]).mean() > 0.5  # so do the prompts (same latent)
    facts = read_provenance(out / "text_prompts.png")
    assert facts["ai_generated"] and facts["method"] == "sample" and facts["model"] == "text-run"
    assert facts["params"]["prompts"] == list(PROMPTS) and facts["params"]["n"] == LATENTS
    assert facts.get("watermark")

    # the fragment: heading, the prompts in row order, the held-out one marked, the time
    assert fragment.startswith("<h2>Prompts → images</h2>") and "src='text_prompts.png'" in fragment
    items = re.findall(r"<li[^>]*>(.*?)</li>", fragment)
    assert [re.sub(r" <strong>.*", "", i) for i in items] == list(PROMPTS)
    marked = [i for i in items if "never seen in training" in i]
    assert marked == [f"{HELD_OUT_PROMPT} <strong>(never seen in training)</strong>"]
    numbers = json.loads((out / "text_prompts.json").read_text())
    assert numbers["steps"] == 3 and numbers["held_out_prompts"] == [HELD_OUT_PROMPT]
    assert f"Training took {numbers['seconds']:.0f} s" in fragment and "red 7" in fragment


def test_the_demo_page_has_the_section_and_its_budget_follows_steps(tmp_path):
    from ganforge.report.demo import run_demo

    out = tmp_path / "demo"
    logs: list[str] = []
    index = run_demo(out, steps=4, data="digits", style=False, translate=False, restore=False, precision="fp32",
                     device="cpu", progress=False, log=logs.append)
    page = index.read_text()
    section = page[page.index("<h2>Prompts → images</h2>"):page.index("<h2>Timings</h2>")]
    assert "Skipped" not in section and all(p in section for p in PROMPTS)
    for src in re.findall(r"src='([^']+)'", section):
        assert (out / src).is_file(), src
    assert read_provenance(out / "text_prompts.png")["method"] == "sample"
    numbers = json.loads((out / "text_prompts.json").read_text())
    assert budget(4) == {"steps": 10, "encoder_steps": 10, "n_images": 500}  # the floors
    assert numbers["steps"] == 10 and numbers["images"] == 500
    encoder = json.loads((out / "text-run" / "text_encoder.json").read_text())
    assert encoder["trained"]["steps"] == 10
    full = budget(2000)  # the default demo: half its steps, a sixth for the encoder, 2000 images
    assert full["steps"] == 1000 and full["n_images"] == 2000 and 10 < full["encoder_steps"] <= 2000 // 6
    assert json.loads((out / "timings.json").read_text())["text to image (prompts → images)"] > 0


def test_no_text_flag_reaches_the_demo(tmp_path, monkeypatch):
    import ganforge.report.demo as report
    from ganforge.cli import main

    seen: list[dict] = []
    monkeypatch.setattr(report, "run_demo", lambda out, **kw: seen.append(kw) or tmp_path / "index.html")
    assert main(["demo", "--out", str(tmp_path), "--no-text", "--quiet"]) == 0
    assert main(["demo", "--out", str(tmp_path), "--quiet"]) == 0
    assert [kw["text"] for kw in seen] == [False, True]


def test_the_shapes_follow_the_demo_dataset():
    assert shape_source("mnist") == "mnist" and shape_source("digits") == "digits"
    assert shape_source("fashion-mnist") == "auto"
