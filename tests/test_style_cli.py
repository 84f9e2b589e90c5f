"""``ganforge stylize`` / ``train-style`` end to end (small sizes), the similarity report and the
demo section."""

from __future__ import annotations

import json

import pytest

import torch
from safetensors.torch import load_file

from conftest import CONTENT_DIR, SHARED, STYLE_DIR, require
from ganforge.cli import main
from ganforge.imageio import open_image, save_image

from test_style import official_files, smooth_image  # noqa: F401  (fixture reuse)

pytestmark = pytest.mark.usefixtures("one_thread")


CAFFE = SHARED / "weights" / "vgg19_imagenet_caffe_conv1_1-conv5_1_rgb_fp16.pth"


def test_cli_stylize_adain_with_metrics(official_files, tmp_path, capsys):  # noqa: F811
    require(CAFFE)
    enc, dec = official_files
    save_image(smooth_image(1, 45, 67)[0], tmp_path / "c.png")
    save_image(smooth_image(2, 40, 40)[0], tmp_path / "a.png")
    save_image(smooth_image(3, 40, 40)[0], tmp_path / "b.png")
    rc = main(["stylize", str(tmp_path / "c.png"), "--style", f"{tmp_path / 'a.png'}:0.7",
               "--style", f"{tmp_path / 'b.png'}:0.3", "--encoder", str(enc), "--decoder", str(dec),
               "--alpha", "0.8", "--colour", "luminance", "--out", str(tmp_path / "o.png"),
               "--metrics", str(tmp_path / "m.json")])
    assert rc == 0
    assert open_image(tmp_path / "o.png").size == (67, 45)  # same size as the input (odd, non-square)
    from ganforge.provenance import read_provenance

    prov = read_provenance(tmp_path / "o.png")  # the output is marked AI-generated, the inputs are not
    assert prov["ai_generated"] and prov["method"] == "stylize" and prov["params"]["content"] == "c.png"
    assert not read_provenance(tmp_path / "c.png")["ai_generated"]
    metrics = json.loads((tmp_path / "m.json").read_text())
    for key in ("content_ssim", "content_feature_cosine", "style_meanstd", "style_gram", "content_loss", "style_loss"):
        assert key in metrics
    assert 0 <= metrics["content_ssim"] <= 100


def test_cli_user_errors_are_one_line(official_files, tmp_path, capsys):  # noqa: F811
    enc, dec = official_files
    rc = main(["stylize", str(tmp_path / "missing.jpg"), "--style", str(tmp_path / "x.jpg"),
               "--encoder", str(enc), "--decoder", str(dec), "--out", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("ganforge: error:") and "\n" not in err
    rc = main(["stylize", str(tmp_path / "missing.jpg"), "--style", "x.jpg", "--iterations", "3",
               "--out", str(tmp_path / "o.png")])
    assert rc == 2


def test_similarity_report_orders_outputs():
    """The report's content score is high for the content itself and its style score is high for
    the style itself: the definitions measure what they say."""
    require(CAFFE)
    from ganforge.nets.vgg import load_vgg
    from ganforge.style.controls import limit_size, to_batch
    from ganforge.style.similarity import similarity_report

    enc = load_vgg("vgg19-caffe")
    c = limit_size(to_batch(require(CONTENT_DIR / "tubingen.jpg")), 96)
    s = limit_size(to_batch(require(STYLE_DIR / "starry_night.jpg")), 96)
    as_content = similarity_report(c, c, s, enc)
    as_style = similarity_report(torch.nn.functional.interpolate(s, size=c.shape[-2:]), c, s, enc)
    assert as_content["content_ssim"] > 99 and as_content["content_feature_cosine"] > 99
    assert as_style["style_gram"] > as_content["style_gram"]
    assert as_style["style_meanstd"] > as_content["style_meanstd"]


def test_train_style_resumes_and_writes_loadable_decoder(tmp_path):
    require(CAFFE)
    for sub, seeds in (("c", (1, 2)), ("s", (3, 4))):
        (tmp_path / sub).mkdir()
        for k in seeds:
            save_image(smooth_image(k, 48, 56)[0], tmp_path / sub / f"{k}.png")
    args = ["train-style", "--content", str(tmp_path / "c"), "--style", str(tmp_path / "s"), "--out",
            str(tmp_path / "run"), "--batch-size", "1", "--crop", "32", "--load-size", "40",
            "--sample-every", "2", "--ckpt-every", "1", "--lr-decay-steps", "3", "--quiet", "--encoder", "vgg19-caffe"]
    assert main(args + ["--steps", "2"]) == 0
    assert main(args + ["--steps", "3"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["resumed_from"] == 2 and summary["steps"] == 3
    assert (tmp_path / "run" / "loss_curves.png").is_file()
    assert (tmp_path / "run" / "samples" / "latest.png").is_file()
    state = load_file(str(tmp_path / "run" / "decoder.safetensors"))
    assert all(v.dtype == torch.float16 for v in state.values())
    # resuming is exact: the same weights as an uninterrupted 3-step run
    straight = [a if a != str(tmp_path / "run") else str(tmp_path / "straight") for a in args]
    assert main(straight + ["--steps", "3"]) == 0
    other = load_file(str(tmp_path / "straight" / "decoder.safetensors"))
    assert all(torch.equal(state[k], other[k]) for k in state)
    from ganforge.nets.adain_decoder import load_decoder

    assert load_decoder(str(tmp_path / "run" / "decoder.safetensors")).encoder_name == "vgg19-caffe"


def test_demo_section_small(tmp_path):
    require(CAFFE)
    from ganforge.style import demo_section

    html = demo_section(tmp_path, content=require(CONTENT_DIR / "tubingen.jpg"),
                        style=require(STYLE_DIR / "starry_night.jpg"), size=48, iterations=2)
    assert "<section" in html and "style_gatys.jpg" in html
    assert (tmp_path / "style_gatys.jpg").is_file()


def test_train_style_shallow_layer_for_multilevel_wct(tmp_path):
    """A relu2_1 decoder from train-style plugs into multi-level WCT with a relu4_1 decoder."""
    require(CAFFE)
    from ganforge.nets.adain_decoder import AdaINDecoder, load_decoder
    from ganforge.style import Stylizer
    from ganforge.errors import WeightsError

    for sub, k in (("c", 1), ("s", 2)):
        (tmp_path / sub).mkdir()
        save_image(smooth_image(k, 40, 40)[0], tmp_path / sub / "x.png")
    assert main(["train-style", "--content", str(tmp_path / "c"), "--style", str(tmp_path / "s"), "--out",
                 str(tmp_path / "run"), "--layer", "relu2_1", "--steps", "1", "--batch-size", "1", "--crop", "32",
                 "--load-size", "32", "--sample-every", "0", "--ckpt-every", "0", "--quiet",
                 "--encoder", "vgg19-caffe"]) == 0
    path = tmp_path / "run" / "decoder.safetensors"
    assert load_decoder(str(path)).layer == "relu2_1"
    with pytest.raises(WeightsError, match="relu2_1, not relu4_1"):
        load_decoder(str(path), "relu4_1")
    st = Stylizer("wct", encoder="vgg19-caffe", decoders={"relu4_1": AdaINDecoder(), "relu2_1": str(path)})
    out = st.stylize_tensor(smooth_image(3, 37, 41), smooth_image(4, 32, 32))
    assert out.shape == (1, 3, 37, 41)
