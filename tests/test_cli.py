"""The installed ``ganforge`` command end to end: train, sample, interpolate, and one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

EXE = shutil.which("ganforge")
pytestmark = pytest.mark.skipif(EXE is None, reason="ganforge entry point not installed")


def ganforge(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300, env=os.environ.copy())
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_train_sample_interpolate_through_the_entry_point(tmp_path):
    run = tmp_path / "run"
    out = ganforge("train", "--out", str(run), "--data", "digits", "--resolution", "16", "--width", "8",
                   "--batch-size", "32", "--steps", "6", "--conditional", "--sample-every", "3", "--no-progress")
    assert json.loads(out.stdout.strip().splitlines()[-1])["steps"] == 6
    for name in ("config.json", "log.jsonl", "loss_curves.png", "samples/latest.png", "samples/step-0000003.png"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    ganforge("sample", str(run), "--n", "10", "--class", "7", "--out", str(tmp_path / "grid.png"))
    with Image.open(tmp_path / "grid.png") as img:
        assert img.size[0] > 16 * 3
    ganforge("sample", str(run), "--n", "3", "--out-dir", str(tmp_path / "many"))
    assert len(list((tmp_path / "many").glob("*.png"))) == 3
    ganforge("interpolate", str(run), "--seeds", "1,2", "--frames", "3", "--out", str(tmp_path / "walk.gif"))
    with Image.open(tmp_path / "walk.gif") as gif:
        assert gif.n_frames == 6
    ganforge("interpolate", str(run), "--seeds", "1,2", "--frames", "3", "--out", str(tmp_path / "walk.mp4"))
    import av

    with av.open(str(tmp_path / "walk.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == 6


@pytest.mark.parametrize("args, message", [
    (["train", "--out", "{tmp}/r", "--data", "no/such/folder"], "no/such/folder"),
    (["train", "--out", "{tmp}/r", "--data", "{tmp}/empty"], "no images"),
    (["train", "--out", "{tmp}/r", "--data", "digits", "--loss", "nope"], "unknown loss"),
    (["train", "--out", "{tmp}/r", "--data", "digits", "--resolution", "48"], "power of two"),
    (["sample", "{tmp}/missing-run", "--out", "{tmp}/x.png"], "not a ganforge run"),
    (["weights", "path", "no-such-weights"], "unknown weights"),
])
def test_bad_input_gives_one_line_error(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    result = ganforge(*[a.format(tmp=tmp_path) for a in args], check=False)
    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ganforge: error:"), result.stderr
    assert message in lines[0]


def test_bad_flag_is_an_argparse_error():
    result = ganforge("train", "--out", "x", "--steps", "many", check=False)
    assert result.returncode == 2 and "invalid int value" in result.stderr


def test_corrupt_file_in_folder_is_skipped_with_a_warning(tmp_path):
    data = tmp_path / "data" / "blobs"
    data.mkdir(parents=True)
    for i in range(40):
        Image.new("RGB", (24, 20), (i * 6, 100, 200 - i * 4)).save(data / f"{i:02d}.png")
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = ganforge("train", "--out", str(tmp_path / "run"), "--data", str(tmp_path / "data"), "--resolution", "16",
                      "--width", "8", "--batch-size", "8", "--steps", "2", "--no-progress")
    assert "broken.jpg" in result.stderr and "skipped 1" in result.stderr.lower()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["skipped_files"] == 1
