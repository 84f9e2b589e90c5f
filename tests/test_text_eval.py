"""Evaluation of text-to-image runs (issue 20's metrics): prompts from the run's captions.json
(or the training folder, or --prompts FILE), FID and R-precision with their protocol, CLIP score
against a direct computation with a tiny random-weight open_clip folder, and the one-line skip
when CLIP's weights are not there. Reuses test_text_model's tiny run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import ganforge
from ganforge.cli import main
from ganforge.metrics.texteval import draw_prompts, sample_text_run
from test_text_encoder import TINY_CLIP
from test_text_model import runs  # noqa: F401  (fixture reuse: a tiny text run and a plain run)


def _eval_json(argv: list[str], out: Path) -> dict:
    assert main(["eval", *argv, "--json", str(out), "--quiet"]) == 0
    return json.loads(out.read_text())


def _results(doc: dict) -> dict:
    return {r["metric"]: r for r in doc["results"]}


def test_captions_json_fid_and_rprecision(runs, tmp_path):  # noqa: F811
    run, data = runs / "runs" / "text", runs / "shapes"
    caps = json.loads((run / "captions.json").read_text())
    counts = {c["text"]: c["images"] for c in caps["captions"]}
    # 36 images: 3 colours x 2 shapes x 6 each, two phrasings per image
    assert caps["distinct"] == 12 == len(counts) and set(counts.values()) == {6}
    assert counts["a red square"] == 6 and counts["bar in blue"] == 6

    doc = _eval_json([str(run), str(data), "--n", "40", "--metrics", "fid,rprecision", "--extractor", "digits"],
                     tmp_path / "e.json")
    res = _results(doc)
    assert set(res) == {"fid", "rprecision"} and res["fid"]["value"] > 0
    a = res["rprecision"]["a"]
    assert a["prompts_from"].startswith("captions.json") and a["prompts_available"] == 12 and a["seed"] == 0
    proto = res["rprecision"]["protocol"]
    assert proto["R"] == 100 and proto["encoder"] == "builtin" and proto["n"] == 40
    assert res["fid"]["a"]["prompts_from"] == a["prompts_from"]  # FID's samples: the same drawn prompts

    # the number is the R-precision of exactly these images and prompts under the run's own encoder
    gen = ganforge.load_generator(run)
    images, prompts, info = sample_text_run(gen, run, 40, seed=0)
    assert info["prompts_distinct_drawn"] == len(set(prompts)) == proto["distinct_prompts"]
    from ganforge.metrics.rprecision import r_precision

    direct = r_precision(gen.text_encoder, images, prompts, seed=0)
    assert res["rprecision"]["value"] == pytest.approx(direct["r_precision"])
    assert res["rprecision"]["std"] == pytest.approx(direct["std"])
    # image i is drawn from prompt i: the same latent with its own prompt
    want = gen.generate(gen.latents(40, 0), gen.embed(prompts)).mul(255).round().to(torch.uint8)
    assert torch.equal(images, want)


def test_prompts_are_drawn_seeded_and_weighted():
    texts, weights = ["a", "b", "c"], [1, 0, 3]
    one = draw_prompts(texts, weights, 4000, seed=3)
    assert one == draw_prompts(texts, weights, 4000, seed=3) and one != draw_prompts(texts, weights, 4000, seed=4)
    assert "b" not in one and abs(one.count("c") / len(one) - 0.75) < 0.03


def test_prompts_file_and_fallbacks(runs, tmp_path, capsys):  # noqa: F811
    run = runs / "runs" / "text"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a green bar\n\nsquare in red\n")
    res = _results(_eval_json([str(run), "--n", "12", "--metrics", "rprecision", "--prompts", str(prompts)],
                              tmp_path / "p.json"))["rprecision"]
    assert res["a"]["prompts_from"] == f"--prompts {prompts.resolve()}" and res["a"]["prompts_available"] == 2
    images, drawn, _ = sample_text_run(ganforge.load_generator(run), run, 12, prompts_file=prompts)
    assert set(drawn) == {"a green bar", "square in red"}

    # a run without captions.json: the training folder's captions, drawn the same way (same numbers)
    old = tmp_path / "old-run"
    shutil.copytree(run, old)
    (old / "captions.json").unlink()
    base = _results(_eval_json([str(run), "--n", "30", "--metrics", "rprecision"], tmp_path / "a.json"))
    fall = _results(_eval_json([str(old), "--n", "30", "--metrics", "rprecision"], tmp_path / "b.json"))
    assert fall["rprecision"]["a"]["prompts_from"].startswith("training folder")
    assert fall["rprecision"]["value"] == base["rprecision"]["value"]
    # ... and once that folder is gone too: one line naming --prompts
    config = json.loads((old / "config.json").read_text())
    config["options"]["data"] = str(tmp_path / "gone")
    (old / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["eval", str(old), "--n", "4", "--metrics", "rprecision"]) != 0
    err = capsys.readouterr().err.strip()
    assert "--prompts FILE" in err and len(err.splitlines()) == 1, err


def test_text_metrics_on_a_plain_run_are_one_line_errors(runs, capsys):  # noqa: F811
    plain = str(runs / "runs" / "plain")
    for argv, words in ((["--metrics", "rprecision"], "is for text-to-image runs"),
                        (["--metrics", "clip"], "is for text-to-image runs"),
                        (["digits", "--metrics", "kid", "--prompts", __file__], "--prompts is for text-to-image")):
        capsys.readouterr()
        assert main(["eval", plain, *argv, "--n", "8"]) != 0
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err


def _tiny_clip_folder(folder: Path):
    import open_clip
    from safetensors.torch import save_file

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = open_clip.CLIP(**TINY_CLIP).eval()
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return model


def test_clip_score_matches_a_direct_computation(runs, tmp_path):  # noqa: F811
    import open_clip

    from ganforge.metrics.clipscore import clip_score, load_clip
    from ganforge.text.clip import CLIP_MEAN, CLIP_STD

    folder = tmp_path / "tiny-clip"
    model = _tiny_clip_folder(folder)
    run = runs / "runs" / "text"
    doc = _eval_json([str(run), "--n", "16", "--metrics", "rprecision,clip", "--clip-model", f"local-dir:{folder}"],
                     tmp_path / "c.json")
    res = _results(doc)
    assert set(res) == {"rprecision", "clip"} and "skipped" not in doc
    proto = res["clip"]["protocol"]
    assert proto["weights"] == {"local_dir": str(folder)} and proto["n"] == 16 and "bicubic" in proto["preprocessing"]

    images, prompts, _ = sample_text_run(ganforge.load_generator(run), run, 16, seed=0)
    with torch.no_grad():  # Hessel et al.: 100 * mean(max(cos, 0)), computed here without ganforge's CLIP code
        x = F.interpolate(images.float() / 255, size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 1)
        x = (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        img = F.normalize(model.encode_image(x), dim=1)
        txt = F.normalize(model.encode_text(open_clip.get_tokenizer("ViT-B-32")(prompts)), dim=1)
        want = (100 * (img * txt).sum(dim=1).clamp(min=0)).mean().item()
    assert res["clip"]["value"] == pytest.approx(want, rel=1e-4)
    enc = load_clip(f"local-dir:{folder}")
    again = clip_score(enc, images, prompts)
    assert again["clip_score"] == clip_score(enc, images, prompts)["clip_score"]  # deterministic
    assert again["clip_score"] == pytest.approx(res["clip"]["value"], rel=1e-6)
    shuffled = clip_score(enc, images, prompts[1:] + prompts[:1])["per_image"]
    assert not (shuffled == again["per_image"]).all()  # each image is scored against its own prompt


def test_clip_offline_is_skipped_in_one_line(runs, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    capsys.readouterr()
    doc = _eval_json([str(runs / "runs" / "text"), "--n", "12", "--metrics", "clip,rprecision"], tmp_path / "o.json")
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("CLIP score skipped:"), err
    assert "ganforge weights fetch clip-vit-b-32-openai" in err and "local-dir:PATH" in err
    assert set(_results(doc)) == {"rprecision"}
    assert doc["skipped"] == [{"metric": "clip", "reason": err}]
