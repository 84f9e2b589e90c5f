"""Label maps (palette / greyscale class ids, NEAREST resizing that keeps label and photo aligned)
and ``ganforge data check`` on paired, side-by-side, unpaired and label-map layouts. Every image
is made here, in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.cli import main
from ganforge.data.check import FolderReport, PairReport, check_dataset
from ganforge.data.labelmap import load_label_pairs, read_label_map
from ganforge.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")

PALETTE = [0, 0, 0, 200, 30, 30, 30, 200, 30, 30, 30, 200] + [0] * (256 * 3 - 12)


def _ids(h: int = 30, w: int = 40) -> np.ndarray:
    ids = np.zeros((h, w), dtype=np.uint8)
    ids[5:15, 8:20] = 1
    ids[18:, 25:] = 3
    return ids


def _save_palette(ids: np.ndarray, path: Path) -> Path:
    img = Image.fromarray(ids, mode="P")
    img.putpalette(PALETTE)
    img.save(path)
    return path


def _noise(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    shape = (h, w) if channels == 1 else (h, w, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# --------------------------------------------------------------------------- label maps

def test_palette_and_greyscale_read_the_same_ids(tmp_path):
    ids = _ids()
    p = read_label_map(_save_palette(ids, tmp_path / "p.png"), num_classes=4)
    Image.fromarray(ids, mode="L").save(tmp_path / "l.png")
    g = read_label_map(tmp_path / "l.png", num_classes=4)
    Image.fromarray(ids.astype(np.uint16)).save(tmp_path / "i.png")  # 16-bit greyscale
    assert np.array_equal(p, ids) and np.array_equal(g, ids)
    assert np.array_equal(read_label_map(tmp_path / "i.png"), ids)
    assert p.shape == (30, 40) and p.dtype == np.uint8


def test_label_map_errors(tmp_path):
    _save_palette(_ids(), tmp_path / "road.png")
    with pytest.raises(DataError, match=r"road\.png: class id 3 .*--num-classes is 3"):
        read_label_map(tmp_path / "road.png", num_classes=3)
    colours = np.array(PALETTE[:12], dtype=np.uint8).reshape(4, 3)
    Image.fromarray(colours[_ids()]).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match=r"RGB image is not a label map.*palette\) or greyscale"):
        read_label_map(tmp_path / "rgb.png")
    palette = {tuple(int(v) for v in c): i for i, c in enumerate(colours)}
    assert np.array_equal(read_label_map(tmp_path / "rgb.png", palette=palette), _ids())
    del palette[(30, 30, 200)]
    with pytest.raises(DataError, match="not in the palette"):
        read_label_map(tmp_path / "rgb.png", palette=palette)


def _aligned_pair(root: Path, name: str, h: int, w: int, *, label_scale: int = 1) -> None:
    """A photo with a bright square and a label map with class 2 on exactly that square."""
    photo = np.full((h, w, 3), 20, dtype=np.uint8)
    ids = np.ones((h, w), dtype=np.uint8)
    y0, x0, side = h // 3, w // 2, h // 3
    photo[y0:y0 + side, x0:x0 + side] = 235
    ids[y0:y0 + side, x0:x0 + side] = 2
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    Image.fromarray(photo).save(root / "images" / f"{name}.jpg", quality=95)
    small = ids[::label_scale, ::label_scale]
    _save_palette(small, root / "labels" / f"{name}.png")


@pytest.mark.parametrize("resolution", [24, 48, 96])
def test_label_pairs_stay_aligned(tmp_path, resolution):
    _aligned_pair(tmp_path, "wide", 60, 90)
    _aligned_pair(tmp_path, "tall", 96, 48)
    _aligned_pair(tmp_path, "halfres", 64, 80, label_scale=2)  # label map at half the photo's size
    labels, images, names = load_label_pairs(tmp_path, resolution=resolution, num_classes=3)
    assert names == ["halfres", "tall", "wide"]
    assert labels.shape == (3, 1, resolution, resolution) and images.shape == (3, 3, resolution, resolution)
    assert labels.dtype == images.dtype == torch.uint8
    assert set(labels.unique().tolist()) <= {1, 2}  # NEAREST: no interpolated ids such as 0 or 3
    for i in range(3):
        square = labels[i, 0] == 2
        bright = images[i].float().mean(0)
        assert square.any()
        assert bright[square].mean() > 200, names[i]
        assert bright[~square].mean() < 45, names[i]
        # pixel by pixel: away from the edges the photo agrees with the label
        agree = ((bright > 128) == square).float().mean()
        assert agree > 0.95, (names[i], float(agree))


@pytest.mark.filterwarnings("ignore:.*no counterpart:UserWarning")
def test_label_pairs_matching_and_errors(tmp_path):
    root = tmp_path / "ds"
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir()
    _save_palette(_ids(), root / "A" / "one.png")
    Image.fromarray(_noise(30, 40)).save(root / "B" / "one.png")
    Image.fromarray(_noise(30, 40, seed=1)).save(root / "B" / "lonely.png")
    with pytest.warns(UserWarning, match="1 file"):
        labels, images, names = load_label_pairs(root, resolution=16, num_classes=4, channels=1)
    assert names == ["one"] and images.shape == (1, 1, 16, 16) and labels.shape == (1, 1, 16, 16)
    with pytest.raises(DataError, match=r"one\.png: class id 3.*--num-classes is 2"):
        load_label_pairs(root, resolution=16, num_classes=2)
    (root / "B" / "one.png").rename(root / "B" / "other.png")
    with pytest.raises(DataError, match="no label map / image pairs"):
        load_label_pairs(root, resolution=16, num_classes=4)
    with pytest.raises(DataError, match="labels/ and images/"):
        load_label_pairs(tmp_path / "ds" / "A", resolution=16, num_classes=4)


# --------------------------------------------------------------------------- data check

def _paired(root: Path) -> Path:
    for side in "AB":
        (root / side).mkdir(parents=True)
    for i in range(3):
        Image.fromarray(_noise(32, 32, seed=i)).save(root / "A" / f"p{i}.png")
        Image.fromarray(_noise(32, 32, seed=10 + i)).save(root / "B" / f"p{i}.jpg")
    Image.fromarray(_noise(32, 48, seed=20)).save(root / "B" / "p2.jpg")  # size mismatch
    Image.fromarray(_noise(32, 32, 1, seed=21)).save(root / "B" / "p1.jpg")  # gray among colour
    Image.fromarray(_noise(32, 32, seed=22)).save(root / "A" / "extra.png")  # no counterpart
    return root


def test_check_paired_folders(tmp_path):
    report = check_dataset(_paired(tmp_path / "pairs"))
    assert isinstance(report, PairReport) and report.layout == "paired"
    assert report.pairs == 3
    assert report.unmatched_count == {"A": 1, "B": 0} and report.unmatched["A"] == ["extra"]
    assert [m["name"] for m in report.size_mismatch] == ["p2"]
    assert report.size_mismatch[0]["B"] == [48, 32] and report.size_mismatch[0]["aspect_differs"]
    assert [m["name"] for m in report.channel_mismatch] == ["p1"]
    assert report.channels["B"] == {"gray": 1, "colour": 2}
    assert report.sides["A"].images == 4 and report.sides["B"].images == 3
    assert len(report.problems) >= 3
    text = report.format()
    assert "3 pair(s)" in text and "extra" in text and "p2: A 32x32, B 48x32" in text
    json.dumps(report.to_dict())


def test_check_unpaired_side_by_side_and_single(tmp_path):
    root = tmp_path / "horses2zebras"
    for side in "AB":
        (root / side).mkdir(parents=True)
    Image.fromarray(_noise(20, 20)).save(root / "A" / "horse.png")
    Image.fromarray(_noise(20, 30, seed=1)).save(root / "B" / "zebra.png")
    report = check_dataset(root)
    assert report.layout == "unpaired" and report.pairs == 0 and not report.problems
    assert report.sides["B"].images == 1

    ab = tmp_path / "facades"
    ab.mkdir()
    Image.fromarray(_noise(16, 32)).save(ab / "1.png")
    Image.fromarray(_noise(16, 33, seed=1)).save(ab / "2.png")
    assert isinstance(check_dataset(ab), FolderReport)  # auto: a plain folder stays a plain folder
    report = check_dataset(ab, layout="paired")
    assert report.layout == "paired-ab" and report.pairs == 2 and report.odd_width == ["2.png"]
    with pytest.raises(DataError, match="--layout unpaired needs A/ and B/"):
        check_dataset(ab, layout="unpaired")
    with pytest.raises(DataError, match="--num-classes is for label maps"):
        check_dataset(ab, num_classes=3)


def test_check_label_maps(tmp_path):
    root = tmp_path / "city"
    _aligned_pair(root, "a", 32, 48)
    _aligned_pair(root, "b", 32, 48)
    _save_palette(_ids(32, 48), root / "labels" / "b.png")  # ids up to 3
    colours = np.array(PALETTE[:12], dtype=np.uint8).reshape(4, 3)
    Image.fromarray(colours[_ids(32, 48)]).save(root / "labels" / "c.png")  # a colour label map
    Image.fromarray(_noise(32, 48)).save(root / "images" / "c.jpg")
    _save_palette(_ids(16, 16), root / "labels" / "d.png")  # size mismatch with its photo
    Image.fromarray(_noise(32, 48)).save(root / "images" / "d.jpg")
    report = check_dataset(root, num_classes=3)
    assert report.layout == "labels" and report.pairs == 4
    assert report.out_of_range == [{"path": "b.png", "max": 3}]
    assert report.max_class == 3 and report.classes == {"0": 2, "1": 3, "2": 1, "3": 1}
    assert report.not_class_ids == [{"path": "c.png", "mode": "RGB"}]
    assert [m["name"] for m in report.size_mismatch] == ["d"]
    assert any("--num-classes 3" in p for p in report.problems)
    text = report.format()
    assert "b.png: max id 3" in text and "c.png: RGB" in text
    # A/ + B/ with --num-classes is a label-map set too
    assert check_dataset(root, layout="labels").num_classes is None


def test_cli_data_check_layouts(tmp_path, capsys):
    root = _paired(tmp_path / "pairs")
    assert main(["data", "check", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "paired (A/ + B/ matched by name), 3 pair(s), 1 file(s) without a counterpart" in out
    assert "no counterpart in A (1): extra" in out
    target = tmp_path / "report.json"
    assert main(["data", "check", str(root), "--layout", "unpaired", "--json", str(target), "--quiet"]) == 0
    data = json.loads(target.read_text())
    assert data["layout"] == "unpaired" and data["sides"]["A"]["images"] == 4
    assert f"wrote {target}" in capsys.readouterr().out
    labels = tmp_path / "labels_ds"
    _aligned_pair(labels, "x", 32, 32)
    assert main(["data", "check", str(labels), "--num-classes", "2", "--json", "--quiet"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["out_of_range"] == [{"path": "x.png", "max": 2}] and data["num_classes"] == 2
    assert main(["data", "check", str(root), "--num-classes", "0"]) == 2
    assert "--num-classes must be at least 1" in capsys.readouterr().err
