"""The demo page's restoration section (``ganforge demo``; ``--no-restore`` skips it): with a tiny
budget it trains both examples, writes their images, and prints numbers that are those of the
images shown. Offline: scikit-learn's digits and the photo shipped in the package."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")

HOLE_RGB = (217, 51, 51)  # restore.demo.HOLE_COLOUR in 8 bits


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255


def _psnr(a: np.ndarray, b: np.ndarray, shave: int) -> float:
    a, b = a[shave:-shave, shave:-shave], b[shave:-shave, shave:-shave]
    return 10 * math.log10(1 / float(((a - b) ** 2).mean()))


def test_tiny_demo_writes_the_restoration_section_with_its_images_and_numbers(tmp_path):
    from ganforge.report.demo import run_demo

    out = tmp_path / "demo"
    logs: list[str] = []
    index = run_demo(out, steps=8, data="digits", style=False, translate=False, text=False, precision="fp32", device="cpu",
                     progress=False, log=logs.append)
    page = index.read_text()
    section = page[page.index("<h2>Restoration</h2>"):page.index("<h2>Timings</h2>")]
    assert "Super-resolution ×4" in section and "<h3>Inpainting</h3>" in section and "Skipped" not in section
    for src in re.findall(r"src='([^']+)'", section):
        assert (out / src).is_file(), src
    assert {"sr_lowres.png", "sr_bicubic.png", "sr_ganforge.png", "sr_original.png", "inpaint.png"} <= set(
        re.findall(r"src='([^']+)'", section))
    numbers = json.loads((out / "restoration.json").read_text())
    sr, inp = numbers["super_resolution"], numbers["inpainting"]
    # the budget follows --steps (max(50, steps // 2) and max(20, steps // 8)), and the runs exist
    assert sr["steps"] == 50 and inp["steps"] == 20
    assert (out / "sr-run" / "upscaler.safetensors").is_file() and (out / "inpaint-run").is_dir()
    assert not (out / "sr-data").exists()
    timings = json.loads((out / "timings.json").read_text())
    assert timings["restoration (super-resolution + inpainting)"] > 0
    assert "restoration (super-resolution + inpainting)" in page

    # SR: the printed PSNRs are those of the PNGs on the page (4 px border left out)
    original = _png(out / "sr_original.png")
    bicubic, ours, low = (_png(out / f"sr_{n}.png") for n in ("bicubic", "ganforge", "lowres"))
    assert original.shape == bicubic.shape == ours.shape == low.shape == (168, 64, 3)
    assert _psnr(bicubic, original, 4) == pytest.approx(sr["psnr_bicubic"], abs=0.006)
    assert _psnr(ours, original, 4) == pytest.approx(sr["psnr_ganforge"], abs=0.006)
    assert np.abs(ours - bicubic).max() > 0.02  # the network's output, not bicubic again
    assert np.array_equal(low[::4, ::4], low[3::4, 3::4])  # the low-res input, nearest-enlarged ×4
    assert f"bicubic {sr['psnr_bicubic']:.2f} dB, ganforge {sr['psnr_ganforge']:.2f} dB" in section
    assert ("ganforge beats bicubic" in section) == (sr["psnr_ganforge"] > sr["psnr_bicubic"]) == sr["beats_bicubic"]

    # inpainting: rows masked | Telea | ganforge | original, 8 digits of 8 classes; known pixels exact
    grid = np.asarray(Image.open(out / "inpaint.png").convert("RGB"))
    assert grid.shape == (4 * 34 + 2, 8 * 34 + 2, 3)
    tiles = [[grid[2 + 34 * r:34 * (r + 1), 2 + 34 * c:34 * (c + 1)] for c in range(8)] for r in range(4)]
    for c in range(8):
        hole = (tiles[0][c] == HOLE_RGB).all(-1)
        assert 0.05 < hole.mean() < 0.5
        for row in (1, 2):  # Telea, ganforge
            assert np.array_equal(tiles[row][c][~hole], tiles[3][c][~hole])
    assert f"Telea {inp['hole_psnr_telea']:.2f} dB, ganforge {inp['hole_psnr_ganforge']:.2f} dB" in section
    assert ("ganforge beats Telea" in section) == inp["beats_telea"]
    assert inp["held_out_images"] == 100 and 0 <= inp["images_better_than_telea"] <= 100
    assert all(math.isfinite(v) for v in (sr["psnr_bicubic"], sr["psnr_ganforge"], inp["hole_psnr_telea"],
                                          inp["hole_psnr_ganforge"]))


def test_no_restore_flag_reaches_the_demo(tmp_path, monkeypatch):
    import ganforge.report.demo as report
    from ganforge.cli import main

    seen: list[dict] = []
    monkeypatch.setattr(report, "run_demo", lambda out, **kw: seen.append(kw) or tmp_path / "index.html")
    assert main(["demo", "--out", str(tmp_path), "--no-restore", "--quiet"]) == 0
    assert main(["demo", "--out", str(tmp_path), "--quiet"]) == 0
    assert [kw["restore"] for kw in seen] == [False, True]


def test_a_dataset_without_a_test_split_skips_inpainting_only(tmp_path):
    from ganforge.restore.demo import demo_section, inpainting_example

    folder = tmp_path / "images"
    folder.mkdir()
    with pytest.raises(DataError, match="train and test splits"):
        inpainting_example(tmp_path / "out", str(folder))
    logs: list[str] = []
    fragment = demo_section(tmp_path / "out", str(folder), sr_steps=2, precision="fp32", device="cpu", progress=False,
                            log=logs.append)
    assert "<h3>Inpainting</h3><p>Skipped:" in fragment and "sr_ganforge.png" in fragment
    assert logs and logs[0].startswith("inpainting example skipped:")
    assert set(json.loads((tmp_path / "out" / "restoration.json").read_text())) == {"super_resolution"}


def test_super_resolution_example_is_deterministic(tmp_path):
    """Seeds are explicit: another global seed and a second run give the same image and numbers."""
    from ganforge.restore.demo import super_resolution_example

    results = []
    for i, seed in enumerate((1, 2)):
        torch.manual_seed(seed)
        _, numbers = super_resolution_example(tmp_path / str(i), steps=5, precision="fp32", device="cpu", progress=False)
        results.append(((tmp_path / str(i) / "sr_ganforge.png").read_bytes(), numbers["psnr_ganforge"]))
    assert results[0] == results[1]


def test_shown_digits_are_one_per_class_first():
    from ganforge.restore.demo import shown_indices

    assert shown_indices(torch.tensor([0, 5, 0, 5, 1, 5]), 4).tolist() == [0, 1, 4, 2]
