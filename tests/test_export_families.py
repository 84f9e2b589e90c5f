"""One save/load contract for every model family (docs/export.md): ``save_pretrained`` ->
``from_pretrained`` gives bit-identical outputs for GAN generators of every architecture,
translators, AdaIN style decoders, upscalers and inpainters; the files are checked (one-line errors);
the family loaders take them; ``ganforge export RUN`` works for a run of every task."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge.cli import main
from ganforge.errors import CheckpointError, GanforgeError
from ganforge.export import (MODEL_FORMAT, export_generator, export_run, file_family, from_pretrained,
                             save_pretrained)
from ganforge.generator import Generator
from ganforge.nets import GanNetSpec, build_gan
from ganforge.nets.adain_decoder import AdaINDecoder
from ganforge.nets.rrdb import RRDBNet, SRResNet
from ganforge.nets.translators import ResnetGenerator, UnetGenerator
from ganforge.restore.inpaint import Inpainter
from ganforge.sample import load_generator
from ganforge.train import checkpoint
from ganforge.translate.apply import Translator

pytestmark = pytest.mark.usefixtures("one_thread")

GAN_ARCHS = ("dcgan", "resnet", "progan", "stylegan2")


# -- tiny random-init models of every family (shared with tests/test_onnx.py) -----------------------

def make_generator(arch: str, num_classes: int = 0) -> Generator:
    torch.manual_seed(0)
    spec = GanNetSpec(resolution=16, channels=3, z_dim=16, num_classes=num_classes, width=8)
    G, _ = build_gan(arch, spec)
    return Generator(G, G, spec, [f"c{i}" for i in range(num_classes)], 7, Path("random"), arch=arch)


def make_translator(kind: str) -> Translator:
    torch.manual_seed(0)
    if kind == "unet-batch":  # pix2pix: BatchNorm with batch statistics at inference
        from ganforge.translate.zoo import use_batch_statistics

        net = UnetGenerator(3, 3, num_downs=5, ngf=8, norm="batch").eval()
        use_batch_statistics(net)
    else:
        net = ResnetGenerator(3, 1, ngf=8, n_blocks=2, norm="instance").eval()
    return Translator(net, in_channels=3, out_channels=net.out_channels, multiple=net.multiple, name=kind).to("cpu", "fp32")


def make_upscaler(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "rrdb-x2":
        return RRDBNet(3, 3, nf=8, nb=1, gc=4, scale=2).eval()
    return SRResNet(3, 3, nf=8, nb=1, scale=4).eval()


def make_inpainter() -> Inpainter:
    torch.manual_seed(0)
    net = UnetGenerator(4, 3, num_downs=5, ngf=8, norm="instance").eval()
    return Inpainter(net, channels=3, multiple=32).to("cpu", "fp32")  # as load_inpainter places it


def make_decoder(layer: str = "relu2_1") -> AdaINDecoder:
    torch.manual_seed(0)
    decoder = AdaINDecoder(layer).eval()
    decoder.encoder_name = "vgg19-caffe"
    return decoder


MODELS = {**{f"gan-{a}": (lambda a=a: make_generator(a)) for a in GAN_ARCHS},
          **{f"gan-{a}-cond": (lambda a=a: make_generator(a, 3)) for a in ("dcgan", "stylegan2")},
          "translator-unet-batch": lambda: make_translator("unet-batch"),
          "translator-resnet": lambda: make_translator("resnet"),
          "upscaler-rrdb-x2": lambda: make_upscaler("rrdb-x2"), "upscaler-srresnet-x4": lambda: make_upscaler("srresnet"),
          "inpainter": make_inpainter, "style-decoder": make_decoder}
FAMILY = {"gan": "generator", "translator": "translator", "upscaler": "upscaler", "inpainter": "inpainter",
          "style": "style-decoder"}


def outputs(obj, family: str, n: int = 2) -> torch.Tensor:
    """The model's output for fixed inputs, through its own Python API."""
    g = torch.Generator().manual_seed(1)
    if family == "generator":
        z = torch.randn(n, obj.z_dim, generator=g)
        y = torch.arange(n) % obj.num_classes if obj.num_classes else None
        return obj.generate(z, y, truncation=0.7 if obj.w_space else 1.0)
    if family == "translator":
        return obj.translate_tensor(torch.rand(n, 3, 32, 40, generator=g))
    if family == "upscaler":
        with torch.no_grad():
            return obj(torch.rand(n, 3, 8, 12, generator=g))
    if family == "inpainter":
        image = torch.rand(n, 3, 32, 40, generator=g)
        return obj.fill(image, (torch.rand(n, 1, 32, 40, generator=g) > 0.6).float())
    with torch.no_grad():
        return obj(torch.rand(n, 128, 6, 5, generator=g))


# -- round trips ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_then_load_gives_bit_identical_outputs(name, tmp_path):
    obj = MODELS[name]()
    family = FAMILY[name.split("-")[0]]
    summary = save_pretrained(obj, tmp_path / "m.safetensors")
    meta = summary["metadata"]
    assert (meta["format"], meta["format_version"], meta["family"]) == (MODEL_FORMAT, "1", family)
    assert meta["ganforge_version"] == ganforge.__version__ and isinstance(json.loads(meta["spec"]), dict)
    assert re.fullmatch(r"[0-9a-f]{64}", meta["data_sha256"])
    assert file_family(tmp_path / "m.safetensors") == family
    again = from_pretrained(tmp_path / "m.safetensors")
    assert type(again) is type(obj)
    assert torch.equal(outputs(again, family), outputs(obj, family))


def test_family_keys_and_generator_layouts(tmp_path):
    gen = make_generator("stylegan2", 3)
    meta = save_pretrained(gen, tmp_path / "g.safetensors")["metadata"]
    assert json.loads(meta["spec"]) == {"resolution": 16, "channels": 3, "z_dim": 16, "num_classes": 3, "width": 8}
    assert (meta["arch"], json.loads(meta["class_names"]), meta["step"]) == ("stylegan2", ["c0", "c1", "c2"], "7")
    # load_generator takes the model layout; from_pretrained takes the older generator layout
    loaded = load_generator(tmp_path / "g.safetensors")
    assert (loaded.arch, loaded.spec, loaded.class_names, loaded.step) == (gen.arch, gen.spec, gen.class_names, 7)
    export_generator(gen, tmp_path / "old.safetensors")
    assert file_family(tmp_path / "old.safetensors") == "generator"
    assert torch.equal(outputs(from_pretrained(tmp_path / "old.safetensors"), "generator"), outputs(gen, "generator"))
    dec_meta = save_pretrained(make_decoder(), tmp_path / "d.safetensors")["metadata"]
    assert (dec_meta["layer"], dec_meta["encoder"], dec_meta["arch"]) == ("relu2_1", "vgg19-caffe", "adain-decoder")


def test_loaders_take_the_files(tmp_path):
    """Each family's own loader reads a file written by save_pretrained as it is, with outputs
    bit-identical to the saved object's (through the family's adapter, not key guessing)."""
    from ganforge.nets.adain_decoder import load_decoder
    from ganforge.restore.inpaint import load_inpainter
    from ganforge.restore.zoo import build_upscaler
    from ganforge.translate.apply import load_translator

    for kind in ("rrdb-x2", "srresnet"):
        net = make_upscaler(kind)
        net.step = 5
        save_pretrained(net, tmp_path / f"{kind}.safetensors")
        again = build_upscaler(tmp_path / f"{kind}.safetensors")
        assert type(again) is type(net) and again.step == 5 and "×" in again.source  # rebuilt by the adapter
        assert torch.equal(outputs(again, "upscaler"), outputs(net, "upscaler"))
    dec = make_decoder()
    save_pretrained(dec, tmp_path / "d.safetensors")
    loaded = load_decoder(str(tmp_path / "d.safetensors"))
    assert (loaded.layer, loaded.encoder_name) == ("relu2_1", "vgg19-caffe")
    assert torch.equal(outputs(loaded, "style-decoder"), outputs(dec, "style-decoder"))
    for kind in ("resnet", "unet-batch"):
        tr = make_translator(kind)
        save_pretrained(tr, tmp_path / f"t-{kind}.safetensors")
        again = load_translator(tmp_path / f"t-{kind}.safetensors", device="cpu", precision="fp32")
        assert (again.in_channels, again.out_channels, again.multiple) == (tr.in_channels, tr.out_channels, tr.multiple)
        assert torch.equal(outputs(again, "translator"), outputs(tr, "translator"))
    inp = make_inpainter()
    save_pretrained(inp, tmp_path / "i.safetensors")
    again = load_inpainter(tmp_path / "i.safetensors", device="cpu", precision="fp32")
    assert isinstance(again, Inpainter) and (again.channels, again.multiple, again.prefill) == (3, 32, "none")
    assert torch.equal(outputs(again, "inpainter"), outputs(inp, "inpainter"))
    gen = make_generator("dcgan", 3)
    save_pretrained(gen, tmp_path / "g.safetensors")
    export_generator(gen, tmp_path / "g-old.safetensors")
    for name in ("g.safetensors", "g-old.safetensors"):  # load_generator reads both layouts
        assert torch.equal(outputs(load_generator(tmp_path / name), "generator"), outputs(gen, "generator"))


def test_loaders_refuse_another_familys_file_in_one_line(tmp_path):
    from ganforge.restore.inpaint import load_inpainter

    save_pretrained(make_upscaler("srresnet"), tmp_path / "u.safetensors")
    with pytest.raises(CheckpointError) as exc:
        load_inpainter(tmp_path / "u.safetensors")
    assert "'upscaler' model, not a 'inpainter'" in _one_line(exc)
    save_pretrained(make_inpainter(), tmp_path / "i.safetensors")
    with pytest.raises(GanforgeError) as exc:
        load_inpainter(tmp_path / "i.safetensors", checkpoint="best")
    assert "--checkpoint applies to run directories" in _one_line(exc)


def test_each_family_registers_its_own_adapter(tmp_path):
    """A family's loader finds its adapter in a fresh interpreter that imports only that family
    (the contract imports no family; each registers itself when its loader's module loads)."""
    import subprocess
    import sys

    for name, make in (("u", lambda: make_upscaler("srresnet")), ("t", lambda: make_translator("resnet")),
                       ("i", make_inpainter)):
        save_pretrained(make(), tmp_path / f"{name}.safetensors")
    script = f"""
import sys
from pathlib import Path
d = Path({str(tmp_path)!r})
from ganforge.restore.inpaint import load_inpainter
load_inpainter(d / "i.safetensors", device="cpu", precision="fp32")
from ganforge.translate.apply import load_translator
load_translator(d / "t.safetensors", device="cpu", precision="fp32")
from ganforge.restore.zoo import build_upscaler
assert "srresnet" in build_upscaler(d / "u.safetensors").source
assert "ganforge.style.decoder_run" not in sys.modules  # nothing imported every family
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_bad_files_and_unsupported_models_are_one_line(tmp_path):
    path = tmp_path / "u.safetensors"
    save_pretrained(make_upscaler("srresnet"), path)
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF
    (tmp_path / "flip.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError) as exc:
        from_pretrained(tmp_path / "flip.safetensors")
    assert "data_sha256" in _one_line(exc)
    (tmp_path / "short.safetensors").write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError) as exc:
        from_pretrained(tmp_path / "short.safetensors")
    assert "truncated" in _one_line(exc)
    with pytest.raises(CheckpointError) as exc:
        from_pretrained(tmp_path / "missing.safetensors")
    assert "no such file" in _one_line(exc)
    with pytest.raises(CheckpointError) as exc:
        from_pretrained(path, family="translator")
    assert "'upscaler' model, not a 'translator'" in _one_line(exc)
    with pytest.raises(CheckpointError) as exc:
        load_generator(path)
    assert "not a generator" in _one_line(exc)
    with pytest.raises(GanforgeError) as exc:
        save_pretrained(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")
    assert "not a model of any family" in _one_line(exc)
    from ganforge.nets.spade import SpadeGenerator

    spade = Translator(SpadeGenerator(3, 3, ngf=4, crop_size=32), 3, 3, 32, labels=True, num_classes=3)
    with pytest.raises(GanforgeError) as exc:
        save_pretrained(spade, tmp_path / "s.safetensors")
    assert "SpadeGenerator" in _one_line(exc)


def test_generator_to_device_and_precision():
    gen = make_generator("dcgan").to("cpu", "fp32")
    assert (gen.device.type, gen.precision) == ("cpu", "fp32")
    with pytest.raises(GanforgeError):
        gen.to("cpu", "fp16")  # fp16 needs a CUDA GPU: the same one-line refusal as everywhere


# -- ganforge export on a run of every task ---------------------------------------------------------

def _smooth_folder(root: Path, n: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    for i in range(n):
        a = rng.uniform(0, 2 * np.pi)
        t = (np.cos(a) * xx + np.sin(a) * yy)[..., None]
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        Image.fromarray((c0 * (1 - t) + c1 * t).clip(0, 255).astype(np.uint8)).save(root / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread_module) -> dict[str, Path]:
    """Two-step runs of every task (a hand-written checkpoint for the style decoder, which would need
    VGG weights to train)."""
    from ganforge.restore.inpaint import InpaintConfig, train_inpainter
    from ganforge.restore.sr_train import SRConfig, train_upscaler
    from ganforge.translate.config import TranslateConfig
    from ganforge.translate.train import train_translator

    root = tmp_path_factory.mktemp("export-families")
    ganforge.train_gan(ganforge.GanConfig(data="digits", max_images=32, resolution=16, width=8, z_dim=16,
                                          batch_size=8, steps=2, ckpt_every=1, sample_every=0, progress=False,
                                          tensorboard=False, arch="dcgan"), out=root / "gan")
    paired = root / "paired"
    _smooth_folder(paired / "A", 4, 36)
    _smooth_folder(paired / "B", 4, 36)
    train_translator(TranslateConfig(data=str(paired), model="pix2pix", ngf=8, ndf=8, load_size=36, crop_size="32",
                                     batch_size=2, log_every=1, sample_every=1000, ckpt_every=1000, progress=False,
                                     tensorboard=False, precision="fp32"), out=root / "translator", steps=1)
    pictures = _smooth_folder(root / "pictures", 4, 64)
    train_upscaler(SRConfig(data=str(pictures), arch="srresnet", nf=8, nb=1, ndf=8, d_layers=2, tile_size=32, crop=32,
                            scale=4, batch_size=2, perceptual_weight=0.0, precision="fp32", progress=False,
                            tensorboard=False, log_every=1, sample_every=1000, ckpt_every=1000, ema=0.9, steps=2),
                   out=root / "upscaler")
    train_inpainter(InpaintConfig(data=str(_smooth_folder(root / "holes", 4, 36)), ngf=8, ndf=8, load_size=36,
                                  crop_size=32, batch_size=2, log_every=1, sample_every=1000, ckpt_every=1000,
                                  progress=False, tensorboard=False, precision="fp32"), out=root / "inpainter", steps=2)
    run = root / "style"
    run.mkdir()
    checkpoint.save(run / "checkpoints", 3, {"decoder": make_decoder()}, {})
    checkpoint.write_text_atomic(run / "run.json", json.dumps(
        {"task": "style-decoder", "encoder": "vgg19-caffe", "layer": "relu2_1", "decoder": "decoder.safetensors"}))
    return {"gan": root / "gan", "translator": root / "translator", "upscaler": root / "upscaler",
            "inpainter": root / "inpainter", "style": run}


@pytest.mark.parametrize("task", ["gan", "translator", "upscaler", "inpainter", "style"])
def test_cli_export_of_every_task_loads_like_the_run(runs, tmp_path, task):
    from ganforge.export.run import load_run_model

    out = tmp_path / "model.safetensors"
    assert main(["export", str(runs[task]), "--out", str(out), "--json", str(tmp_path / "e.json")]) == 0
    summary = json.loads((tmp_path / "e.json").read_text())
    assert summary["format"] == "safetensors" and Path(summary["output"]) == out
    task_name = {"style": "style-decoder"}.get(task, task)
    family = FAMILY[task]
    assert summary["task"] == task_name and file_family(out) == family
    model = load_run_model(runs[task], task_name)
    loaded = from_pretrained(out)
    if task == "style":
        model = model.decoder
    assert torch.equal(outputs(loaded, family), outputs(model, family))


def test_export_refuses_a_bad_format_in_one_line(runs, tmp_path, capsys):
    assert main(["export", str(runs["upscaler"]), "--out", str(tmp_path / "m.bin")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ".safetensors file name (or .onnx" in err
    with pytest.raises(GanforgeError, match="--format must be"):
        export_run(runs["upscaler"], tmp_path / "m.safetensors", format="pt")
