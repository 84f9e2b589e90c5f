"""Batch sources: named tensors, determinism, one crop/flip for a pair, disjoint shards, resume."""

from __future__ import annotations

import pytest
import torch

from ganforge.errors import DataError, GanforgeError
from ganforge.train.batches import (EpochShards, PairedBatches, TensorBatches, UnpairedBatches,
                                    batch_size_of)

CPU = torch.device("cpu")


def _ids(n: int, size: int = 6, channels: int = 1) -> torch.Tensor:
    """Item i is an image whose every pixel is i: a batch shows which items it holds."""
    return torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, channels, size, size).contiguous()


def _item_ids(x: torch.Tensor) -> list[int]:
    return [int(round((float(v) + 1) * 127.5)) for v in x[:, 0, 0, 0]]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _patterned(n: int, size: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=_gen(5), dtype=torch.uint8)


def test_tensor_batches_are_named_and_counted():
    src = TensorBatches(_ids(32), torch.arange(32), batch_size=4, seed=0)
    batch = src.get(0, 0, 1, _gen(), CPU)
    assert set(batch) == {"image", "label"} and batch["image"].dtype == torch.float32
    assert _item_ids(batch["image"]) == batch["label"].tolist()  # labels follow their images
    assert batch_size_of(batch, src.count_key) == batch_size_of(batch) == 4


@pytest.mark.parametrize("cls", [PairedBatches, UnpairedBatches])
def test_batches_are_a_function_of_seed_and_index(cls):
    a, b = _patterned(20, 8), _patterned(20, 8).flip(0)
    one = cls(a, b, batch_size=4, seed=3, crop=5, hflip=True)
    two = cls(a.clone(), b.clone(), batch_size=4, seed=3, crop=5, hflip=True)
    g1, g2 = _gen(1), _gen(1)
    for index in (0, 1, 7, 2):  # out of order and across epochs: no hidden iterator state
        x, y = one.get(index, 0, 1, g1, CPU), two.get(index, 0, 1, g2, CPU)
        assert x.keys() == {"A", "B"} and all(torch.equal(x[k], y[k]) for k in x)
        assert x["A"].shape == (4, 3, 5, 5)
    other = cls(a, b, batch_size=4, seed=4, crop=5, hflip=True).get(0, 0, 1, _gen(1), CPU)
    assert not torch.equal(other["A"], one.get(0, 0, 1, _gen(1), CPU)["A"])


def test_paired_batches_crop_and_flip_a_and_b_alike():
    a = _patterned(16, 10)
    b = 255 - a  # B is a pixelwise function of A: any crop/flip mismatch breaks the relation
    src = PairedBatches(a, b, batch_size=8, seed=0, crop=6, hflip=True)
    g = _gen(2)
    flipped = 0
    for index in range(4):
        batch = src.get(index, 0, 1, g, CPU)
        assert torch.allclose(batch["B"], -batch["A"], atol=1e-5)
        idx = src.shards.indices(index, 0, 1)
        for k, i in enumerate(idx.tolist()):  # every crop is a window of its own image, maybe mirrored
            crop = ((batch["A"][k] + 1) * 127.5).round().to(torch.uint8)
            windows = a[i].unfold(1, 6, 1).unfold(2, 6, 1)
            found = any(torch.equal(windows[:, y, x], c) for y in range(5) for x in range(5) for c in (crop, crop.flip(2)))
            flipped += not any(torch.equal(windows[:, y, x], crop) for y in range(5) for x in range(5))
            assert found
    assert 0 < flipped < 32  # flips happen, not always


def test_paired_batches_may_differ_in_channels_but_not_in_count_or_size():
    a, b = _patterned(8, 8), _patterned(8, 8)[:, :1].contiguous()
    batch = PairedBatches(a, b, batch_size=4, seed=0).get(0, 0, 1, _gen(), CPU)
    assert batch["A"].shape[1] == 3 and batch["B"].shape[1] == 1
    with pytest.raises(DataError, match="must match"):
        PairedBatches(a, b[:7], batch_size=4, seed=0)
    with pytest.raises(DataError, match="larger than"):
        PairedBatches(a, b, batch_size=4, seed=0, crop=9)
    with pytest.raises(DataError, match="uint8"):
        PairedBatches(a.float(), b, batch_size=4, seed=0)


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("cls", [PairedBatches, UnpairedBatches])
def test_ranks_read_disjoint_shards_covering_the_epoch(cls, world):
    n, bs = 30, 4
    src = cls(_ids(n), _ids(n), batch_size=bs, seed=0, hflip=True)
    per_epoch = n // (bs * world)
    for key in ("A", "B"):
        seen: list[int] = []
        for index in range(per_epoch):
            for rank in range(world):  # each rank its own process: its own source and generator
                mine = cls(_ids(n), _ids(n), batch_size=bs, seed=0, hflip=True)
                seen += _item_ids(mine.get(index, rank, world, _gen(rank), CPU)[key])
        assert len(seen) == len(set(seen)) == per_epoch * bs * world  # disjoint, nothing read twice
    assert src.get(per_epoch, 0, world, _gen(), CPU)["A"].shape[0] == bs  # the next epoch starts


def test_unpaired_streams_are_independent():
    n = 24
    src = UnpairedBatches(_ids(n), _ids(n), batch_size=8, seed=0)
    batches = [src.get(i, 0, 1, _gen(), CPU) for i in range(3)]
    a = [i for b in batches for i in _item_ids(b["A"])]
    b = [i for b in batches for i in _item_ids(b["B"])]
    assert sorted(a) == sorted(b) == list(range(n))  # each stream covers its epoch once ...
    assert a != b  # ... in its own order
    small = UnpairedBatches(_ids(24), _ids(8), batch_size=4, seed=0)  # sizes may differ
    assert small.get(5, 0, 1, _gen(), CPU)["B"].shape[0] == 4  # B is in its third epoch, A in its first


@pytest.mark.parametrize("cls", [PairedBatches, UnpairedBatches])
def test_resume_gives_the_same_next_batch(cls):
    """The loop checkpoints (batch index, generator state): a fresh source restored from them
    produces exactly the batch the uninterrupted run would have seen next."""
    a, b = _patterned(20, 8), _patterned(20, 8).flip(0)
    run, g = cls(a, b, batch_size=4, seed=9, crop=6, hflip=True), _gen(7)
    saved = None
    straight = []
    for index in range(8):
        if index == 5:
            saved = g.get_state()
        straight.append(run.get(index, 0, 1, g, CPU))
    resumed_g = torch.Generator()
    resumed_g.set_state(saved)
    resumed = cls(a, b, batch_size=4, seed=9, crop=6, hflip=True)
    for index in range(5, 8):
        batch = resumed.get(index, 0, 1, resumed_g, CPU)
        assert all(torch.equal(batch[k], straight[index][k]) for k in batch)


def test_too_little_data_is_a_clear_error():
    with pytest.raises(GanforgeError, match="fewer than one batch"):
        EpochShards(7, batch_size=4, seed=0).indices(0, 0, 2)


# --- pairs from disk ---------------------------------------------------------------------------------

def _solid(path, size, colour, mode="RGB"):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


def test_paired_folder_matches_a_and_b_by_name(tmp_path):
    from ganforge.data.paired import load_paired_folder

    for k, name in enumerate(["x/1", "2", "3"]):
        _solid(tmp_path / "A" / f"{name}.png", (12, 10), (10 * k, 0, 0))
        _solid(tmp_path / "B" / f"{name}.jpg" if k == 2 else tmp_path / "B" / f"{name}.png", (12, 10), 40 * k, "L")
    _solid(tmp_path / "A" / "lonely.png", (12, 10), (0, 0, 0))
    with pytest.warns(UserWarning, match="1 file.*no counterpart"):
        a, b, names = load_paired_folder(tmp_path, resolution=8, channels=3, channels_b=1)
    assert names == ["2", "3", "x/1"] and a.shape == (3, 3, 8, 8) and b.shape == (3, 1, 8, 8)
    assert a.dtype == b.dtype == torch.uint8
    assert [int(v) for v in a[:, 0, 0, 0]] == [10, 20, 0] and [int(v) for v in b[:2, 0, 0, 0]] == [40, 80]
    src = PairedBatches(a, b, batch_size=3, seed=0)  # straight into the paired source
    assert src.get(0, 0, 1, _gen(), CPU)["B"].shape == (3, 1, 8, 8)


def test_side_by_side_ab_images_split_into_halves(tmp_path):
    from PIL import Image

    from ganforge.data.paired import load_paired_folder

    img = Image.new("RGB", (20, 10), (255, 0, 0))
    img.paste((0, 0, 255), (10, 0, 20, 10))
    img.save(tmp_path / "p.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        a, b, names = load_paired_folder(tmp_path, resolution=8)
    assert names == ["p"] and a[0, :, 4, 4].tolist() == [255, 0, 0] and b[0, :, 4, 4].tolist() == [0, 0, 255]


def test_unpaired_folder_and_errors(tmp_path):
    from ganforge.data.paired import load_paired_folder, load_unpaired_folder

    for k in range(3):
        _solid(tmp_path / "A" / f"{k}.png", (9, 9), (k, k, k))
    _solid(tmp_path / "B" / "z.png", (9, 9), (1, 2, 3))
    a, b = load_unpaired_folder(tmp_path, resolution=8)
    assert a.shape == (3, 3, 8, 8) and b.shape == (1, 3, 8, 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image pairs"):
        load_paired_folder(tmp_path / "empty", resolution=8)
    with pytest.raises(DataError, match="channels"):
        load_paired_folder(tmp_path, resolution=8, channels=2)
