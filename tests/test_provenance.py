"""Provenance metadata: every generated image carries the IPTC "trained algorithmic media" XMP packet
(readable by Pillow), real-image writers carry none, and ``ganforge provenance`` reports it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.cli import main
from ganforge.imageio import save_image
from ganforge.imageio import open_image
from ganforge.provenance import DIGITAL_SOURCE_TYPE, Provenance, parse_xmp, read_provenance
from ganforge.watermark import detect


def detect_file(path):
    return detect(np.asarray(open_image(path, "RGB"))).as_dict()

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_packet_round_trips_and_pillow_reads_it(tmp_path, suffix):
    prov = Provenance("sample", "my-run", "ab" * 32, {"seed": 3, "note": "a < b & \"c\""})
    path = save_image(torch.rand(3, 20, 24), tmp_path / f"x{suffix}", provenance=prov)
    meta = read_provenance(path)
    assert meta["ai_generated"] and meta["digital_source_type"] == DIGITAL_SOURCE_TYPE
    assert meta["method"] == "sample" and meta["model"] == "my-run" and meta["model_sha256"] == "ab" * 32
    assert meta["params"] == {"seed": 3, "note": "a < b & \"c\""}  # escaped in XML, back intact
    assert meta["software"].startswith("ganforge ")
    with Image.open(path) as img:  # an ordinary tool (Pillow's own XMP reader) sees the IPTC type
        desc = img.getxmp()["xmpmeta"]["RDF"]["Description"]
        assert desc["DigitalSourceType"] == DIGITAL_SOURCE_TYPE
        assert img.size == (24, 20)


def test_plain_writes_carry_no_mark(tmp_path):
    path = save_image(torch.rand(3, 8, 8), tmp_path / "real.png")
    meta = read_provenance(path)
    assert meta == {"format": "PNG", "ai_generated": False}


def test_hostile_or_broken_packets_read_as_nothing():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>')
    assert parse_xmp(bomb) == {}  # entities refused (defusedxml), not expanded
    assert parse_xmp(b"<x:xmpmeta><unclosed></x:xmpmeta>") == {}
    assert parse_xmp(b"no xml here") == {}


def test_unreadable_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(Exception) as info:
        read_provenance(bad)
    assert "bad.png" in str(info.value) and "\n" not in str(info.value)


def test_sample_and_training_grids_are_marked_and_provenance_reports_them(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--data", "digits", "--resolution", "32", "--width", "8",
                 "--batch-size", "16", "--steps", "2", "--sample-every", "2", "--quiet", "--no-tensorboard"]) == 0
    assert read_provenance(run / "samples" / "latest.png")["method"] == "train-samples"
    assert main(["sample", str(run), "--n", "4", "--seed", "5", "--out", str(tmp_path / "grid.png")]) == 0
    assert main(["sample", str(run), "--n", "2", "--out-dir", str(tmp_path / "many"), "--quiet"]) == 0
    real = save_image(torch.rand(3, 8, 8), tmp_path / "many" / "zz-real.png")
    capsys.readouterr()
    report = tmp_path / "report.json"
    assert main(["provenance", str(tmp_path / "grid.png"), str(tmp_path / "many"), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "grid.png: AI-generated (sample, model run" in out and "zz-real.png: no AI-generated mark" in out
    rows = json.loads(report.read_text())
    assert [r["metadata"]["ai_generated"] for r in rows] == [True, True, True, False]
    assert rows[0]["metadata"]["params"]["seed"] == 5 and rows[0]["path"].endswith("grid.png")
    assert str(tmp_path) not in json.dumps(rows[0]["metadata"])  # the model is named, its path not written
    assert rows[-1]["path"] == str(real)
    assert [r["watermark"]["detected"] for r in rows] == [True, True, True, False]  # on by default
    assert main(["sample", str(run), "--n", "1", "--out-dir", str(tmp_path / "plain"), "--no-watermark"]) == 0
    assert not detect_file(next((tmp_path / "plain").glob("*.png")))["detected"]


def test_videos_carry_tags_and_a_watermark_and_provenance_reads_them(tmp_path, capsys):
    """interpolate (MP4 and GIF) and the latent-walk video: the container's tags say AI-generated
    and every frame carries the watermark; ``--no-watermark`` leaves the tags but no mark."""
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--data", "digits", "--resolution", "32", "--width", "8",
                 "--batch-size", "16", "--steps", "2", "--sample-every", "0", "--quiet", "--no-tensorboard"]) == 0
    walk, bare, seq = tmp_path / "walk.mp4", tmp_path / "bare.mp4", tmp_path / "seq"
    assert main(["interpolate", str(run), "--seeds", "1,2", "--frames", "4", "--out", str(walk), "--scale", "2"]) == 0
    assert main(["interpolate", str(run), "--seeds", "1,2", "--frames", "4", "--out", str(bare), "--scale", "2",
                 "--no-watermark"]) == 0
    assert main(["video", str(run), "--seconds", "0.25", "--fps", "8", "--out", str(seq), "--scale", "2",
                 "--quiet"]) == 0
    capsys.readouterr()
    report = tmp_path / "report.json"
    assert main(["provenance", str(walk), str(bare), "--json", str(report)]) == 0
    rows = json.loads(report.read_text())
    assert [r["metadata"]["ai_generated"] for r in rows] == [True, True]
    assert rows[0]["metadata"]["method"] == "interpolate" and rows[0]["metadata"]["params"]["seeds"] == [1, 2]
    assert rows[0]["watermark"]["detected"] and rows[0]["watermark"]["bit_accuracy"] >= 0.95
    assert not rows[1]["watermark"]["detected"]
    # a PNG sequence: every frame is an ordinary marked PNG
    frame = sorted(seq.glob("frame_*.png"))[0]
    assert read_provenance(frame)["method"] == "video" and detect_file(frame)["detected"]
    assert "AI-generated (interpolate, model run" in capsys.readouterr().out
