"""One adapter per model family for :mod:`ganforge.export.pretrained`: how to take an object
apart into ``(arch, spec, state_dict, extra metadata)`` and how to rebuild it strictly from those.

Families: ``generator`` (:class:`ganforge.generator.Generator`), ``translator``
(:class:`ganforge.translate.apply.Translator`), ``style-decoder`` (an AdaIN decoder, or the
``DecoderRun`` of a ``train-style`` run), ``upscaler`` (RRDBNet / SRResNet) and ``inpainter``
(:class:`ganforge.restore.inpaint.Inpainter`). Adapters use only public names of their families,
imported when used, so this module loads no family it does not touch.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import CheckpointError, GanforgeError
from ..registry import Registry
from .container import load_strict

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Family:
    """``matches(obj)``; ``parts(obj)`` -> (arch, spec, network); ``extra(obj)`` -> more metadata
    strings; ``rebuild(arch, spec, tensors, meta, path)`` -> the object, loaded strictly."""

    matches: Callable[[Any], bool]
    parts: Callable[[Any], tuple[str, dict[str, Any], nn.Module]]
    rebuild: Callable[[str, dict[str, Any], Tensors, dict[str, str], Path], Any]
    extra: Callable[[Any], dict[str, str]] = lambda obj: {}


FAMILIES: Registry[Family] = Registry("model family")


def family_of(obj: Any) -> str:
    """The family name of a model object, or a one-line GanforgeError."""
    for name in FAMILIES.names():
        if FAMILIES.get(name).matches(obj):
            return name
    raise GanforgeError(f"cannot save a {type(obj).__name__}: not a model of any family "
                        f"({', '.join(sorted(FAMILIES.names()))})")


def _build(cls: type, kwargs: dict[str, Any], path: Path, what: str) -> nn.Module:
    try:
        return cls(**kwargs)
    except Exception as exc:  # a spec this version cannot build (unknown key, bad value)
        raise CheckpointError(f"{path}: cannot build {what} from spec {json.dumps(kwargs)}: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None


# -- generator -------------------------------------------------------------------------------------

def _generator_parts(gen) -> tuple[str, dict[str, Any], nn.Module]:
    if not gen.arch:
        raise GanforgeError("this generator does not know its architecture; load it with ganforge.load_generator")
    return gen.arch, dataclasses.asdict(gen.spec), gen.G_ema


def _generator_rebuild(arch, spec, tensors, meta, path):
    from ..nets import GanNetSpec
    from .generator_file import rebuild_generator

    try:
        net_spec = GanNetSpec(**spec)
    except TypeError as exc:
        raise CheckpointError(f"{path}: spec {json.dumps(spec)} is not a GAN spec ({exc})") from None
    return rebuild_generator(arch, net_spec, tensors, meta, path)


def _is_generator(obj) -> bool:
    from ..generator import Generator

    return isinstance(obj, Generator)


FAMILIES.register("generator", Family(
    _is_generator, _generator_parts, _generator_rebuild,
    lambda gen: {"class_names": json.dumps(list(gen.class_names)), "step": str(int(gen.step)), "weights": "ema"}))


# -- image-to-image U-Net / ResNet generators (translators and inpainters) -------------------------

def image_net_spec(net: nn.Module) -> tuple[str, dict[str, Any]]:
    """(arch, constructor arguments) of a pix2pix U-Net or CycleGAN ResNet generator."""
    from ..nets.translators import ResnetGenerator, UnetGenerator

    dropout = any(isinstance(m, nn.Dropout) for m in net.modules())
    common = dict(in_channels=net.in_channels, out_channels=net.out_channels, ngf=net.ngf) if hasattr(net, "ngf") else {}
    if isinstance(net, UnetGenerator):
        return "unet", {**common, "num_downs": net.num_downs, "norm": net.norm, "use_dropout": dropout}
    if isinstance(net, ResnetGenerator):
        return "resnet", {**common, "n_blocks": net.n_blocks, "norm": net.norm, "use_dropout": dropout}
    raise GanforgeError(f"cannot save a {type(net).__name__} generator: only the U-Net and ResNet image "
                        "generators have a saved layout")


def build_image_net(arch: str, spec: dict[str, Any], tensors: Tensors, path: Path) -> nn.Module:
    from ..nets.translators import ResnetGenerator, UnetGenerator

    classes = {"unet": UnetGenerator, "resnet": ResnetGenerator}
    if arch not in classes:
        raise CheckpointError(f"{path}: unknown image generator arch {arch!r} (known: unet, resnet)")
    net = _build(classes[arch], spec, path, f"a {arch} generator")
    return load_strict(net, tensors, path, f"a {arch} generator for {json.dumps(spec)}").eval()


def batch_statistics(net: nn.Module) -> bool:
    """Whether a BatchNorm layer normalises with the statistics of its input batch (train mode)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in net.modules())


def _is_translator(obj) -> bool:
    from ..translate.apply import Translator

    return isinstance(obj, Translator)


def _translator_parts(tr) -> tuple[str, dict[str, Any], nn.Module]:
    arch, net = image_net_spec(tr.net)
    return arch, {"net": net, "in_channels": tr.in_channels, "out_channels": tr.out_channels,
                  "multiple": tr.multiple, "labels": tr.labels, "num_classes": tr.num_classes,
                  "batch_statistics": batch_statistics(tr.net)}, tr.net


def _translator_rebuild(arch, spec, tensors, meta, path):
    from ..translate.apply import Translator

    net = build_image_net(arch, spec["net"], tensors, path)
    if spec.get("batch_statistics"):
        from ..translate.zoo import use_batch_statistics

        use_batch_statistics(net)
    return Translator(net, in_channels=spec["in_channels"], out_channels=spec["out_channels"],
                      multiple=spec["multiple"], labels=spec.get("labels", False),
                      num_classes=spec.get("num_classes", 0), name=str(path)).to("cpu", "fp32")  # as load_translator


FAMILIES.register("translator", Family(_is_translator, _translator_parts, _translator_rebuild))


def _is_inpainter(obj) -> bool:
    if type(obj).__name__ != "Inpainter":  # cheap test first: do not import restore for other objects
        return False
    from ..restore.inpaint import Inpainter

    return isinstance(obj, Inpainter)


def _inpainter_parts(model) -> tuple[str, dict[str, Any], nn.Module]:
    arch, net = image_net_spec(model.net)
    return arch, {"net": net, "channels": model.channels, "multiple": model.multiple,
                  "prefill": model.prefill}, model.net


def _inpainter_rebuild(arch, spec, tensors, meta, path):
    from ..restore.inpaint import Inpainter

    net = build_image_net(arch, spec["net"], tensors, path)
    return Inpainter(net, channels=spec["channels"], multiple=spec["multiple"], prefill=spec.get("prefill", "none"),
                     name=str(path)).to("cpu", "fp32")  # as load_inpainter (its memory format too)


FAMILIES.register("inpainter", Family(_is_inpainter, _inpainter_parts, _inpainter_rebuild))


# -- AdaIN style decoder ---------------------------------------------------------------------------

def _decoder(obj):
    from ..nets.adain_decoder import AdaINDecoder

    obj = getattr(obj, "decoder", obj)  # a DecoderRun holds its decoder
    return obj if isinstance(obj, AdaINDecoder) else None


def _decoder_rebuild(arch, spec, tensors, meta, path):
    from ..nets.adain_decoder import AdaINDecoder

    if arch != "adain-decoder":
        raise CheckpointError(f"{path}: unknown style decoder arch {arch!r} (known: adain-decoder)")
    decoder = _build(AdaINDecoder, spec, path, "an AdaIN decoder")
    load_strict(decoder, tensors, path, f"an AdaIN decoder for {spec.get('layer')}")
    decoder.encoder_name = meta.get("encoder", "")
    decoder.requires_grad_(False)
    return decoder.eval()


def _decoder_extra(obj) -> dict[str, str]:
    # the keys nets.adain_decoder.load_decoder reads, so Stylizer(decoder=FILE) takes the file as it is
    dec = _decoder(obj)
    encoder = obj.encoder if hasattr(obj, "decoder") and isinstance(getattr(obj, "encoder", None), str) else ""
    return {"layer": dec.layer, "encoder": encoder or dec.encoder_name or ""}


FAMILIES.register("style-decoder", Family(
    lambda obj: _decoder(obj) is not None,
    lambda obj: ("adain-decoder", {"layer": _decoder(obj).layer}, _decoder(obj)),
    _decoder_rebuild, _decoder_extra))


# -- super-resolution networks ---------------------------------------------------------------------

def _upscaler_parts(net) -> tuple[str, dict[str, Any], nn.Module]:
    from ..nets.rrdb import RRDBNet

    spec = dict(in_channels=net.in_channels, out_channels=net.out_channels, nf=net.nf, nb=net.nb, scale=net.scale)
    if isinstance(net, RRDBNet):
        return "rrdb", {**spec, "gc": net.gc}, net
    return "srresnet", spec, net


def _upscaler_rebuild(arch, spec, tensors, meta, path):
    from ..nets.rrdb import RRDBNet, SRResNet

    classes = {"rrdb": RRDBNet, "srresnet": SRResNet}
    if arch not in classes:
        raise CheckpointError(f"{path}: unknown upscaler arch {arch!r} (known: rrdb, srresnet)")
    net = load_strict(_build(classes[arch], spec, path, f"an {arch} upscaler"), tensors, path,
                      f"an {arch} upscaler for {json.dumps(spec)}")
    net.step = int(meta.get("step", "0")) if str(meta.get("step", "0")).isdigit() else 0
    net.source = f"{path} ({arch} ×{spec.get('scale')})"
    return net.eval()


def _is_upscaler(obj) -> bool:
    from ..nets.rrdb import RRDBNet, SRResNet

    return isinstance(obj, (RRDBNet, SRResNet))


FAMILIES.register("upscaler", Family(_is_upscaler, _upscaler_parts, _upscaler_rebuild,
                                     lambda net: {"step": str(int(getattr(net, "step", 0) or 0))}))
