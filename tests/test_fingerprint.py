"""Fingerprinted training (``train --fingerprint``, ganforge.fingerprint; issue 21 item 5): the
encoder/decoder pair writes a code that its decoder reads back and that unmarked images do not
carry; a run's every training batch carries it; the pair is kept in the run and reused on resume;
``provenance --fingerprint RUN`` reads it from image files; refusals are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge import fingerprint
from ganforge.cli import main
from ganforge.data import load_dataset
from ganforge.errors import CheckpointError, GanforgeError

pytestmark = pytest.mark.usefixtures("one_thread")

CODE = "0x9e3779b9"  # 32 bits
TINY = dict(data="digits", max_images=512, resolution=16, width=8, batch_size=16, steps=6, log_every=1,
            sample_every=0, ckpt_every=3, progress=False, tensorboard=False, fingerprint=CODE, fingerprint_steps=400)


def test_codes_parse_from_bits_or_hex_and_bad_ones_are_one_line():
    assert fingerprint.parse_code("0xF0F0") == [1, 1, 1, 1, 0, 0, 0, 0] * 2
    assert fingerprint.parse_code("10" * 12) == [1, 0] * 12
    for bad, why in (("0x12", "16 to 256 bits"), ("10201", "bits (e.g."), ("", "bits (e.g.")):
        with pytest.raises(GanforgeError, match=why.replace("(", r"\(")) as info:
            fingerprint.parse_code(bad)
        assert "\n" not in str(info.value)
    assert fingerprint.binomial_p_value(48, 48) == pytest.approx(2.0 ** -48)
    assert fingerprint.binomial_p_value(0, 48) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def digits16():
    return load_dataset("digits", resolution=16, progress=False).images


@pytest.fixture(scope="module")
def pair(digits16):
    return fingerprint.train_fingerprint(digits16[:1500], fingerprint.parse_code(CODE), steps=400, seed=0)


def test_a_trained_pair_reads_its_code_back_and_not_from_unmarked_images(pair, digits16):
    fp, check = pair
    held = digits16[1500:].float().div(127.5).sub(1)  # images the pair never saw
    marked = fp.embed(held)
    assert fp.bit_accuracy(marked) >= 0.95
    assert check["heldout_bit_accuracy"] >= 0.9 and check["own_code_bit_accuracy"] >= 0.95
    assert all(d["detected"] for d in fp.detect(marked)[:20])
    unmarked = fp.detect(held)
    assert sum(d["detected"] for d in unmarked) <= 0.01 * len(unmarked)
    assert 0.3 < fp.bit_accuracy(held) < 0.7  # chance, not the code
    # a bounded, quantised change: at most strength x 127.5 grey levels, PSNR stated by the check
    assert (marked - held).abs().max() <= fp.encoder.strength + 1 / 127.5
    assert fingerprint.psnr(marked, held) > 28 and check["psnr_db"] == pytest.approx(fingerprint.psnr(marked, held), abs=1)


def test_the_pair_saves_and_loads_exactly_and_a_truncated_file_is_one_line(pair, digits16, tmp_path):
    fp, _ = pair
    path = fp.save(tmp_path / "fp.safetensors")
    again = fingerprint.load(path)
    x = digits16[:64].float().div(127.5).sub(1)
    assert torch.equal(again.embed(x), fp.embed(x)) and torch.equal(again.read(x), fp.read(x))
    assert again.code_text == fp.code_text
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="cannot read the fingerprint") as info:
        fingerprint.load(path)
    assert "\n" not in str(info.value)
    with pytest.raises(GanforgeError, match="no fingerprint"):
        fingerprint.load(tmp_path / "nothing-here")


def test_a_fingerprinted_run_trains_on_marked_batches_keeps_its_pair_and_resumes_with_it(tmp_path, monkeypatch):
    from ganforge.fingerprint import FingerprintedBatches

    seen = []
    original = FingerprintedBatches.get

    def spy(self, *args, **kwargs):
        batch = original(self, *args, **kwargs)
        seen.append(self.fingerprint.bit_accuracy(batch["image"]))
        return batch

    monkeypatch.setattr(FingerprintedBatches, "get", spy)
    run = tmp_path / "run"
    summary = ganforge.train_gan(ganforge.GanConfig(**TINY), out=run)
    assert len(seen) == 6 and min(seen) >= 0.95  # every batch G's opponent saw carried the code
    info = json.loads((run / "run.json").read_text())
    assert info["fingerprint"]["code"] == "".join(str(b) for b in fingerprint.parse_code(CODE))
    assert 0.0 <= summary["fingerprint"]["samples_bit_accuracy"] <= 1.0
    assert summary["fingerprint"]["own_code_bit_accuracy"] >= 0.95
    stored = (run / fingerprint.FILE).read_bytes()
    ganforge.train_gan(ganforge.GanConfig(**dict(TINY, steps=9)), out=run)  # resumes: the same pair, not a new one
    assert (run / fingerprint.FILE).read_bytes() == stored
    with pytest.raises(GanforgeError, match="options differ"):
        ganforge.train_gan(ganforge.GanConfig(**dict(TINY, steps=12, fingerprint="0x" + "ab" * 4)), out=run)


def test_provenance_reads_a_runs_fingerprint_from_image_files(pair, digits16, tmp_path, capsys):
    fp, _ = pair
    fp.save(tmp_path / "fp.safetensors")
    x = digits16[1500:1504].float().div(127.5).sub(1)
    paths = []
    for i, img in enumerate(torch.cat([fp.embed(x[:2]), x[2:]])):
        grey = ((img[0] + 1) * 127.5).round().clamp(0, 255).byte().numpy()
        Image.fromarray(grey, "L").save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    assert main(["provenance", *paths, "--fingerprint", str(tmp_path / "fp.safetensors"),
                 "--json", str(tmp_path / "p.json")]) == 0
    rows = json.loads((tmp_path / "p.json").read_text())
    assert [r["fingerprint"]["detected"] for r in rows] == [True, True, False, False]
    assert rows[0]["fingerprint"]["bit_accuracy"] >= 0.9 and rows[0]["fingerprint"]["p_value"] < 1e-6
    assert "the run's fingerprint found" in capsys.readouterr().out
    assert main(["provenance", paths[0], "--fingerprint", str(tmp_path / "missing")]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganforge:") and "no fingerprint" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("extra, why", [(dict(dp_epsilon=8.0), "differential-privacy"),
                                       (dict(fingerprint="0x1"), "16 to 256 bits"),
                                       (dict(fingerprint_steps=-1), "fingerprint-steps")])
def test_fingerprint_refusals_are_one_line(extra, why):
    with pytest.raises(GanforgeError, match=why) as info:
        ganforge.GanConfig(**{**TINY, **extra}).validate()
    assert "\n" not in str(info.value)


def test_provenance_reads_a_runs_fingerprint_from_a_video(pair, digits16, tmp_path, capsys):
    from ganforge.video.io import VideoWriter

    fp, _ = pair
    fp.save(tmp_path / "fp.safetensors")
    x = digits16[1500:1508].float().div(127.5).sub(1)
    for name, frames in (("marked", fp.embed(x)), ("plain", x)):
        writer = VideoWriter(tmp_path / f"{name}.mp4", 8)  # H.264, crf 18: lossy
        for img in frames:
            grey = np.kron(((img[0] + 1) * 127.5).round().clamp(0, 255).byte().numpy(), np.ones((4, 4), np.uint8))
            writer.write(np.stack([grey] * 3, -1))
        writer.close()
    assert main(["provenance", str(tmp_path / "marked.mp4"), str(tmp_path / "plain.mp4"),
                 "--fingerprint", str(tmp_path / "fp.safetensors"), "--json", str(tmp_path / "v.json")]) == 0
    rows = json.loads((tmp_path / "v.json").read_text())
    assert [r["fingerprint"]["detected"] for r in rows] == [True, False]
