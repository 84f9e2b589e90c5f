"""Captions in the three layouts (sidecar x.txt, metadata.jsonl, metadata.csv) and in a prepared
dataset; bad captions (empty, not UTF-8, 10 000 characters) each skipped or cut with one line;
``ganforge data check`` reports them."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from ganforge.cli import main
from ganforge.data.prepared import folder_fingerprint, prepare_dataset, read_index
from ganforge.errors import CaptionError
from ganforge.text.captions import (MAX_CAPTION_CHARS, caption_layout, caption_report, captions_for, load_captions,
                                    read_captions)


def _images(root, names):
    root.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((12, 10, 3), 20 * k, np.uint8)).save(path)
    return root


def test_sidecar_layout(tmp_path):
    root = _images(tmp_path / "d", ["a.png", "b.jpg", "sub/c.png"])
    (root / "a.txt").write_text("a red seven\n\n  the digit   seven\tin red \n")
    (root / "sub" / "c.txt").write_text("one caption\n")
    caps = load_captions(root)
    assert caption_layout(root) == "sidecar"
    assert caps == {"a.png": ["a red seven", "the digit seven in red"], "sub/c.png": ["one caption"]}
    report = caption_report(root)
    assert (report["images"], report["with_captions"], report["without_captions"]) == (3, 2, 1)
    assert report["without_captions_first"] == ["b.jpg"]
    assert report["words"] == {"min": 2, "median": 3, "max": 5}


def test_jsonl_layout(tmp_path):
    root = _images(tmp_path / "d", ["a.png", "b.png", "c.png"])
    rows = [{"file_name": "a.png", "text": "first"}, {"file_name": "./b.png", "text": ["one", "two"]},
            {"file_name": "missing.png", "text": "orphan"}, {"file_name": "c.png", "text": ""}]
    (root / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    found = read_captions(root)
    assert found.layout == "jsonl"
    assert found.captions == {"a.png": ["first"], "b.png": ["one", "two"]}
    assert (found.problems.orphan_count, found.problems.empty, found.problems.unreadable_count) == (1, 1, 1)


def test_csv_layout(tmp_path):
    root = _images(tmp_path / "d", ["a.png", "b.png"])
    (root / "metadata.csv").write_text('file_name,text\na.png,"a caption, with a comma"\nb.png,x\na.png,second\n')
    assert load_captions(root) == {"a.png": ["a caption, with a comma", "second"], "b.png": ["x"]}
    (root / "metadata.csv").write_text("name,caption\na.png,x\n")
    with pytest.raises(CaptionError, match="needs the columns file_name and text"):
        load_captions(root)


def test_bad_captions_each_one_line(tmp_path):
    root = _images(tmp_path / "d", ["good.png", "empty.png", "latin1.png", "long.png"])
    (root / "good.txt").write_text("a fine caption\n")
    (root / "empty.txt").write_text("\n  \n")
    (root / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (root / "long.txt").write_text(" ".join(["word"] * 2000) + "\n")  # 9999 characters
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        caps = load_captions(root)
    assert set(caps) == {"good.png", "long.png"}
    assert len(caps["long.png"][0]) <= MAX_CAPTION_CHARS and caps["long.png"][0].endswith("word")
    assert len(caught) == 1
    line = str(caught[0].message)
    assert "\n" not in line
    assert "1 empty caption" in line and "latin1.txt: not UTF-8 text" in line and "1 caption(s) longer" in line
    report = caption_report(root)
    assert (report["empty"], report["unreadable_count"], report["truncated"]) == (1, 1, 1)
    # nothing usable at all: one line, an error
    bad = _images(tmp_path / "bad", ["x.png"])
    (bad / "x.txt").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(CaptionError) as err:
        load_captions(bad)
    assert "\n" not in str(err.value) and "not UTF-8" in str(err.value)
    with pytest.raises(CaptionError, match="no captions in"):
        load_captions(_images(tmp_path / "none", ["y.png"]))


def test_prepared_dataset_keeps_captions(tmp_path):
    root = _images(tmp_path / "d", ["a.png", "b.png", "c.png"])
    (root / "a.txt").write_text("alpha\nfirst image\n")
    (root / "c.txt").write_text("gamma\n")
    out = prepare_dataset(root, tmp_path / "prep", resolution=8, progress=False)
    assert (out / "captions.json").is_file()
    assert load_captions(out) == load_captions(root)
    paths = read_index(out)["source"]["paths"]
    assert captions_for(load_captions(out), paths) == [["alpha", "first image"], [], ["gamma"]]
    assert caption_report(out)["without_captions"] == 1
    # a caption edit changes the folder's fingerprint, so the cached prepared copy is rebuilt
    before = folder_fingerprint(root)[0]
    (root / "c.txt").write_text("gamma, longer now\n")
    assert folder_fingerprint(root)[0] != before
    plain = _images(tmp_path / "plain", ["z.png"])
    assert not (prepare_dataset(plain, tmp_path / "prep2", resolution=8, progress=False) / "captions.json").exists()


def test_data_check_reports_captions(tmp_path, capsys):
    root = _images(tmp_path / "d", ["a.png", "b.png"])
    (root / "a.txt").write_text("a red seven on black\nred 7\n")
    (root / "b.txt").write_text("")
    assert main(["data", "check", str(root), "--json", str(tmp_path / "r.json"), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "captions (sidecar): 2 caption(s) for 1 of 2 image(s); 1 image(s) without captions" in text
    assert "empty captions skipped: 1" in text
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["captions"]["words"] == {"min": 2, "median": 3.5, "max": 5}
    assert report["captions"]["empty"] == 1
    plain = _images(tmp_path / "plain", ["z.png"])
    assert main(["data", "check", str(plain), "--json", str(tmp_path / "p.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["captions"] is None
    assert "captions" not in capsys.readouterr().out.split("wrote")[0]
