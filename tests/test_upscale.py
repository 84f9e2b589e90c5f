"""Super-resolution inference: ESRGAN / Real-ESRGAN checkpoints load into ganforge's RRDBNet (their
key layout, params_ema / params wrappers, ×2 pixel-unshuffle), tiled == untiled, and
``ganforge upscale`` end to end.

The checkpoints are random weights written in the published layout; the expected outputs come from
a reference forward written here from the ESRGAN paper's structure (Wang et al. 2018, fig. 4:
dense blocks of five 3×3 convs with LeakyReLU 0.2, residual scaling 0.2 in and around each
dense block, nearest ×2 + conv upsampling twice), not from ganforge's module. Tiny sizes
(nf=8, gc=4, nb=1) keep every test well under a second or two.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganforge.cli import main
from ganforge.errors import GanforgeError, WeightsError

NF, GC, NB = 8, 4, 1


# -- the published layout and a reference forward, independent of ganforge.nets.rrdb -------------

def official_shapes(scale: int = 4, nf: int = NF, gc: int = GC, nb: int = NB, cin: int = 3, cout: int = 3) -> dict:
    """Key -> shape of basicsr's RRDBNet (rrdbnet_arch.py), written out by hand."""
    fold = {4: 1, 2: 4, 1: 16}[scale]
    shapes = {"conv_first": (nf, cin * fold)}
    for b in range(nb):
        for r in (1, 2, 3):
            for c in range(1, 6):
                shapes[f"body.{b}.rdb{r}.conv{c}"] = (nf if c == 5 else gc, nf + (c - 1) * gc)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        shapes[name] = (nf, nf)
    shapes["conv_last"] = (cout, nf)
    out = {}
    for name, (o, i) in shapes.items():
        out[f"{name}.weight"] = (o, i, 3, 3)
        out[f"{name}.bias"] = (o,)
    return out


def random_state(scale: int = 4, seed: int = 0, **kw) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_shapes(scale, **kw).items():
        if key.endswith(".weight"):
            fan_in = shape[1] * 9
            state[key] = torch.randn(shape, generator=gen) * (1.0 / fan_in) ** 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.05
    state["conv_last.bias"] = state["conv_last.bias"] + 0.5  # outputs mostly inside [0, 1]
    return state


def _fold(x: torch.Tensor, r: int) -> torch.Tensor:
    """Space-to-depth: channel c*r*r + i*r + j holds pixel (i, j) of each r×r cell."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // r, r, w // r, r).permute(0, 1, 3, 5, 2, 4).reshape(n, c * r * r, h // r, w // r)


def reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, scale: int = 4) -> torch.Tensor:
    def conv(name: str, t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=1)

    def lrelu(t: torch.Tensor) -> torch.Tensor:
        return torch.where(t >= 0, t, 0.2 * t)

    def up2(t: torch.Tensor) -> torch.Tensor:
        return t.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)

    if scale != 4:
        x = _fold(x, {2: 2, 1: 4}[scale])
    feat = conv("conv_first", x)
    nb = len({k.split(".")[1] for k in sd if k.startswith("body.")})
    trunk = feat
    for b in range(nb):
        block_in = trunk
        for r in (1, 2, 3):
            dense_in = trunk
            seen = [dense_in]
            for c in range(1, 5):
                seen.append(lrelu(conv(f"body.{b}.rdb{r}.conv{c}", torch.cat(seen, 1))))
            trunk = dense_in + 0.2 * conv(f"body.{b}.rdb{r}.conv5", torch.cat(seen, 1))
        trunk = block_in + 0.2 * trunk
    feat = feat + conv("conv_body", trunk)
    feat = lrelu(conv("conv_up1", up2(feat)))
    feat = lrelu(conv("conv_up2", up2(feat)))
    return conv("conv_last", lrelu(conv("conv_hr", feat)))


@pytest.fixture
def x4_file(tmp_path):
    path = tmp_path / "tiny_x4.pth"
    torch.save({"params_ema": random_state(4, seed=1), "params": random_state(4, seed=2)}, path)
    return path


def _image(path, w: int = 13, h: int = 9, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    arr = (torch.rand(h, w, 3, generator=gen) * 255).to(torch.uint8).numpy()
    Image.fromarray(arr).save(path)
    return path


# -- network layout and loading --------------------------------------------------------------------

@pytest.mark.parametrize("scale", [4, 2, 1])
def test_rrdbnet_keys_and_shapes_are_the_published_layout(scale):
    from ganforge.nets.rrdb import RRDBNet

    net = RRDBNet(nf=NF, nb=2, gc=GC, scale=scale)
    own = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert own == official_shapes(scale, nb=2)
    assert net.scale == scale
    if scale == 4:  # the defaults are the published ×4 model: nf=64, nb=23, gc=32
        assert {k: tuple(v.shape) for k, v in RRDBNet().state_dict().items()} == official_shapes(4, 64, 32, 23)


def test_build_upscaler_matches_the_reference_and_prefers_params_ema(x4_file):
    from ganforge.restore.zoo import build_upscaler

    net = build_upscaler(str(x4_file))
    assert type(net).__name__ == "RRDBNet" and net.scale == 4 and not net.training
    assert (net.nf, net.nb, net.gc) == (NF, NB, GC)
    x = torch.rand(1, 3, 11, 7, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = net(x)
    assert got.shape == (1, 3, 44, 28)
    torch.testing.assert_close(got, reference_forward(random_state(4, seed=1), x), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(got, reference_forward(random_state(4, seed=2), x), atol=1e-3)  # not 'params'


def test_params_wrapper_flat_dict_and_esrgan_legacy_names(tmp_path):
    from ganforge.restore.zoo import build_upscaler

    sd = random_state(4, seed=4)
    x = torch.rand(1, 3, 8, 6, generator=torch.Generator().manual_seed(5))
    want = reference_forward(sd, x)
    legacy = {}
    for key, value in sd.items():  # the original ESRGAN repository's names (RRDB_ESRGAN_x4.pth)
        key = key.replace("conv_body", "trunk_conv").replace("conv_up", "upconv").replace("conv_hr", "HRconv")
        if key.startswith("body."):
            _, b, rdb, rest = key.split(".", 3)
            key = f"RRDB_trunk.{b}.RDB{rdb[-1]}.{rest}"
        legacy[key] = value
    for name, payload in (("params.pth", {"params": sd}), ("flat.pth", sd), ("legacy.pth", legacy)):
        torch.save(payload, tmp_path / name)
        with torch.no_grad():
            torch.testing.assert_close(build_upscaler(tmp_path / name)(x), want, atol=1e-5, rtol=1e-4)


def test_x2_pixel_unshuffle_variant_and_odd_sizes(tmp_path):
    from ganforge.restore.upscale import upscale_image
    from ganforge.restore.zoo import build_upscaler

    sd = random_state(2, seed=6)
    assert sd["conv_first.weight"].shape[1] == 12  # Real-ESRGAN ×2: 3 channels folded 2×2
    torch.save({"params_ema": sd}, tmp_path / "x2.pth")
    net = build_upscaler(tmp_path / "x2.pth")
    assert net.scale == 2
    x = torch.rand(1, 3, 10, 14, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        torch.testing.assert_close(net(x), reference_forward(sd, x, scale=2), atol=1e-5, rtol=1e-4)
    odd = torch.rand(3, 13, 9, generator=torch.Generator().manual_seed(8))
    out = upscale_image(net, odd, precision="fp32")
    assert out.shape == (3, 26, 18)
    # odd sizes: reflect-padded to even at the bottom/right, then cropped to exactly 2× the input
    padded = F.pad(odd[None], (0, 1, 0, 1), mode="reflect")
    want = reference_forward(sd, padded, scale=2)[0, :, :26, :18].clamp(0, 1)
    assert (out - want).abs().max() < 1e-5


def test_srresnet_layout_loads_and_infers_scale(tmp_path):
    from ganforge.nets.rrdb import SRResNet
    from ganforge.restore.zoo import build_upscaler

    for scale in (4, 2, 3):
        src = SRResNet(nf=8, nb=2, scale=scale)
        keys = set(src.state_dict())
        assert {"conv_first.weight", "body.1.conv2.bias", "upconv1.weight", "conv_hr.weight", "conv_last.bias"} <= keys
        assert ("upconv2.weight" in keys) == (scale == 4)
        torch.save({"params": src.state_dict()}, tmp_path / f"sr{scale}.pth")
        net = build_upscaler(tmp_path / f"sr{scale}.pth")
        assert isinstance(net, SRResNet) and net.scale == scale
        x = torch.rand(1, 3, 5, 7)
        with torch.no_grad():
            torch.testing.assert_close(net(x), src.eval()(x))
            assert net(x).shape == (1, 3, 5 * scale, 7 * scale)


def test_wrong_layout_and_unknown_names_are_one_line_weights_errors(tmp_path):
    from ganforge.restore.zoo import build_upscaler

    torch.save({"params": {"foo.weight": torch.zeros(2)}}, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="neither RRDBNet|no conv_first"):
        build_upscaler(tmp_path / "bad.pth")
    torch.save({"params_ema": random_state(4)}, tmp_path / "x4.pth")
    with pytest.raises(WeightsError, match="missing keys|unexpected keys|shape"):
        build_upscaler(tmp_path / "x4.pth", nb=2)
    with pytest.raises(WeightsError, match="ganforge weights list"):
        build_upscaler("no-such-model")
    with pytest.raises(WeightsError, match="not found"):
        build_upscaler(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        build_upscaler(tmp_path / "junk.pth")


# -- registry ----------------------------------------------------------------------------------

def test_registry_entries_and_resolution_through_weights_dir(tmp_path, monkeypatch):
    from ganforge.restore.zoo import ALIASES, UPSCALERS, build_upscaler
    from ganforge.weights import WEIGHTS

    expected = {"realesrgan-x4plus": "RealESRGAN_x4plus.pth", "realesrgan-x2plus": "RealESRGAN_x2plus.pth",
                "realesrnet-x4plus": "RealESRNet_x4plus.pth",
                "realesrgan-x4plus-anime": "RealESRGAN_x4plus_anime_6B.pth",
                "esrgan-x4": "ESRGAN_SRx4_DF2KOST_official-ff704c30.pth"}
    for name, filename in expected.items():
        entry = WEIGHTS.get(name)
        assert entry.filename == filename and name in UPSCALERS
        release = entry.url.split("/")[-2]
        assert entry.url == f"https://github.com/xinntao/Real-ESRGAN/releases/download/{release}/{filename}"
    assert WEIGHTS.get("esrgan-x4").sha256 == "ff704c30"  # basicsr's sha256-prefix file name
    assert all(WEIGHTS.get(n).sha256 == "" for n in expected if n != "esrgan-x4")  # nothing published
    assert UPSCALERS["realesrgan-x4plus-anime"]["nb"] == 6 and UPSCALERS["realesrgan-x2plus"]["scale"] == 2
    assert ALIASES["RealESRGAN_x4plus"] == ALIASES["RealESRGAN_x4plus.pth"] == "realesrgan-x4plus"
    # a file of that name in GANFORGE_WEIGHTS_DIR is used by name (architecture read off the keys)
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(tmp_path))
    torch.save({"params_ema": random_state(4, seed=9)}, tmp_path / "RealESRGAN_x4plus.pth")
    for name in ("realesrgan-x4plus", "RealESRGAN_x4plus"):
        with pytest.warns(UserWarning, match="no published sha256"):
            net = build_upscaler(name)
        assert net.nb == NB and net.scale == 4


# -- tiling and precision --------------------------------------------------------------------------

def test_tiled_equals_untiled_on_70x50():
    from ganforge.nets.rrdb import RRDBNet
    from ganforge.restore.upscale import upscale_image

    net = RRDBNet(nf=NF, nb=NB, gc=GC, scale=4)
    net.load_state_dict(random_state(4, seed=10))
    x = torch.rand(3, 50, 70, generator=torch.Generator().manual_seed(11))
    whole = upscale_image(net, x, precision="fp32")
    assert whole.shape == (3, 200, 280) and 0.05 < whole.mean() < 0.95 and whole.std() > 0.05
    # halo >= the receptive field (nb=1: 17 convs at input resolution + 3 after upsampling < 20 px):
    # identical up to float rounding
    tiled = upscale_image(net, x, tile=24, overlap=6, halo=20, precision="fp32")
    assert (tiled - whole).abs().max() < 1e-5
    # a halo shorter than the field: tiles differ near their borders, and the overlap cross-fade
    # spreads that out (stated tolerances, measured 2.4e-4 / 0.12 max on this image)
    diff = (upscale_image(net, x, tile=24, overlap=6, halo=4, precision="fp32") - whole).abs()
    assert diff.max() < 1e-3
    diff = (upscale_image(net, x, tile=24, overlap=6, halo=0, precision="fp32") - whole).abs()
    assert diff.mean() < 0.01 and diff.max() < 0.2
    with pytest.raises(GanforgeError, match="twice"):
        upscale_image(net, x, tile=10, overlap=6, precision="fp32")


def test_tiled_x2_odd_size_and_out_scale():
    from ganforge.nets.rrdb import RRDBNet
    from ganforge.restore.upscale import upscale_image

    net = RRDBNet(nf=NF, nb=NB, gc=GC, scale=2)
    net.load_state_dict(random_state(2, seed=12))
    x = torch.rand(1, 3, 37, 29, generator=torch.Generator().manual_seed(13))
    whole = upscale_image(net, x, precision="fp32")
    tiled = upscale_image(net, x, tile=16, overlap=4, halo=20, precision="fp32")
    assert whole.shape == tiled.shape == (1, 3, 74, 58)
    assert (tiled - whole).abs().max() < 1e-5
    assert upscale_image(net, x, precision="fp32", out_scale=3).shape == (1, 3, 111, 87)


def test_precision_goes_through_device_rules():
    from ganforge.nets.rrdb import RRDBNet
    from ganforge.restore.upscale import upscale_image

    net = RRDBNet(nf=NF, nb=NB, gc=GC, scale=4)
    net.load_state_dict(random_state(4, seed=14))
    x = torch.rand(3, 12, 10, generator=torch.Generator().manual_seed(15))
    fp32 = upscale_image(net, x, precision="fp32")
    bf16 = upscale_image(net, x, precision="bf16")
    assert bf16.dtype == torch.float32 and (bf16 - fp32).abs().mean() < 0.02
    assert upscale_image(net, x, precision="auto").shape == fp32.shape
    with pytest.raises(GanforgeError, match="fp16 needs a CUDA GPU"):
        upscale_image(net, x, precision="fp16", device="cpu")


# -- the command -------------------------------------------------------------------------------

def test_cli_upscale_file_and_folder(tmp_path, x4_file, capsys):
    img = _image(tmp_path / "in.png", 13, 9)
    out = tmp_path / "out.png"
    report = tmp_path / "r.json"
    rc = main(["upscale", str(img), "--model", str(x4_file), "--out", str(out), "--device", "cpu",
               "--precision", "fp32", "--quiet", "--json", str(report)])
    assert rc == 0
    assert Image.open(out).size == (52, 36) and Image.open(out).format == "PNG"
    from ganforge.provenance import file_sha256, read_provenance

    prov = read_provenance(out)
    assert prov["ai_generated"] and prov["method"] == "upscale" and prov["model_sha256"] == file_sha256(x4_file)
    data = json.loads(report.read_text())
    assert data["network_scale"] == 4 and data["images"][0]["output_size"] == [52, 36]
    # folder + file, tiled, with a non-native output scale
    folder = tmp_path / "imgs"
    folder.mkdir()
    _image(folder / "a.jpg", 10, 6, seed=1)
    _image(folder / "b.png", 7, 11, seed=2)
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    rc = main(["upscale", str(folder), str(img), "--model", str(x4_file), "--out", str(tmp_path / "many"),
               "--tile", "8", "--overlap", "2", "--scale", "2", "--device", "cpu", "--precision", "fp32", "--quiet"])
    assert rc == 0
    sizes = {p.name: Image.open(p).size for p in (tmp_path / "many").iterdir()}
    assert sizes == {"a.png": (20, 12), "b.png": (14, 22), "in.png": (26, 18)}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganforge: error:") and "\n" not in err, err
    return err


def test_cli_bad_inputs_are_one_line_errors(tmp_path, x4_file, capsys):
    img = _image(tmp_path / "in.png")
    base = ["--out", str(tmp_path / "o.png"), "--device", "cpu", "--precision", "fp32", "--quiet"]
    assert main(["upscale", str(tmp_path / "missing.png"), "--model", str(x4_file), *base]) == 2
    assert "input not found" in _one_line_error(capsys)
    (tmp_path / "fake.png").write_text("not really a png")
    assert main(["upscale", str(tmp_path / "fake.png"), "--model", str(x4_file), *base]) == 2
    assert "not a readable image" in _one_line_error(capsys)
    assert main(["upscale", str(img), "--model", "no-such-model", *base]) == 2
    assert "ganforge weights list" in _one_line_error(capsys)
    assert main(["upscale", str(img), "--model", str(x4_file), "--out", str(tmp_path / "o.jpg"), "--quiet"]) == 2
    assert "writes PNG" in _one_line_error(capsys)
    assert not (tmp_path / "o.png").exists()


def test_cli_missing_registered_weights_offline_names_the_fetch_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(tmp_path / "empty"))
    img = _image(tmp_path / "in.png")
    rc = main(["upscale", str(img), "--model", "realesrgan-x4plus", "--out", str(tmp_path / "o.png"), "--quiet",
               "--device", "cpu"])
    assert rc == 2
    err = _one_line_error(capsys)
    assert "ganforge weights fetch realesrgan-x4plus" in err and "RealESRGAN_x4plus.pth" in err


def test_upscale_convenience_pil_in_pil_out(tmp_path, x4_file):
    from ganforge.restore.upscale import upscale

    img = _image(tmp_path / "in.png", 5, 3)
    out = upscale(img, x4_file, precision="fp32", device="cpu")
    assert isinstance(out, Image.Image) and out.size == (20, 12) and out.mode == "RGB"
    assert upscale(Image.open(img).convert("L"), x4_file, precision="fp32").size == (20, 12)  # grey -> RGB
