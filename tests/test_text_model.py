"""Text-to-image (issue 20), the model half: training from a captioned folder through the CLI,
sampling and walking from prompts, the one-line errors, mismatched captions really mismatched,
bit-exact resume, stylegan2 text conditioning and the server's prompt. Tiny networks, few steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import ganforge
from ganforge.cli import main
from ganforge.train import checkpoint

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
SHAPES = ("square", "bar")
TINY = ["--resolution", "16", "--width", "8", "--batch-size", "8", "--text-encoder-steps", "3", "--log-every", "1",
        "--sample-every", "2", "--no-tensorboard", "--quiet"]


def make_captioned(folder: Path, n: int = 36) -> Path:
    """Coloured squares and bars on black, each with two phrasings in x.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        colour, shape = list(COLOURS)[i % 3], SHAPES[(i // 3) % 2]
        a = np.zeros((16, 16, 3), np.uint8)
        o = int(rng.integers(0, 4))
        if shape == "square":
            a[4 + o:10 + o, 4 + o:10 + o] = COLOURS[colour]
        else:
            a[2:14, 6 + o:9 + o] = COLOURS[colour]
        Image.fromarray(a).save(folder / f"img{i:03d}.png")
        (folder / f"img{i:03d}.txt").write_text(f"a {colour} {shape}\n{shape} in {colour}\n")
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    data = make_captioned(root / "shapes")
    assert main(["train", "--data", str(data), "--text", "--steps", "4", "--out", str(root / "runs" / "text"),
                 *TINY]) == 0
    ganforge.train_gan(ganforge.GanConfig(data="digits", max_images=64, resolution=8, width=4, batch_size=8, steps=1,
                                          sample_every=0, progress=False, tensorboard=False),
                       out=root / "runs" / "plain")
    return root


def test_text_run_trains_and_samples_from_prompts(runs, capsys):
    run = runs / "runs" / "text"
    meta = json.loads((run / "run.json").read_text())
    assert meta["arch"] == "dcgan" and meta["spec"]["text_dim"] > 0 and meta["text"]["encoder"] == "builtin"
    config = json.loads((run / "config.json").read_text())["options"]
    assert config["text"] and config["loss"] == "non-saturating"
    assert meta["spec"]["resize_conv"] == 1  # --g-upsample auto: resize-conv G for text runs
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) == 4 and all(np.isfinite(r["D_mismatch"]) for r in log)
    assert not any("gradient_penalty" in r for r in log)  # dcgan's BatchNorm D: no MA-GP by default
    page = (run / "samples" / "index.html").read_text()
    assert all(p in page for p in meta["text"]["snapshot_prompts"])  # the samples page names its rows' captions

    grid = runs / "grid.png"
    assert main(["sample", str(run), "--prompt", "a red square", "--prompt", "bar in blue", "--n", "3",
                 "--out", str(grid), "--quiet"]) == 0
    img = Image.open(grid)
    assert img.size == (2 + 3 * 18, 2 + 2 * 18)  # one row per prompt
    from ganforge.provenance import read_provenance

    assert read_provenance(grid)  # generated images keep the provenance packet
    prompts_file = runs / "prompts.txt"
    prompts_file.write_text("a green bar\n\nsquare in red\n")
    out_dir = runs / "singles"
    assert main(["sample", str(run), "--prompts", str(prompts_file), "--n", "2", "--out-dir", str(out_dir),
                 "--quiet"]) == 0
    assert sorted(p.name for p in out_dir.glob("*.png")) == [f"prompt{p:03d}-seed0-{i:05d}.png"
                                                             for p in range(2) for i in range(2)]
    assert "square in red" in (out_dir / "prompts.txt").read_text()

    gen = ganforge.load_generator(run)
    a = gen.sample(2, prompts=["a red square", "bar in blue"], seed=5)
    b = gen.sample(2, prompts=["a red square", "bar in blue"], seed=5)
    assert a.shape == (4, 3, 16, 16) and torch.equal(a, b)
    assert not torch.equal(a[:2], a[2:])  # the same latents, another prompt: other images

    walk = runs / "walk.gif"
    assert main(["interpolate", str(run), "--prompt", "a red square", "--prompt", "a blue bar", "--frames", "3",
                 "--scale", "1", "--out", str(walk), "--quiet"]) == 0
    assert Image.open(walk).n_frames == 6


def test_prompt_errors_are_one_line(runs, capsys):
    text, plain = runs / "runs" / "text", runs / "runs" / "plain"
    cases = [(["sample", str(text), "--n", "2", "--out", str(runs / "x.png")], "give --prompt"),
             (["sample", str(plain), "--prompt", "a red square", "--out", str(runs / "x.png")], "not trained on text"),
             (["interpolate", str(text), "--out", str(runs / "w.gif")], "give --prompt"),
             (["train", "--data", "digits", "--arch", "dfgan", "--steps", "1", "--out", str(runs / "bad")], "add --text")]
    for argv, words in cases:
        capsys.readouterr()
        assert main(argv) != 0
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
    with pytest.raises(ganforge.GanforgeError, match="prompts"):
        ganforge.load_generator(text).sample(2)


def test_mismatched_captions_are_really_mismatched():
    from ganforge.train.textgan import CaptionTable

    # many images share a caption text; image 5 holds every text but one
    captions = [["a red seven", "7 in red"] if i % 3 == 0 else ["a blue one"] if i % 3 == 1 else ["a red seven"]
                for i in range(30)]
    captions[5] = ["a red seven", "7 in red", "a blue one", "  ", "a green two"]
    captions.append(["a yellow four"])
    table = CaptionTable(captions)
    assert table.texts == sorted({"a red seven", "7 in red", "a blue one", "a green two", "a yellow four"})
    g = torch.Generator().manual_seed(0)
    index = torch.arange(len(captions)).repeat(20)
    match, mis = table.matching(index, g), table.mismatched(index, g)
    for i, m, x in zip(index.tolist(), match.tolist(), mis.tolist()):
        own = {c.strip() for c in captions[i] if c.strip()}
        assert table.texts[m] in own and table.texts[x] not in own
    assert set(mis[index == 5].tolist()) == {table.texts.index("a yellow four")}
    assert len(set(mis.tolist())) == len(table.texts)  # every text serves as a negative somewhere
    with pytest.raises(ganforge.GanforgeError, match="no caption"):
        CaptionTable([["a cat"], [" "]])
    with pytest.raises(ganforge.GanforgeError, match="two different"):
        CaptionTable([["a cat"], ["a cat"]])


def test_text_resume_is_bit_exact(runs):
    data = runs / "shapes"
    split = runs / "runs" / "split"
    assert main(["train", "--data", str(data), "--text", "--steps", "2", "--out", str(split), *TINY]) == 0
    assert main(["train", "--data", str(data), "--text", "--steps", "4", "--out", str(split), *TINY,
                 "--json", str(runs / "resumed.json")]) == 0
    assert json.loads((runs / "resumed.json").read_text())["resumed_from"] == 2

    def last(run: Path) -> dict:
        return load_file(str(checkpoint.list_checkpoints(run / "checkpoints")[-1] / "weights.safetensors"))

    a, b = last(runs / "runs" / "text"), last(split)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    enc_a = load_file(str(runs / "runs" / "text" / "text_encoder.safetensors"))
    enc_b = load_file(str(split / "text_encoder.safetensors"))
    assert all(torch.equal(enc_a[k], enc_b[k]) for k in enc_a)
    strip = lambda p: [{k: v for k, v in json.loads(x).items() if k != "img_per_s"}  # noqa: E731
                       for x in (p / "log.jsonl").read_text().splitlines()]
    assert strip(runs / "runs" / "text") == strip(split)


def test_text_run_made_at_an_older_default_width_resumes_at_it(runs, monkeypatch):
    """The text dcgan's default width changed (32 -> 48): a run made at the old default resumes at
    its own width without being told; a new run takes today's."""
    import ganforge.config as config

    i = TINY.index("--width")
    tiny = TINY[:i] + TINY[i + 2:]
    old = runs / "runs" / "old-width"
    monkeypatch.setattr(config, "TEXT_DCGAN_WIDTH", 6)  # the default when the run was made
    assert main(["train", "--data", str(runs / "shapes"), "--text", "--steps", "1", "--out", str(old), *tiny]) == 0
    monkeypatch.undo()
    assert main(["train", "--data", str(runs / "shapes"), "--text", "--steps", "2", "--out", str(old), *tiny,
                 "--json", str(runs / "old-width.json")]) == 0
    assert json.loads((runs / "old-width.json").read_text())["resumed_from"] == 1
    assert json.loads((old / "config.json").read_text())["options"]["width"] == 6
    fresh = ganforge.GanConfig(text=True).with_text_defaults()
    assert fresh.width == config.TEXT_DCGAN_WIDTH == 48


def test_dfgan_text_run(runs):
    run = runs / "runs" / "df"
    assert main(["train", "--data", str(runs / "shapes"), "--text", "--arch", "dfgan", "--steps", "4",
                 "--out", str(run), *TINY]) == 0
    config = json.loads((run / "config.json").read_text())["options"]
    assert config["arch"] == "dfgan" and config["loss"] == "hinge"  # DF-GAN's loss where none was asked
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert sum("gradient_penalty" in r for r in log) == 1  # lazy MA-GP: every 4 steps
    x = ganforge.load_generator(run).sample(2, prompts=["a red square", "bar in blue"], seed=1)
    assert x.shape == (4, 3, 16, 16) and torch.isfinite(x).all()


def test_text_dcgan_takes_the_sentence_everywhere():
    from ganforge.nets import GanNetSpec, build_gan

    G, D = build_gan("dcgan", GanNetSpec(resolution=16, channels=3, z_dim=8, width=8, text_dim=12))
    z, s, other = torch.randn(4, 8), torch.randn(4, 12), torch.randn(4, 12)
    with torch.no_grad():
        for m in G.modules():  # conditional BatchNorm starts as plain BN: give its projections weight
            if m.__class__.__name__ == "ConditionalBatchNorm2d":
                torch.nn.init.normal_(m.gain.weight, 0, 0.1)
    x = G(z, s)
    assert x.shape == (4, 3, 16, 16) and not torch.equal(x, G(z, other))
    assert D(x, s).shape == (4,) and not torch.equal(D(x, s), D(x, other))  # the projection head reads the text
    with pytest.raises(ValueError):
        G(z)


def test_resize_conv_generator_draws_flat_colour_flat(tmp_path):
    """--g-upsample nearest (the text default): nearest-neighbour resizing + a 3x3 conv gives a
    constant feature map a constant interior; the paper's stride-2 transposed conv gives it the
    2-periodic pattern that showed as colour speckle on generated backgrounds."""
    from ganforge.config import GanConfig
    from ganforge.errors import GanforgeError
    from ganforge.nets import GanNetSpec, build_gan
    from ganforge.nets.dcgan import _upsample

    torch.manual_seed(0)
    flat = torch.ones(1, 4, 6, 6)
    with torch.no_grad():
        resized = _upsample(4, 3, True)(flat)[..., 1:-1, 1:-1]
        transposed = _upsample(4, 3, False)(flat)[..., 1:-1, 1:-1]
    assert resized.shape == transposed.shape == (1, 3, 10, 10)
    assert float((resized - resized[..., :1, :1]).abs().max()) < 1e-6
    assert float((transposed[..., 0::2, 0::2] - transposed[..., 1::2, 1::2]).abs().amin()) > 1e-4
    G, _ = build_gan("dcgan", GanNetSpec(resolution=16, channels=3, z_dim=8, width=8, text_dim=12, resize_conv=1))
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) and m.stride == (2, 2) for m in G.modules())
    assert G(torch.randn(2, 8), torch.randn(2, 12)).shape == (2, 3, 16, 16)
    # auto: on for dcgan text and unconditional runs, off for class-conditional ones; old runs (no
    # g_upsample stored) keep transposed convs
    assert GanConfig(text=True).resize_conv == 1 and GanConfig().resize_conv == 1
    assert GanConfig(conditional=True).resize_conv == 0 and GanConfig(dp_epsilon=10.0).resize_conv == 0
    assert GanConfig(g_upsample="nearest").resize_conv == 1
    assert GanConfig(text=True).resolved().g_upsample == "nearest"
    (tmp_path / "config.json").write_text(json.dumps({"options": {"text": True}}))  # a text run before the option
    assert GanConfig.load(tmp_path / "config.json").resize_conv == 0
    with pytest.raises(GanforgeError, match="applies to --arch dcgan"):
        GanConfig(arch="stylegan2", g_upsample="nearest").validate()


def test_damsm_loss_prefers_matching_pairs():
    from ganforge.train.textgan import damsm_loss

    g = torch.Generator().manual_seed(0)
    text = torch.randn(8, 16, generator=g)
    image = (text + 0.1 * torch.randn(8, 16, generator=g)).requires_grad_(True)
    matched, shuffled = damsm_loss(image, text, 10.0), damsm_loss(image.roll(1, 0), text, 10.0)
    assert matched < 0.1 < shuffled
    shuffled.backward()  # the gradient reaches the images (G's fakes through the frozen image encoder)
    assert image.grad.abs().max() > 0


def test_hard_negatives_are_mismatched_and_harder():
    from ganforge.train.textgan import CaptionTable, mismatched_embeddings

    captions = [[f"a {c} {d}"] for c in ("red", "blue", "green") for d in ("one", "two", "three", "four")]
    table = CaptionTable(captions)
    emb = torch.nn.functional.normalize(torch.randn(len(table.texts), 8, generator=torch.Generator().manual_seed(1)), dim=1)
    index = torch.arange(len(captions)).repeat(10)
    text = emb[table.matching(index, torch.Generator().manual_seed(2))]
    easy = mismatched_embeddings(table, emb, index, text, torch.Generator().manual_seed(3), k=1)
    hard = mismatched_embeddings(table, emb, index, text, torch.Generator().manual_seed(3), k=8)
    assert not ((hard - text).abs().sum(1) < 1e-6).any()  # never the matching caption itself
    assert (hard * text).sum(1).mean() > (easy * text).sum(1).mean() + 0.2


def test_stylegan2_text_conditioning_end_to_end(runs):
    run = runs / "runs" / "sg2"
    assert main(["train", "--data", str(runs / "shapes"), "--text", "--arch", "stylegan2", "--steps", "2",
                 "--out", str(run), *TINY]) == 0
    gen = ganforge.load_generator(run)
    assert gen.w_space and gen.is_text and gen.G_ema.mapping.embed.weight.shape[1] == gen.spec.text_dim
    x = gen.sample(2, prompts=["a red square", "bar in blue"], seed=1)
    assert x.shape == (4, 3, 16, 16) and torch.isfinite(x).all() and not torch.equal(x[:2], x[2:])
    assert main(["sample", str(run), "--prompt", "a green bar", "--n", "4", "--out", str(runs / "sg2.png"),
                 "--quiet"]) == 0


def test_server_generate_takes_a_prompt(runs):
    pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    from fastapi.testclient import TestClient

    from ganforge.server import ServerConfig, create_app

    with TestClient(create_app(ServerConfig(runs=[runs / "runs"]))) as client:
        models = {m["name"]: m for m in client.get("/v1/models").json()["runs"]}
        assert models["text"]["text"] is True and models["plain"]["text"] is False
        resp = client.post("/v1/generate", json={"run": "text", "n": 4, "seed": 2, "prompt": "a red square"})
        assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
        grid = Image.open(__import__("io").BytesIO(resp.content))
        assert grid.size == (2 + 2 * 18, 2 + 2 * 18) and "a red square" in grid.text.get("ganforge:params", "")
        other = client.post("/v1/generate", json={"run": "text", "n": 4, "seed": 2, "prompt": "bar in blue"})
        assert other.content != resp.content
        for body, words in (({"run": "text", "n": 2}, "give a 'prompt'"),
                            ({"run": "plain", "n": 2, "prompt": "a red square"}, "not trained on text")):
            bad = client.post("/v1/generate", json=body)
            assert bad.status_code == 422 and words in bad.text


@pytest.mark.parametrize("resolution", [32, 64, 256])
def test_dfgan_is_sized_by_resolution(resolution):
    from ganforge.nets import GanNetSpec, build_gan

    spec = GanNetSpec(resolution=resolution, channels=3, z_dim=16, width=4, text_dim=12)
    G, D = build_gan("dfgan", spec)
    assert len(G.blocks) == int(np.log2(resolution)) - 2
    z, s = torch.randn(2, 16), torch.randn(2, 12)
    x = G(z, s)
    assert x.shape == (2, 3, resolution, resolution) and x.abs().max() <= 1
    assert D(x, s).shape == (2,)
    # the text reaches every up-block: a fusion block's affine MLPs read [z, sentence]
    assert all(b.fuse0.affine0.gamma[0].in_features == 16 + 12 for b in G.blocks)
    assert torch.equal(G(z, s), G(z, torch.randn(2, 12)))  # the fusions start as the identity (DF-GAN's init)
    with torch.no_grad():
        for m in G.modules():
            if m.__class__.__name__ == "Affine":
                torch.nn.init.normal_(m.gamma[2].weight, 0, 0.1)
    assert not torch.equal(G(z, s), G(z, torch.randn(2, 12)))
    with pytest.raises(ValueError, match="text_dim"):
        build_gan("dfgan", GanNetSpec(resolution=32, channels=3))
