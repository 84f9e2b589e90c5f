"""Latent walks of style-based generators in W: keyframe z's mapped once (with their class and the
truncation toward w_avg), w interpolated linearly between keyframes, frames from the synthesis
network; the ``video`` and ``interpolate`` commands on a stylegan2 run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.sample import interpolation_frames, slerp
from ganforge.video.walk import walk_frames, walk_plan

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(data="digits", max_images=64, resolution=16, width=8, z_dim=16, batch_size=16, steps=2, pl_weight=0.0,
            sample_every=0, progress=False, tensorboard=False, arch="stylegan2")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread_module) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("w-walk")
    for name, cond in (("cond", True), ("uncond", False)):
        ganforge.train_gan(ganforge.GanConfig(**TINY, conditional=cond), out=root / name)
    return {"cond": root / "cond", "uncond": root / "uncond"}


def _images(x: torch.Tensor) -> torch.Tensor:
    return x.float().add(1).div(2).clamp(0, 1)


@pytest.mark.parametrize("kind", ["cond", "uncond"])
def test_walk_keyframes_are_the_generator_and_frames_between_lerp_w(runs, kind):
    gen = ganforge.load_generator(runs[kind])
    assert gen.w_space
    n_keys = 4
    keys = gen.latents(n_keys, seed=3)
    classes = [1, 7, 2, 5] if kind == "cond" else None
    y = torch.tensor(classes) if classes else None
    plan = walk_plan(12, n_keys)  # 4 frames per keyframe: keys 0, 1, 2 at frames 0, 4, 8
    # batches of n_keys frames: the same matmul shapes as the reference below, so equality is exact
    frames = torch.cat(list(walk_frames(gen, keys, plan, classes, batch_size=n_keys)))
    assert frames.shape == (12, 1, 16, 16)
    G = gen.G_ema
    with torch.no_grad():
        at_keys = _images(G(keys, y))
        w = G.mapping(keys, y)
    hit = [(i, k) for i, (k, t) in enumerate(plan) if t == 0]
    assert hit == [(0, 0), (4, 1), (8, 2)]
    for i, k in hit:
        assert torch.equal(frames[i], at_keys[k]), (i, k)
    # between keyframes: the synthesis of the (eased) straight line between the keyframes' w
    between = [(i, k, t) for i, (k, t) in enumerate(plan) if t > 0]
    with torch.no_grad():
        ws = torch.stack([torch.lerp(w[k], w[k + 1], t) for _, k, t in between])
        expected = _images(G.synthesis(ws))
        zs = torch.stack([slerp(keys[k], keys[k + 1], t) for _, k, t in between])  # what a z walk would give
        via_z = _images(G(zs, torch.tensor([classes[k] for _, k, _ in between]) if classes else None))
    got = frames[[i for i, _, _ in between]]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert (got - via_z).abs().max() > 100 * 1e-5  # not the z path's frames
    assert plan[1][1] == pytest.approx(0.25 ** 2 * (3 - 2 * 0.25))  # smoothstep easing kept


@pytest.mark.parametrize("kind", ["cond", "uncond"])
def test_truncation_pulls_walk_frames_toward_the_w_avg_image(runs, kind):
    gen = ganforge.load_generator(runs[kind])
    keys = gen.latents(3, seed=5)
    classes = [4, 4, 4] if kind == "cond" else None
    y = torch.tensor(classes) if classes else None
    plan = walk_plan(8, 3)
    G = gen.G_ema
    with torch.no_grad():
        w_avg = G.mapping.w_avg[4 if classes else 0]
        avg_image = _images(G.synthesis(w_avg.expand(1, G.num_ws, -1)))[0]

    def walk(psi: float) -> torch.Tensor:
        return torch.cat(list(walk_frames(gen, keys, plan, classes, truncation=psi, batch_size=3)))

    frames = {psi: walk(psi) for psi in (0.0, 0.5, 1.0)}
    # psi = 0: every frame is the (class's) w_avg image
    torch.testing.assert_close(frames[0.0], avg_image.expand_as(frames[0.0]), rtol=0, atol=1e-5)
    dist = {psi: (f - avg_image).abs().mean().item() for psi, f in frames.items()}
    assert dist[0.0] < 1e-6 < dist[0.5] < dist[1.0]
    # at the keyframes psi is exactly the generator's own truncation (w_avg + psi (w - w_avg))
    with torch.no_grad():
        truncated = _images(G(keys, y, truncation_psi=0.5))
    assert torch.equal(frames[0.5][0], truncated[0])


@pytest.mark.parametrize("kind", ["cond", "uncond"])
def test_interpolate_lerps_w_between_the_seeds_samples(runs, kind):
    gen = ganforge.load_generator(runs[kind])
    seeds, per = [0, 4, 8], 4
    frames = interpolation_frames(gen, seeds, per)
    assert frames.shape == (len(seeds) * per, 1, 16, 16)
    # keyframe i: the image `sample --n 1 --seed s_i` gives, class included (to batched-matmul rounding)
    for i, s in enumerate(seeds):
        torch.testing.assert_close(frames[i * per], gen.sample(1, seed=s)[0], rtol=0, atol=1e-5)
    z = torch.cat([gen.latents(1, seed=s) for s in seeds])
    y = torch.cat([gen.labels(1, None, s) for s in seeds]) if kind == "cond" else None
    if kind == "cond":
        assert len(set(y.tolist())) > 1  # the walk morphs between classes
    w = gen.mapping(z, y)
    mid = gen.synthesize(torch.lerp(w[2], w[0], 0.5)[None])[0]  # half way from the last seed back to the first
    torch.testing.assert_close(frames[2 * per + 2], mid, rtol=0, atol=1e-5)
    if kind == "cond":  # --class fixes every keyframe's class
        fixed = interpolation_frames(gen, seeds, 2, label=3, truncation=0.5)
        for i, s in enumerate(seeds):
            torch.testing.assert_close(fixed[2 * i], gen.sample(1, labels=3, seed=s, truncation=0.5)[0],
                                       rtol=0, atol=1e-5)


def _decoded_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as video:
        return sum(1 for _ in video.decode(video=0))


def test_video_and_interpolate_commands_on_a_stylegan2_run(runs, tmp_path, capsys):
    import json

    out = tmp_path / "walk.mp4"
    assert main(["video", str(runs["cond"]), "--seconds", "1.5", "--fps", "8", "--key-seconds", "0.5",
                 "--classes", "1,7", "--truncation", "0.7", "--out", str(out), "--quiet", "--device", "cpu",
                 "--json", str(tmp_path / "w.json")]) == 0
    assert _decoded_frames(out) == 12
    summary = json.loads((tmp_path / "w.json").read_text())
    assert (summary["space"], summary["classes"], summary["truncation"]) == ("w", [1, 7, 1, 7], 0.7)
    assert main(["interpolate", str(runs["uncond"]), "--seeds", "1,2,3", "--frames", "3", "--truncation", "0.5",
                 "--out", str(tmp_path / "i.mp4"), "--device", "cpu"]) == 0
    assert _decoded_frames(tmp_path / "i.mp4") == 9
    assert main(["interpolate", str(runs["uncond"]), "--seeds", "1,2", "--class", "3",
                 "--out", str(tmp_path / "x.gif"), "--device", "cpu"]) == 2
    assert "unconditional" in capsys.readouterr().err
