"""How the pix2pix U-Net and CycleGAN ResNet image generators are saved and rebuilt in the
``ganforge.model`` file layout (docs/export.md): their ``arch`` and constructor arguments, and
whether their BatchNorm layers use batch statistics. The translator family's adapter
(registered by :mod:`ganforge.translate.apply`) and the inpainter family's
(:mod:`ganforge.restore.inpaint.apply`) use these, and ONNX export the last."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, GanforgeError
from ..export.container import load_strict
from ..export.contract import build_from_spec


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


def build_image_net(arch: str, spec: dict[str, Any], tensors: dict[str, torch.Tensor], path: Path) -> nn.Module:
    """The ``arch`` image generator for ``spec``, loaded strictly from ``tensors``, in eval mode."""
    from ..nets.translators import ResnetGenerator, UnetGenerator

    classes = {"unet": UnetGenerator, "resnet": ResnetGenerator}
    if arch not in classes:
        raise CheckpointError(f"{path}: unknown image generator arch {arch!r} (known: unet, resnet)")
    net = build_from_spec(classes[arch], spec, path, f"a {arch} generator")
    return load_strict(net, tensors, path, f"a {arch} generator for {json.dumps(spec)}").eval()


def batch_statistics(net: nn.Module) -> bool:
    """Whether a BatchNorm layer normalises with the statistics of its input batch (train mode;
    see ``zoo.use_batch_statistics``)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in net.modules())
