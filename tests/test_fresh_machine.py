"""A fresh machine (issue 12, part 2): the default weights download from their URL with a checksum
(tested with a file:// URL and small random weights in the official key layout), each encoder's
input normalisation, and a demo that runs from packaged images and says plainly what to do
offline. Nothing here needs the shared assets."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch

from ganforge import weights
from ganforge.cli import main
from ganforge.errors import WeightsError
from ganforge.nets.vgg import DEFAULT_ENCODER, ENCODERS, VGGEncoder, load_vgg


pytestmark = pytest.mark.usefixtures("one_thread")


def _official_vgg19_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with torchvision's vgg19 keys (features.N for all 16 convs + classifier)."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
    index, channels = 0, 3
    for v in cfg:
        if v == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(v, channels, 3, 3, generator=g) * (2 / (9 * channels)) ** 0.5
        state[f"features.{index}.bias"] = torch.zeros(v)
        index, channels = index + 2, v
    for i, (o, n) in {0: (8, 512 * 7 * 7 // 49), 3: (8, 8), 6: (10, 8)}.items():  # shapes do not matter: dropped
        state[f"classifier.{i}.weight"] = torch.randn(o, n, generator=g)
        state[f"classifier.{i}.bias"] = torch.zeros(o)
    return state


def _serve(monkeypatch, tmp_path: Path, name: str, *, good: bool) -> Path:
    """Publish random official-layout weights at a file:// URL under the entry's file name, and
    point the registry entry at it (hash prefix as torchvision publishes it, or a wrong one)."""
    entry = weights.WEIGHTS.get(name)
    served = tmp_path / "server" / entry.filename
    served.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_official_vgg19_state(), served)
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    prefix = digest[:8] if good else ("0" if digest[0] != "0" else "1") + digest[1:8]
    monkeypatch.setitem(weights.WEIGHTS._items, name,
                        dataclasses.replace(entry, url=served.as_uri(), sha256=prefix))
    return served


def test_default_encoder_is_downloadable_with_a_checksum():
    entry = weights.WEIGHTS.get(DEFAULT_ENCODER)
    assert entry.url == "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
    assert entry.sha256 == "dcbb9e9d" and ENCODERS[DEFAULT_ENCODER] == ("torchvision", "imagenet")
    for name in ("vgg19-caffe-neuralstyle",):
        e = weights.WEIGHTS.get(name)
        assert e.url and e.sha256 and e.sha256 in e.filename
    assert weights.WEIGHTS.get("vgg19-caffe").url is None  # the offline alternative


def test_download_good_file_lands_in_cache_and_loads(fresh_home, tmp_path, monkeypatch, capsys):
    _serve(monkeypatch, tmp_path, DEFAULT_ENCODER, good=True)
    assert main(["weights", "fetch", DEFAULT_ENCODER, "--quiet"]) == 0
    cached = fresh_home / "weights" / "vgg19-dcbb9e9d.pth"
    assert capsys.readouterr().out.strip() == str(cached) and cached.is_file()
    encoder = load_vgg()  # the default name, resolved from the cache with the hash check
    assert encoder.normalisation == "imagenet" and encoder.source == DEFAULT_ENCODER
    x = torch.rand(1, 3, 24, 24)
    assert encoder(x, ("relu3_1",))["relu3_1"].shape == (1, 256, 6, 6)
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temp files left


def test_download_wrong_checksum_is_one_line_and_caches_nothing(fresh_home, tmp_path, monkeypatch, capsys):
    _serve(monkeypatch, tmp_path, DEFAULT_ENCODER, good=False)
    assert main(["weights", "fetch", DEFAULT_ENCODER, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganforge: error:") and "\n" not in err
    assert "sha256" in err and "nothing was saved" in err
    folder = fresh_home / "weights"
    assert not folder.exists() or not any(folder.iterdir())
    with pytest.raises(WeightsError, match="sha256"):  # the library path says the same
        load_vgg(DEFAULT_ENCODER)


def test_unreachable_download_names_the_fix(fresh_home, tmp_path, monkeypatch):
    entry = weights.WEIGHTS.get(DEFAULT_ENCODER)
    monkeypatch.setitem(weights.WEIGHTS._items, DEFAULT_ENCODER,
                        dataclasses.replace(entry, url=(tmp_path / "nowhere.pth").as_uri()))
    with pytest.raises(WeightsError) as exc:
        load_vgg()
    message = str(exc.value)
    assert "\n" not in message and f"ganforge weights fetch {DEFAULT_ENCODER}" in message
    assert "GANFORGE_WEIGHTS_DIR" in message


def test_normalisations_match_their_conventions():
    x = torch.rand(2, 3, 8, 8)
    imagenet = VGGEncoder("torchvision", "imagenet").normalise(x)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(imagenet, (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    caffe = VGGEncoder("torchvision", "caffe").normalise(x)
    assert torch.allclose(caffe, x * 255 - torch.tensor([123.68, 116.779, 103.939]).view(1, 3, 1, 1))
    bgr = VGGEncoder("torchvision", "caffe-bgr").normalise(x)
    assert torch.allclose(bgr[:, 0], x[:, 2] * 255 - 103.939)  # channel 0 is blue
    assert torch.allclose(bgr, caffe.flip(1))


def test_caffe_bgr_file_equals_its_rgb_conversion(tmp_path):
    """The same Caffe weights, once with BGR conv1_1 (neural-style-pt's file) and once with its
    input channels reversed (how vgg19-caffe was converted), give the same features."""
    state = _official_vgg19_state(1)
    rgb = dict(state)
    rgb["features.0.weight"] = state["features.0.weight"].flip(1)
    bgr_enc, rgb_enc = VGGEncoder("torchvision", "caffe-bgr"), VGGEncoder("torchvision", "caffe")
    bgr_enc.load_file_state(state, source="bgr")
    rgb_enc.load_file_state(rgb, source="rgb")
    x = torch.rand(1, 3, 20, 20)
    assert torch.allclose(bgr_enc(x, ("relu2_1",))["relu2_1"], rgb_enc(x, ("relu2_1",))["relu2_1"],
                          rtol=1e-5, atol=1e-3)


def test_registered_file_given_by_path_keeps_its_normalisation(tmp_path):
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(_official_vgg19_state(), path)
    assert load_vgg(str(path)).normalisation == "imagenet"
    other = tmp_path / "my-vgg.pth"
    torch.save(_official_vgg19_state(), other)
    assert load_vgg(str(other)).normalisation == "caffe"


def test_packaged_demo_images_are_small_and_declared():
    from ganforge.style.demo import CONTENT, STYLE

    assert CONTENT.is_file() and STYLE.is_file()
    assert CONTENT.stat().st_size + STYLE.stat().st_size <= 300_000
    assert "/shared/" not in str(CONTENT) and CONTENT.parent.name == "assets"
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"assets/*.jpg"' in pyproject
    source = (Path(__file__).resolve().parents[1] / "src" / "ganforge" / "style" / "demo.py").read_text()
    assert "parents[4]" not in source and "shared" not in source.replace("shared/", "")


def test_demo_section_offline_without_weights_says_what_to_do(fresh_home, tmp_path, monkeypatch):
    from ganforge.style import demo_section

    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    html = demo_section(tmp_path / "out")
    assert "Skipped" in html and f"ganforge weights fetch {DEFAULT_ENCODER}" in html
    assert "GANFORGE_WEIGHTS_DIR" in html and "GANFORGE_OFFLINE=1" in html
    assert "Error" not in html and "Traceback" not in html and "not found:" not in html


def test_demo_section_runs_on_the_packaged_pair(tmp_path):
    from ganforge.style import demo_section

    path = tmp_path / "vgg19-dcbb9e9d.pth"  # random weights in the official layout, by path
    torch.save(_official_vgg19_state(), path)
    html = demo_section(tmp_path / "out", encoder=str(path), size=32, iterations=2)
    assert "style_gatys.jpg" in html and (tmp_path / "out" / "style_gatys.jpg").is_file()
    assert "--precision bf16" not in html and "CC BY 2.0" in html


def test_demo_dataset_line_is_plain_offline(fresh_home, monkeypatch):
    from ganforge.report.demo import pick_dataset

    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    monkeypatch.delenv("GANFORGE_DATA_DIR", raising=False)
    name, reason = pick_dataset("auto", progress=False)
    assert name == "digits"
    assert "MNIST not found locally and GANFORGE_OFFLINE=1" in reason and "8×8 digits" in reason
    assert "urlopen" not in reason and "Errno" not in reason and "\n" not in reason
