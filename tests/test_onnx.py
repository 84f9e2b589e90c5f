"""ONNX export (docs/export.md): for every family (every GAN architecture included) the graph run
by onnxruntime equals the PyTorch model within TOL (max abs, fp32 CPU), at batch 1 and 3 (dynamic
batch axis), with dynamic H, W where the family allows it; unsupported cases are one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ganforge.cli import main
from ganforge.errors import GanforgeError
from ganforge.export import export_onnx
from test_export_families import (GAN_ARCHS, make_decoder, make_generator, make_inpainter, make_translator,
                                  make_upscaler, runs)  # noqa: F401 (runs: the module fixture)

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install ganforge[onnx])")
pytest.importorskip("onnx", reason="onnx is not installed (pip install ganforge[onnx])")

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-4  # max abs difference, images in [0, 1], fp32 on the CPU


def _run(path, **feed) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in feed.items()})[0]


def _close(onnx_out: np.ndarray, torch_out: torch.Tensor) -> None:
    assert onnx_out.shape == tuple(torch_out.shape)
    assert np.abs(onnx_out - torch_out.numpy()).max() <= TOL


@pytest.mark.parametrize("arch", GAN_ARCHS)
@pytest.mark.parametrize("classes", [0, 3])
def test_generators_of_every_arch(arch, classes, tmp_path):
    gen = make_generator(arch, classes)
    summary = export_onnx(gen, tmp_path / "g.onnx")
    assert summary["inputs"][0] == "z" and ("labels" in summary["inputs"]) == bool(classes)
    assert ("truncation_psi" in summary["inputs"]) == gen.w_space  # stylegan2 only
    for n in (1, 3):
        z = torch.randn(n, gen.z_dim, generator=torch.Generator().manual_seed(n))
        y = torch.arange(n) % classes if classes else None
        psi = 0.7 if gen.w_space else 1.0
        feed = {"z": z, **({"labels": y} if classes else {}),
                **({"truncation_psi": np.array([psi], np.float32)} if gen.w_space else {})}
        _close(_run(tmp_path / "g.onnx", **feed), gen.generate(z, y, truncation=psi))


@pytest.mark.parametrize("kind", ["unet-batch", "resnet"])
def test_translators_with_dynamic_batch_and_size(kind, tmp_path):
    tr = make_translator(kind)
    export_onnx(tr, tmp_path / "t.onnx")
    for n, h, w in ((1, 32, 32), (3, 64, 96)):
        x = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(n))
        _close(_run(tmp_path / "t.onnx", image=x), tr.translate_tensor(x))  # batch stats: per image, as here


@pytest.mark.parametrize("kind", ["rrdb-x2", "srresnet"])
def test_upscalers_with_dynamic_height_and_width(kind, tmp_path):
    net = make_upscaler(kind)
    export_onnx(net, tmp_path / "u.onnx")
    for n, h, w in ((1, 8, 12), (3, 14, 6)):
        x = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            ref = net(x).clamp(0, 1)
        _close(_run(tmp_path / "u.onnx", image=x), ref)


def test_inpainter_fills_the_hole_and_keeps_the_rest(tmp_path):
    model = make_inpainter()
    export_onnx(model, tmp_path / "i.onnx")
    for n in (1, 3):
        g = torch.Generator().manual_seed(n)
        image, mask = torch.rand(n, 3, 32, 64, generator=g), (torch.rand(n, 1, 32, 64, generator=g) > 0.6).float()
        out = _run(tmp_path / "i.onnx", image=image, mask=mask)
        _close(out, image * (1 - mask) + model.fill(image, mask) * mask)
        assert np.array_equal(out * (1 - mask.numpy()), (image * (1 - mask)).numpy())


def test_pyramid_prefill_inpainter_exports_at_one_size(tmp_path):
    """The default pre-fill (a multigrid fill unrolled per image size) exports for a given size,
    with a dynamic batch, and matches Inpainter.fill there."""
    model = make_inpainter()
    model.prefill = "pyramid"
    summary = export_onnx(model, tmp_path / "p.onnx", size=(32, 64))
    assert summary["notes"]["fixed_size"] == [32, 64]
    for n in (1, 3):
        g = torch.Generator().manual_seed(n)
        image, mask = torch.rand(n, 3, 32, 64, generator=g), (torch.rand(n, 1, 32, 64, generator=g) > 0.6).float()
        out = _run(tmp_path / "p.onnx", image=image, mask=mask)
        _close(out, image * (1 - mask) + model.fill(image, mask) * mask)
    with pytest.raises(GanforgeError, match="multiples of"):
        export_onnx(model, tmp_path / "q.onnx", size=(30, 64))


def test_adain_stylizer_is_one_graph_with_alpha(tmp_path):
    from ganforge.nets.vgg import VGGEncoder
    from ganforge.style import Stylizer

    torch.manual_seed(0)
    encoder = VGGEncoder("adain", "none")
    decoder = make_decoder("relu2_1")
    decoder.encoder_name = ""
    stylizer = Stylizer("adain", encoder=encoder, decoders={"relu2_1": decoder})
    with torch.no_grad():  # a random decoder's output centred in [0, 1] with std ~0.15 (little clamping)
        decoder[-1].bias.zero_()
        raw = decoder(encoder(torch.rand(1, 3, 32, 40), ("relu2_1",))["relu2_1"])
        decoder[-1].weight.mul_(0.15 / float(raw.std()))
        decoder[-1].bias.fill_(0.5)
    summary = export_onnx(decoder, tmp_path / "s.onnx", encoder=encoder)
    assert summary["inputs"] == ["content", "style", "alpha"]
    for n, alpha in ((1, 1.0), (3, 0.4)):
        g = torch.Generator().manual_seed(n)
        content, style = torch.rand(n, 3, 32, 40, generator=g), torch.rand(n, 3, 36, 44, generator=g)
        out = _run(tmp_path / "s.onnx", content=content, style=style, alpha=np.array([alpha], np.float32))
        ref = torch.cat([stylizer.stylize_tensor(content[i:i + 1], style[i:i + 1], alpha=alpha) for i in range(n)])
        assert 0.05 < float(ref.std()) and float(((ref > 0) & (ref < 1)).float().mean()) > 0.9
        _close(out, ref)


def test_unsupported_cases_are_one_line(tmp_path):
    from ganforge.nets.spade import SpadeGenerator
    from ganforge.translate.apply import Translator

    spade = Translator(SpadeGenerator(3, 3, ngf=4, crop_size=32), 3, 3, 32, labels=True, num_classes=3)
    pyramid = make_inpainter()
    pyramid.prefill = "pyramid"  # needs its one image size
    for model, needle in ((spade, "label-map translators"), (pyramid, "--size HxW"),
                          (torch.nn.Linear(2, 2), "not a model of any family")):
        with pytest.raises(GanforgeError) as exc:
            export_onnx(model, tmp_path / "x.onnx")
        assert needle in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(GanforgeError, match="use a .onnx file name"):
        export_onnx(make_upscaler("srresnet"), tmp_path / "x.pt")


@pytest.mark.parametrize("task", ["gan", "translator", "upscaler"])
def test_cli_export_onnx_of_a_run(runs, tmp_path, task):  # noqa: F811 (the fixture)
    from ganforge.export.run import load_run_model

    out = tmp_path / "model.onnx"
    assert main(["export", str(runs[task]), "--out", str(out), "--json", str(tmp_path / "e.json")]) == 0
    summary = json.loads((tmp_path / "e.json").read_text())
    assert (summary["format"], summary["task"], summary["opset"]) == ("onnx", task, 17)
    model = load_run_model(runs[task], task)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    if task == "gan":
        z = torch.randn(2, model.z_dim)
        _close(_run(out, z=z), model.generate(z))
    elif task == "translator":
        _close(_run(out, image=x), model.translate_tensor(x))
    else:
        with torch.no_grad():
            _close(_run(out, image=x[..., :8, :12]), model(x[..., :8, :12]).clamp(0, 1))
