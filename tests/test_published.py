"""Published StyleGAN2-ADA networks (issue 19, part 1): official ``.pkl`` files read as data, never
run, on ganforge's official-architecture generator. The pickles here are written by the test
itself in the official layout (``torch_utils.persistence._reconstruct_persistent_obj`` records with
``module_src``, ``class_name`` and the module ``state``); the official code is not needed (parity
with it: benchmarks/check_official_stylegan2.py, docs/benchmarks.md)."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.errors import GanforgeError, WeightsError
from ganforge.published import load_official_pickle, read_official_pickle
from ganforge.published.load import build_official

sys.path.insert(0, str(Path(__file__).parent))
from published_fixtures import (COND, ROSI, UNCOND, official_modules, random_G, record, rosinality_state,  # noqa: E402,F401
                                write_pkl)

def test_strict_load_equals_module_forward(official_modules, tmp_path):
    G, G_ema = write_pkl(tmp_path / "net.pkl", official_modules, UNCOND)
    gen = ganforge.load_generator(tmp_path / "net.pkl")
    assert gen.w_space and gen.resolution == 16 and gen.channels == 3 and gen.num_classes == 0
    for ours, theirs in ((gen.G_ema, G_ema), (gen.G, G)):  # every parameter and buffer, G and G_ema
        a, b = ours.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "synthesis.b8.conv0.noise_const" in a and "mapping.w_avg" in a and "synthesis.b4.const" in a
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for psi in (1.0, 0.6):
            want = (G_ema(z, None, truncation_psi=psi) * 0.5 + 0.5).clamp(0, 1)
            assert torch.allclose(gen.generate(z, truncation=psi), want, atol=1e-6, rtol=0)
        want_G = (G(z, None) * 0.5 + 0.5).clamp(0, 1)
        assert torch.allclose(gen.generate(z, ema=False), want_G, atol=1e-6, rtol=0)
        # truncation: w = w_avg + psi (w - w_avg); psi = 0 draws the w_avg image for every z
        ws = gen.mapping(z, truncation=0.5)
        w1 = gen.mapping(z)
        assert torch.allclose(ws, G_ema.mapping.w_avg.lerp(w1, 0.5), atol=1e-6)
        avg = gen.generate(z, truncation=0.0)
        assert torch.allclose(avg, avg[:1].expand_as(avg), atol=1e-6)
        assert torch.allclose(gen.synthesize(ws), gen.generate(z, truncation=0.5), atol=1e-5)
    assert gen.sample(3, seed=2).shape == (3, 3, 16, 16)


def test_conditional_labels_are_one_hot(official_modules, tmp_path):
    _, G_ema = write_pkl(tmp_path / "cond.pkl", official_modules, COND, seed=5)
    gen = load_official_pickle(tmp_path / "cond.pkl")
    assert gen.num_classes == 4 and gen.channels == 1
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 1, 2, 3])
    c = torch.nn.functional.one_hot(labels, 4).float()
    with torch.no_grad():
        want = (G_ema(z, c, truncation_psi=0.7) * 0.5 + 0.5).clamp(0, 1)
    got = gen.generate(z, labels, truncation=0.7)
    assert torch.allclose(got, want, atol=1e-6, rtol=0)
    other = gen.generate(z, torch.tensor([1, 2, 3, 0]), truncation=0.7)
    assert (other - got).abs().max() > 1e-3  # the class changes the image
    with pytest.raises(GanforgeError):
        gen.labels(2, 4)


def test_embedded_source_is_never_run(official_modules, tmp_path):
    marker = tmp_path / "pwned.txt"
    src = f"open({str(marker)!r}, 'w').write('ran')\nimport os\nos.system('touch {marker}')\n"
    write_pkl(tmp_path / "src.pkl", official_modules, UNCOND, src=src)
    data = read_official_pickle(tmp_path / "src.pkl")
    gen = ganforge.load_generator(tmp_path / "src.pkl")
    gen.sample(1)
    assert not marker.exists()
    assert len(data["G_ema"].source_sha256) == 64  # known, hashed, never compiled


class _Payload:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return os.system, (self.cmd,)


@pytest.mark.parametrize("where", ["top", "inside_state"])
def test_reduce_payload_is_refused_in_one_line(official_modules, tmp_path, where):
    marker = tmp_path / "payload-ran"
    payload = _Payload(f"touch {marker}")
    path = tmp_path / "evil.pkl"
    if where == "top":
        write_pkl(path, official_modules, UNCOND, extra={"augment_pipe": payload})
    else:
        G = random_G(UNCOND, 0)
        rec = record(G, official_modules, "")
        rec.meta["state"]["_init_kwargs"] = {"z_dim": payload}
        path.write_bytes(pickle.dumps({"G_ema": rec}, protocol=4))
    with pytest.raises(WeightsError) as info:
        ganforge.load_generator(path)
    msg = str(info.value)
    assert "\n" not in msg and "refused" in msg and "system" in msg
    assert not marker.exists()


def test_unknown_global_truncated_and_foreign_files(official_modules, tmp_path):
    (tmp_path / "linear.pkl").write_bytes(pickle.dumps({"G_ema": torch.nn.Linear(2, 2)}))
    with pytest.raises(WeightsError, match="refused.*torch.nn"):
        ganforge.load_generator(tmp_path / "linear.pkl")
    write_pkl(tmp_path / "net.pkl", official_modules, UNCOND)
    data = (tmp_path / "net.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[:len(data) // 2])
    with pytest.raises(WeightsError) as info:
        ganforge.load_generator(tmp_path / "cut.pkl")
    assert "\n" not in str(info.value) and "truncated" in str(info.value)
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": [1, 2]}))
    with pytest.raises(WeightsError, match="not a StyleGAN network pickle"):
        ganforge.load_generator(tmp_path / "plain.pkl")
    with pytest.raises(WeightsError, match="no such file"):
        ganforge.load_generator(tmp_path / "absent.pkl")


def test_shape_mismatch_and_unsupported_options(official_modules, tmp_path):
    write_pkl(tmp_path / "net.pkl", official_modules, UNCOND)
    data = read_official_pickle(tmp_path / "net.pkl")
    obj = data["G_ema"]
    obj.init_kwargs["w_dim"] = 8
    with pytest.raises(WeightsError, match="shape|fit"):
        build_official(obj, "x")
    obj.init_kwargs["w_dim"] = 16
    obj.init_kwargs["synthesis_kwargs"] = dict(obj.init_kwargs["synthesis_kwargs"], architecture="resnet")
    with pytest.raises(WeightsError, match="resnet"):
        build_official(obj, "x")


def test_cli_sample_pkl_and_registered_name_offline(official_modules, tmp_path, capsys, monkeypatch):
    write_pkl(tmp_path / "net.pkl", official_modules, UNCOND)
    assert main(["sample", str(tmp_path / "net.pkl"), "--n", "4", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").is_file()
    assert main(["interpolate", str(tmp_path / "net.pkl"), "--seeds", "1,2", "--frames", "3",
                 "--out", str(tmp_path / "w.gif")]) == 0
    capsys.readouterr()
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    rc = main(["sample", "stylegan2-ffhq", "--n", "16", "--out", str(tmp_path / "f.png")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and "stylegan2-ffhq" in err and "not found" in err
    from ganforge.weights import WEIGHTS

    entry = WEIGHTS.get("stylegan2-ffhq")
    assert entry.url == "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl"
    assert "non-commercial" in entry.licence
    assert WEIGHTS.get("stylegan2-ffhq256").url.endswith("ffhq-res256-mirror-paper256-noaug.pkl")


# --- rosinality stylegan2-pytorch .pt checkpoints ------------------------------------------------

def test_rosinality_checkpoint_loads_exactly(tmp_path):
    G = random_G(ROSI, 11)
    state = rosinality_state(G)
    assert "convs.0.conv.blur.kernel" in state and "noises.noise_4" in state and state["conv1.conv.weight"].ndim == 5
    # a training checkpoint as rosinality's train.py writes it: g, d, g_ema, optimisers, argparse args
    torch.save({"g": state, "d": {}, "g_ema": state, "g_optim": {}, "args": __import__("argparse").Namespace(size=16),
                "ada_aug_p": 0.1, "latent_avg": G.mapping.w_avg.clone()}, tmp_path / "ckpt.pt")
    gen = ganforge.load_generator(tmp_path / "ckpt.pt")
    assert gen.resolution == 16 and gen.z_dim == 16 and gen.w_space and gen.arch == "stylegan2-official"
    ours = gen.G_ema.state_dict()
    for key, value in G.state_dict().items():
        assert torch.allclose(ours[key], value, rtol=1e-6, atol=1e-7), key
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for psi in (1.0, 0.5):
            want = (G(z, None, truncation_psi=psi) * 0.5 + 0.5).clamp(0, 1)
            assert torch.allclose(gen.generate(z, truncation=psi), want, atol=1e-5, rtol=0)


def test_rosinality_without_latent_avg_and_bare_state_dict(tmp_path):
    G = random_G(ROSI, 12)
    torch.save(rosinality_state(G), tmp_path / "bare.pth")  # the g_ema state dict alone
    gen = ganforge.load_generator(tmp_path / "bare.pth")
    # w_avg: the mean w of many latents, the same on every load
    z = torch.randn(4000, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        mean_w = G.mapping(z, update_w_avg=False)[:, 0].mean(0)
    w_avg = gen.G_ema.mapping.w_avg
    assert (w_avg - mean_w).abs().max() < 0.1 * mean_w.abs().max()
    assert torch.equal(w_avg, ganforge.load_generator(tmp_path / "bare.pth").G_ema.mapping.w_avg)
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = (G(z, None) * 0.5 + 0.5).clamp(0, 1)
    assert torch.allclose(gen.generate(z), want, atol=1e-5, rtol=0)


def test_rosinality_refusals_are_one_line(tmp_path):
    G = random_G(ROSI, 13)
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    torch.save({"g_ema": rosinality_state(G), "x": Evil()}, tmp_path / "evil.pt")
    state = rosinality_state(G)
    state["extra.weight"] = torch.zeros(3)
    torch.save({"g_ema": state}, tmp_path / "extra.pt")
    state = rosinality_state(G)
    state["convs.0.conv.weight"] = state["convs.0.conv.weight"][:, :5]  # 5 channels: not min(base / r, max)
    torch.save({"g_ema": state}, tmp_path / "chan.pt")
    torch.save({"d": {"convs.0.0.weight": torch.zeros(1)}}, tmp_path / "d_only.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    cases = {"evil.pt": "refused", "extra.pt": "extra.weight", "chan.pt": "channel counts", "d_only.pt": "g_ema",
             "junk.pt": "cannot read"}
    for name, words in cases.items():
        with pytest.raises(WeightsError) as info:
            ganforge.load_generator(tmp_path / name)
        assert "\n" not in str(info.value) and words in str(info.value), str(info.value)
    assert not marker.exists()


def test_discriminator_loads_strictly_and_scores(official_modules, tmp_path):
    from ganforge.published.load import read_discriminator
    from published_fixtures import random_D

    for kwargs, name in ((UNCOND, "u.pkl"), (COND, "c.pkl")):
        write_pkl(tmp_path / name, official_modules, kwargs, seed=4)
        D, want = read_discriminator(tmp_path / name), random_D(kwargs, 4 + 2)
        a, b = D.state_dict(), want.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert "b4.out.weight" in a and ("mapping.fc0.weight" in a) == bool(kwargs["c_dim"])
        img = torch.randn(8, kwargs["img_channels"], kwargs["img_resolution"], kwargs["img_resolution"])
        labels = torch.arange(8) % 4 if kwargs["c_dim"] else None
        with torch.no_grad():
            scores = D(img, labels)
            assert scores.shape == (8,) and torch.isfinite(scores).all() and scores.std() > 0
            if labels is not None:  # the class changes the score (projection onto cmap)
                assert (D(img, (labels + 1) % 4) - scores).abs().max() > 1e-4
                onehot = torch.nn.functional.one_hot(labels, 4).float()
                assert torch.equal(D(img, onehot), scores)


def test_published_networks_run_in_fp32_unless_asked(official_modules, tmp_path, monkeypatch):
    """'auto' is fp32 for a published network even on a CPU whose 'auto' is bf16 (its images must
    match the official code's); an explicit precision is kept, and ganforge's own runs keep 'auto'."""
    import ganforge.device as device

    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)  # as on an AVX512-BF16 CPU
    write_pkl(tmp_path / "net.pkl", official_modules, UNCOND)
    gen = ganforge.load_generator(tmp_path / "net.pkl").to("cpu", "auto")
    assert gen.precision == "fp32"
    assert gen.precision_for("bf16", torch.device("cpu")) == "bf16"
    assert device.resolve_precision("auto", torch.device("cpu")) == "bf16"


def test_fir_filter_is_depthwise_and_equals_the_per_channel_form():
    import torch.nn.functional as F

    from ganforge.published.network import _depthwise, fir_filter

    x = torch.randn(2, 5, 11, 11, generator=torch.Generator().manual_seed(0))
    f = fir_filter()
    want = F.conv2d(x.reshape(-1, 1, 11, 11), (f * 4).flip([0, 1])[None, None]).reshape(2, 5, 8, 8)
    assert torch.allclose(_depthwise(x, f, 4.0), want, atol=1e-6)
