"""Editing with a W-space generator: projection recovers images the generator drew, SeFa directions
change the image more the further one goes, a class boundary moves a conditional model's class, bad
inputs are one line each, and the project / edit / directions commands work end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.editing import (Directions, EditError, boundary_from_classes, edit, load_latent, mix, project,
                              sefa)
from ganforge.editing.apply import apply_direction, render
from ganforge.editing.directions import affine_weights, sample_w
from ganforge.editing.loss import psnr
from ganforge.generator import Generator
from ganforge.nets import GanNetSpec, build_gan

pytestmark = pytest.mark.usefixtures("one_thread")


def random_gen(arch: str = "stylegan2", num_classes: int = 0, seed: int = 0) -> Generator:
    spec = GanNetSpec(resolution=16, channels=1, z_dim=16, width=8, num_classes=num_classes)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        G, _ = build_gan(arch, spec)
    G.eval().requires_grad_(False)
    return Generator(G, G, spec, [str(i) for i in range(num_classes)], 0, Path("random"), arch=arch)


@pytest.fixture(scope="module")
def gen() -> Generator:
    return random_gen()


def test_projection_in_w_plus_recovers_a_generated_image(gen, tmp_path):
    z = torch.randn(1, gen.z_dim, generator=torch.Generator().manual_seed(5))
    target = gen.generate(z)[0]
    start = render(gen, gen.mapping(z * 0, None))  # not the answer: a far-away image
    assert psnr(start, target[None]) < 20
    result = project(gen, target, steps=1000, space="w+", loss="pixel", frames=10)
    assert result.loss == "pixel MSE + (1 - SSIM)" and result.ws.shape == (1, gen.G_ema.num_ws, 64)
    assert result.psnr >= 30.0, result.summary()
    files = result.save(tmp_path / "proj")
    # the saved latent (with its noise maps) reproduces the reconstruction exactly, from both formats
    for key in ("latent", "latent_npz"):
        ws, noise = load_latent(files[key])
        assert torch.equal(render(gen, ws, noise), result.image.clamp(0, 1))
    assert Path(files["video"]).stat().st_size > 0 and Path(files["reconstruction"]).is_file()


def test_pivotal_tuning_improves_a_poor_w_projection(gen):
    z = torch.randn(1, gen.z_dim, generator=torch.Generator().manual_seed(9))
    target = gen.generate(z)[0]
    result = project(gen, target, steps=30, space="w", loss="pixel", pti_steps=60, frames=0)
    assert result.pti["psnr_db_after"] > result.pti["psnr_db_before"] + 3, result.pti
    assert result.tuned is not None and result.tuned.G_ema is not gen.G_ema
    # the caller's generator is untouched
    assert torch.equal(gen.generate(z), target[None])


def test_sefa_is_the_top_eigenvector_and_changes_the_image_monotonically(gen):
    dirs = sefa(gen, k=3)
    rows = torch.cat([w for _, w in affine_weights(gen)])
    # 16²: conv4 -> ws 0, rgb4 -> 1; at 8 and 16 conv0, conv1, rgb -> 2i - 1, 2i, 2i + 1
    assert sorted(k for k, _ in affine_weights(gen)) == [0, 1, 1, 2, 3, 3, 4, 5]
    A = rows / rows.norm(dim=1, keepdim=True)
    gain = (A @ dirs.vectors.t()).norm(dim=0)  # the first direction moves the styles the most
    rand = torch.nn.functional.normalize(torch.randn(64, A.shape[1], generator=torch.Generator().manual_seed(0)), dim=1)
    assert gain[0] >= gain[1] >= gain[2] and gain[0] > (A @ rand.t()).norm(dim=0).max()
    assert torch.allclose(dirs.vectors @ dirs.vectors.t(), torch.eye(3), atol=1e-5)
    base = gen.mapping(gen.latents(1, seed=2), None).cpu()
    img0 = render(gen, base)
    for sign in (1, -1):
        dist = [(render(gen, apply_direction(base, dirs.vectors[0], float(dirs.scales[0]), sign * s, (0, 6)))
                 - img0).square().mean().item() for s in (0.5, 1, 2, 3)]
        assert all(a < b for a, b in zip(dist, dist[1:])) and dist[0] > 0, dist


def test_class_boundary_moves_a_conditional_models_class():
    cgen = random_gen(num_classes=2, seed=1)
    # as in a trained conditional model, the class shows in the image: z's share of w made smaller
    cgen.G_ema.mapping.fc[0].weight[:, :cgen.z_dim] *= 0.3
    # a logistic-regression classifier of the generated images, fitted and checked on separate draws
    def draw(label: int, n: int, seed: int) -> torch.Tensor:
        return gen_images(cgen, sample_ws(cgen, n, seed, label)).flatten(1)

    x = torch.cat([draw(0, 400, 1), draw(1, 400, 2)])
    y = torch.cat([torch.zeros(400), torch.ones(400)])
    weight = torch.zeros(x.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ weight + bias, y) + 1e-3 * weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)

    def is_one(images: torch.Tensor) -> torch.Tensor:
        return (images.flatten(1) @ weight.detach() + bias.detach()) > 0

    held0, held1 = draw(0, 200, 3), draw(1, 200, 4)
    accuracy = (1 - is_one(held0).float().mean() + is_one(held1).float().mean()) / 2
    assert accuracy >= 0.8, accuracy
    toward_one = boundary_from_classes(cgen, target=1, source=0, n=500)
    vector, scale = toward_one.vectors[0], float(toward_one.scales[0])
    ws0 = sample_ws(cgen, 200, 5, 0)
    rates = [is_one(gen_images(cgen, apply_direction(ws0, vector, scale, s, (0, 6)))).float().mean().item()
             for s in (0, 1, 2, 3)]
    assert rates[0] <= 0.3 and rates[-1] >= 0.8 and rates == sorted(rates), rates
    other = torch.nn.functional.normalize(torch.randn(vector.shape, generator=torch.Generator().manual_seed(3)), dim=0)
    control = is_one(gen_images(cgen, apply_direction(ws0, other, scale, 3, (0, 6)))).float().mean().item()
    assert control <= 0.5, control  # a random direction of the same length does not do it


def sample_ws(g: Generator, n: int, seed: int, label: int) -> torch.Tensor:
    return sample_w(g, n, seed, label)[:, None].expand(-1, g.G_ema.num_ws, -1)


def gen_images(g: Generator, ws: torch.Tensor) -> torch.Tensor:
    return render(g, ws)


def test_bad_inputs_are_one_line_each(gen, tmp_path, capsys):
    dcgan = random_gen("dcgan")
    with pytest.raises(EditError, match="no W space.*stylegan2"):
        project(dcgan, torch.rand(1, 16, 16), steps=1)
    with pytest.raises(EditError, match=r"shape \(3, 7\); this model needs W \(64,\) or W\+ \(6, 64\)"):
        edit(gen, torch.zeros(3, 7), "sefa-0", 1.0)
    with pytest.raises(EditError, match="unknown direction 'smile'"):
        edit(gen, torch.zeros(64), "smile", 1.0)
    with pytest.raises(EditError, match="--noise-reg must be >= 0"):
        project(gen, torch.rand(1, 16, 16), steps=1, noise_weight=-1.0)
    with pytest.raises(EditError, match="unknown direction 'sefa-999': this model has 64 sefa directions"):
        edit(gen, torch.zeros(64), "sefa-999", 1.0)
    dirs = sefa(gen, k=2)
    dirs.save(tmp_path / "d.safetensors")
    with pytest.raises(EditError, match="unknown direction 'x'; this file has sefa-0, sefa-1"):
        edit(gen, torch.zeros(64), "x", 1.0, directions=tmp_path / "d.safetensors")
    # the same through the command line: status 2, one line on stderr
    from ganforge.export.generator_file import export_generator

    export_generator(dcgan, tmp_path / "dcgan.safetensors")
    export_generator(gen, tmp_path / "sg2.safetensors")
    torch.save({"x": 1}, tmp_path / "bad.pt")
    import numpy as np

    np.savez(tmp_path / "wrong.npz", ws=np.zeros((1, 5, 64), dtype=np.float32))
    np.savez(tmp_path / "good.npz", w=np.zeros((1, 64), dtype=np.float32))  # the official projector's key
    cases = [(["project", str(tmp_path / "x.png"), "--model", str(tmp_path / "dcgan.safetensors"), "--out",
               str(tmp_path / "o")], "stylegan2"),
             (["edit", str(tmp_path / "wrong.npz"), "--model", str(tmp_path / "sg2.safetensors"), "--direction",
               "sefa-0", "--out", str(tmp_path / "e.png")], "shape (1, 5, 64)"),
             (["edit", str(tmp_path / "good.npz"), "--model", str(tmp_path / "sg2.safetensors"), "--direction",
               "smile", "--directions", str(tmp_path / "d.safetensors"), "--out", str(tmp_path / "e.png")],
              "unknown direction 'smile'"),
             (["directions", str(tmp_path / "dcgan.safetensors"), "--out", str(tmp_path / "d2.safetensors")],
              "no W space")]
    for argv, needle in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "e.png").exists() and not (tmp_path / "d2.safetensors").exists()


def test_cli_end_to_end_on_a_trained_run(tmp_path, capsys):
    import json

    run = tmp_path / "run"
    ganforge.train_gan(ganforge.GanConfig(data="digits", max_images=64, resolution=16, width=8, z_dim=16,
                                          batch_size=16, steps=2, pl_weight=0.0, sample_every=0, progress=False,
                                          tensorboard=False, arch="stylegan2"), out=run)
    g = ganforge.load_generator(run)
    photo = tmp_path / "photo.png"
    from ganforge.imageio import save_image

    save_image(torch.nn.functional.interpolate(g.sample(1, seed=4), size=(40, 60)).clamp(0, 1)[0], photo)
    assert main(["project", str(photo), "--model", str(run), "--out", str(tmp_path / "p"), "--steps", "40",
                 "--loss", "pixel", "--pti-steps", "5", "--quiet", "--json", str(tmp_path / "p.json")]) == 0
    summary = json.loads((tmp_path / "p.json").read_text())
    assert summary["input"] == "60x40 resized to 24x16 (short side to 16) and centre-cropped to 16x16"
    assert summary["pti"]["steps"] == 5 and summary["psnr_db"] > 5
    for name in ("latent.npz", "latent.safetensors", "reconstruction.png", "progress.mp4", "pti_generator.safetensors"):
        assert (tmp_path / "p" / name).is_file(), name
    assert main(["directions", str(run), "--method", "sefa", "--k", "3", "--out", str(tmp_path / "d.safetensors"),
                 "--grid", str(tmp_path / "grid.png")]) == 0
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size == (5 * 18 + 2, 3 * 18 + 2)  # 3 rows, 5 strengths, 2 px gaps
    assert Directions.load(tmp_path / "d.safetensors").names == ["sefa-0", "sefa-1", "sefa-2"]
    latent = str(tmp_path / "p" / "latent.npz")
    assert main(["edit", latent, "--model", str(run), "--direction", "sefa-1", "--directions",
                 str(tmp_path / "d.safetensors"), "--strength", "0", "--out", str(tmp_path / "same.png")]) == 0
    assert main(["edit", latent, "--model", str(run), "--direction", "sefa-1", "--strength", "3",
                 "--out", str(tmp_path / "moved.png")]) == 0
    from ganforge.imageio import load_image

    recon = load_image(tmp_path / "p" / "reconstruction.png", "L")
    assert torch.equal(load_image(tmp_path / "same.png", "L"), recon)  # strength 0: the reconstruction
    assert (load_image(tmp_path / "moved.png", "L") - recon).abs().mean() > 0.01
    # provenance: the generated images and video say so (the photo's crop, target.png, does not)
    from ganforge.provenance import read_provenance

    for name, method in ((tmp_path / "p" / "reconstruction.png", "project"), (tmp_path / "grid.png", "directions"),
                         (tmp_path / "moved.png", "edit")):
        meta = read_provenance(name)
        assert meta["ai_generated"] and meta["method"] == method and meta["model"] == "run", name
    assert not read_provenance(tmp_path / "p" / "target.png")["ai_generated"]
    capsys.readouterr()
    assert main(["provenance", str(tmp_path / "p" / "progress.mp4")]) == 0
    assert "progress.mp4: AI-generated (project, model run" in capsys.readouterr().out
    # style mixing: all layers from the second latent gives the second image
    ws, noise = load_latent(latent)
    image, mixed = mix(g, torch.zeros_like(ws), ws, "0-5")
    assert torch.equal(mixed, ws)


def test_published_official_network_projects_and_edits(tmp_path):
    """An official-format StyleGAN2-ADA pickle (written as tests/test_published.py does) works too:
    SeFa finds a style affine for every ws, projection gets close, strength 0 is the reconstruction."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import test_published as tp
    finally:
        sys.path.pop(0)
    mp = pytest.MonkeyPatch()
    try:
        mods = tp.official_modules.__wrapped__(mp)
        tp.write_pkl(tmp_path / "net.pkl", mods, tp.UNCOND)
    finally:
        mp.undo()
    g = ganforge.load_generator(tmp_path / "net.pkl")
    n_ws = g.G_ema.num_ws
    assert sorted({k for k, _ in affine_weights(g)}) == list(range(n_ws))
    z = torch.randn(1, g.z_dim, generator=torch.Generator().manual_seed(1))
    target = g.generate(z)[0]
    result = project(g, target, steps=150, space="w+", loss="pixel", frames=0)
    start = render(g, g.mapping(torch.zeros(1, g.z_dim), None))
    assert result.psnr > psnr(start, target[None]) + 5, result.summary()
    same = edit(g, result.ws, "sefa-0", 0.0)
    assert torch.equal(same.image, render(g, result.ws))
