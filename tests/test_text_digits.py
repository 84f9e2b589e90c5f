"""The captioned-digits builder: readable files, several phrasings, the held-out pairs never
written, colour classification of its own images, evaluation prompts, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.cli import main
from ganforge.errors import DataError
from ganforge.text.captions import load_captions
from ganforge.text.digits import (INKS, WORDS, build_captioned_digits, classify_background, classify_ink,
                                  evaluation_prompts, ink_mask, load_digit_labels)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits") / "set"
    summary = build_captioned_digits(out, n=240, resolution=16, seed=3, holdout=(("red", 7), ("blue", 1)),
                                     source="digits")
    return out, summary


def _load(folder, names):
    return torch.stack([torch.from_numpy(np.array(Image.open(folder / n))).permute(2, 0, 1) for n in names])


def test_files_captions_and_labels(digits):
    out, summary = digits
    assert summary["images"] == 240 and summary["source"] == "digits" and summary["holdout"] == ["red:7", "blue:1"]
    labels = load_digit_labels(out)["files"]
    caps = load_captions(out)
    assert sorted(labels) == sorted(caps) and len(caps) == 240
    from sklearn.datasets import load_digits

    truth = load_digits().target[:240]
    assert [labels[f"{i:05d}.png"]["digit"] for i in range(240)] == truth.tolist()
    for name, lab in labels.items():
        assert len(caps[name]) == 4 and len(set(caps[name])) == 4
        for text in caps[name]:
            assert lab["ink"] in text
            words = text.replace(",", "").split()
            assert WORDS[lab["digit"]] in words or str(lab["digit"]) in words
        img = np.array(Image.open(out / name))
        assert img.shape == (16, 16, 3) and img.dtype == np.uint8


def test_holdout_never_written(digits):
    out, _ = digits
    labels = load_digit_labels(out)["files"]
    pairs = {(v["ink"], v["digit"]) for v in labels.values()}
    assert ("red", 7) not in pairs and ("blue", 1) not in pairs
    assert ("green", 7) in pairs or ("white", 7) in pairs  # the digit itself still occurs, in other inks
    for name, texts in load_captions(out).items():
        for text in texts:
            words = set(text.replace(",", "").split())
            assert not ({"red"} <= words and words & {"7", "seven"})
            assert f"blue {'one'}" not in text and "blue 1" not in text and "one in blue" not in text


def test_colour_classification_and_ink_mask(digits):
    out, _ = digits
    labels = load_digit_labels(out)["files"]
    names = sorted(labels)
    images = _load(out, names)
    ink = classify_ink(images)
    bg = classify_background(images)
    assert np.mean([a == labels[n]["ink"] for a, n in zip(ink, names)]) >= 0.97
    assert bg == [labels[n]["background"] for n in names]
    # [-1, 1] float input classifies the same
    assert classify_ink(images.float() / 127.5 - 1) == ink
    mask = ink_mask(images)
    assert mask.shape == (240, 1, 16, 16) and float(mask.amin()) >= 0 and float(mask.amax()) <= 1
    ink_rgb = torch.tensor([INKS[labels[n]["ink"]] for n in names]).view(-1, 3, 1, 1)
    pure_ink = (images.int() == ink_rgb).all(1, keepdim=True)
    pure_bg = (images.int() == images[:, :, :1, :1].int()).all(1, keepdim=True)
    assert float(mask[pure_ink].mean()) > 0.9 and float(mask[pure_bg].mean()) < 0.05  # ink bright, background dark


def test_evaluation_prompts():
    prompts = evaluation_prompts((("red", 7),))
    unseen = [p for p in prompts if p["split"] == "unseen"]
    assert {(p["digit"], p["ink"]) for p in unseen} == {(7, "red")}
    assert {p["phrasing"] for p in unseen} == {"word", "numeral", "digit"}
    texts = {p["phrasing"]: p["prompt"] for p in unseen if p["background"] == "black"}
    assert texts == {"word": "a red seven on a black background", "numeral": "a red 7 on a black background",
                     "digit": "the digit seven in red on a black background"}
    seen = [p for p in prompts if p["split"] == "seen"]
    assert len(seen) == 3 * (10 * 13 - 3) and all(p["ink"] in INKS for p in seen)


def test_bad_arguments_one_line(tmp_path):
    for kwargs, pattern in (({"holdout": ("purple:3",)}, "colour must be one of"),
                            ({"holdout": ("red",)}, "must be colour:digit|colour must be"),
                            ({"n": 0}, "positive integer"), ({"source": "cifar"}, "source must be")):
        with pytest.raises(DataError, match=pattern) as err:
            build_captioned_digits(tmp_path / "x", **kwargs)
        assert "\n" not in str(err.value)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f.txt").write_text("x")
    with pytest.raises(DataError, match="not an empty folder"):
        build_captioned_digits(tmp_path / "full", n=5, source="digits")


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["data", "digits", "--out", str(out), "--n", "30", "--resolution", "8", "--holdout", "green:2",
                 "--source", "digits", "--seed", "1", "--json", str(tmp_path / "s.json"), "--quiet"]) == 0
    assert "wrote 30 captioned digits" in capsys.readouterr().out
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["holdout"] == ["green:2"] and summary["images"] == 30
    assert len(list(out.glob("*.png"))) == 30 and len(list(out.glob("*.txt"))) == 30
    assert main(["data", "digits", "--out", str(tmp_path / "c2"), "--n", "5", "--holdout", "pink:2"]) == 2


def test_scoring_real_digits_as_if_generated(tmp_path):
    """The scorer on the builder's own images (stand-ins for a perfect generator): the MNIST
    classifier reads the coloured digits through ink_mask, and the inks are named right."""
    import os

    from ganforge.data.builtin import present_locally
    from ganforge.text.digits import score_digit_images

    if not present_locally("mnist", "train") or not present_locally("mnist", "test"):
        pytest.skip("MNIST files missing (the MNIST classifier trains on them): set GANFORGE_DATA_DIR")
    assert os.environ.get("GANFORGE_HOME")  # the classifier is cached per test session
    out = tmp_path / "m"
    build_captioned_digits(out, n=120, resolution=32, seed=5, source="mnist")
    labels = load_digit_labels(out)["files"]
    names = sorted(labels)
    result = score_digit_images(_load(out, names), [labels[n] for n in names])
    assert result["digit_accuracy"] >= 0.9 and result["ink_accuracy"] >= 0.97, result
    wrong = [{"digit": (labels[n]["digit"] + 1) % 10, "ink": labels[n]["ink"]} for n in names]
    assert score_digit_images(_load(out, names), wrong)["digit_accuracy"] <= 0.1
    # The noise floor: a clean image's mask is the raw one; per-pixel colour speckle (as an
    # undertrained generator draws) leaves the digit readable, where the raw mask reads noise.
    images, prompts = _load(out, names), [labels[n] for n in names]
    raw = score_digit_images(images, prompts, noise_floor=False)
    assert raw["digit_accuracy"] == result["digit_accuracy"] and "noise floor" in result["protocol"]["digit"]
    speckle = (torch.rand(images.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 30
    noisy = (images.float() + speckle).clamp(0, 255).to(torch.uint8)
    assert score_digit_images(noisy, prompts)["digit_accuracy"] >= 0.9
    assert score_digit_images(noisy, prompts, noise_floor=False)["digit_accuracy"] <= 0.6
