"""Published networks through every command, by file and by registered name (issue 19, part 1):
``sample``, ``interpolate``, ``video``, ``export`` (safetensors and ONNX, reloaded and compared),
``serve`` and ``weights list``. The networks are tiny official-layout pickles and rosinality-layout
``.pt`` files written by the tests (tests/published_fixtures.py); nothing is downloaded."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from published_fixtures import COND, ROSI, UNCOND, official_modules, random_G, rosinality_state, write_pkl  # noqa: E402,F401


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_sample_interpolate_video_by_file(official_modules, tmp_path):
    write_pkl(tmp_path / "net.pkl", official_modules, UNCOND)
    gen = ganforge.load_generator(tmp_path / "net.pkl")
    assert main(["sample", str(tmp_path / "net.pkl"), "--n", "1", "--seed", "3", "--truncation", "0.7",
                 "--out", str(tmp_path / "one.png")]) == 0
    want = gen.sample(1, seed=3, truncation=0.7)[0].mul(255).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(_png(tmp_path / "one.png").astype(int) - want.astype(int)).max() <= 1
    assert main(["video", str(tmp_path / "net.pkl"), "--seconds", "0.5", "--fps", "8", "--key-seconds", "0.25",
                 "--out", str(tmp_path / "frames"), "--quiet"]) == 0
    frames = sorted((tmp_path / "frames").glob("*.png"))
    assert len(frames) >= 4 and len({_png(f).tobytes() for f in frames}) > 1  # the walk moves


def test_export_safetensors_and_onnx_reload_same_images(official_modules, tmp_path):
    write_pkl(tmp_path / "cond.pkl", official_modules, COND, seed=3)
    gen = ganforge.load_generator(tmp_path / "cond.pkl")
    z = torch.randn(4, gen.z_dim, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3])
    want = gen.generate(z, labels, truncation=0.6)
    assert main(["export", str(tmp_path / "cond.pkl"), "--out", str(tmp_path / "g.safetensors"), "--quiet"]) == 0
    back = ganforge.load_generator(tmp_path / "g.safetensors")
    assert back.arch == "stylegan2-official" and back.num_classes == 4
    assert torch.equal(back.generate(z, labels, truncation=0.6), want)
    # the any-family contract too (spec holds the official init kwargs)
    from ganforge.export import from_pretrained, save_pretrained

    save_pretrained(gen, tmp_path / "m.safetensors")
    assert torch.equal(from_pretrained(tmp_path / "m.safetensors").generate(z, labels, truncation=0.6), want)
    assert main(["export", str(tmp_path / "cond.pkl"), "--out", str(tmp_path / "g.onnx"), "--quiet"]) == 0
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(["image"], {"z": z.numpy(), "labels": labels.numpy(), "truncation_psi": np.array([0.6], np.float32)})[0]
    assert np.abs(got - want.numpy()).max() < 1e-4


def test_rosinality_pt_through_sample_and_export(tmp_path):
    G = random_G(ROSI, 21)
    torch.save({"g_ema": rosinality_state(G), "latent_avg": G.mapping.w_avg.clone()}, tmp_path / "r.pt")
    assert main(["sample", str(tmp_path / "r.pt"), "--n", "4", "--out", str(tmp_path / "r.png")]) == 0
    assert _png(tmp_path / "r.png").shape[0] > 32
    assert main(["export", str(tmp_path / "r.pt"), "--out", str(tmp_path / "r.safetensors"), "--quiet"]) == 0
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(4))
    a = ganforge.load_generator(tmp_path / "r.pt").generate(z, truncation=0.5)
    assert torch.equal(ganforge.load_generator(tmp_path / "r.safetensors").generate(z, truncation=0.5), a)


@pytest.fixture
def weights_dir(official_modules, tmp_path, monkeypatch):
    """stylegan2-ffhq's file name in GANFORGE_WEIGHTS_DIR, holding a tiny test-made pickle."""
    from ganforge.weights import WEIGHTS

    folder = tmp_path / "weights"
    folder.mkdir()
    write_pkl(folder / WEIGHTS.get("stylegan2-ffhq").filename, official_modules, UNCOND, seed=7)
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(folder))
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    return folder


def test_commands_by_registered_name(weights_dir, tmp_path, capsys):
    with pytest.warns(UserWarning, match="no published sha256"):
        gen = ganforge.load_generator("stylegan2-ffhq")
    with pytest.warns(UserWarning):
        assert main(["sample", "stylegan2-ffhq", "--n", "16", "--seed", "1", "--out", str(tmp_path / "f.png")]) == 0
        assert main(["interpolate", "stylegan2-ffhq", "--seeds", "1,2", "--frames", "3",
                     "--out", str(tmp_path / "w.gif")]) == 0
        assert main(["export", "stylegan2-ffhq", "--out", str(tmp_path / "f.safetensors"), "--quiet"]) == 0
    assert _png(tmp_path / "f.png").shape[:2] == (4 * 16 + 5 * 2, 4 * 16 + 5 * 2)  # a 4x4 grid of 16 px images
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(2))
    assert torch.equal(ganforge.load_generator(tmp_path / "f.safetensors").generate(z), gen.generate(z))
    capsys.readouterr()
    # pinned (as a first download does): the load says so, with the licence; a changed file is refused
    from ganforge.weights import WEIGHTS, pin_path
    from ganforge.download import sha256_file

    entry = WEIGHTS.get("stylegan2-ffhq")
    pin = pin_path(entry)
    pin.parent.mkdir(parents=True, exist_ok=True)
    pin.write_text(sha256_file(weights_dir / entry.filename) + "\n")
    with pytest.warns(UserWarning, match="matches the sha256 pinned.*non-commercial"):
        ganforge.load_generator("stylegan2-ffhq")
    pin.write_text("0" * 64 + "\n")
    with pytest.raises(ganforge.GanforgeError, match="pinned to"):
        ganforge.load_generator("stylegan2-ffhq")


def test_serve_by_file_and_name(weights_dir, official_modules, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from ganforge.server import ServerConfig, create_app

    write_pkl(tmp_path / "cond.pkl", official_modules, COND, seed=4)
    with pytest.warns(UserWarning):
        app = create_app(ServerConfig(runs=[tmp_path / "cond.pkl", Path("stylegan2-ffhq")], max_size=64))
    with TestClient(app) as client:
        names = {m["name"]: m for m in client.get("/v1/models").json()["runs"]}
        assert names["cond"]["num_classes"] == 4 and names["stylegan2-ffhq"]["resolution"] == 16
        resp = client.post("/v1/generate", json={"run": "cond", "n": 2, "seed": 5, "class": 2, "truncation": 0.5,
                                                 "format": "zip"})
        assert resp.status_code == 200, resp.text
        gen = ganforge.load_generator(tmp_path / "cond.pkl")
        want = gen.sample(2, labels=2, seed=5, truncation=0.5).mul(255).round()[:, 0].numpy()
        with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
            for i in range(2):  # the server's images are the loader's, pixel for pixel
                got = np.asarray(Image.open(io.BytesIO(zf.read(f"sample-{i:04d}.png"))))
                assert got.shape == (8, 8) and np.abs(got.astype(float) - want[i]).max() <= 1
        with pytest.warns(UserWarning):
            assert client.post("/v1/generate", json={"run": "stylegan2-ffhq", "n": 2}).status_code == 200
        assert client.post("/v1/generate", json={"run": "cond", "n": 1, "class": 9}).status_code == 422


def test_weights_list_says_non_commercial_and_size(capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    blocks = out.split("\nstylegan2-")[1:]
    assert len(blocks) == 8
    for block in blocks:
        head = block.split("\n")[0].split()[0]
        assert "non-commercial" in block.lower(), head
        assert "size unknown" in block or "364 MB" in block, head
    assert "(about 364 MB)" in out.split("\nstylegan2-ffhq ")[1].split("\nstylegan2-")[0]
