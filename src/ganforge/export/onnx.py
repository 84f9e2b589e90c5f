"""Any ganforge model as an ONNX graph (``torch.onnx.export``, TorchScript exporter, opset 17)
with a dynamic batch axis, for runtimes without PyTorch (onnxruntime, TensorRT, browsers).

Graphs (images are float32 NCHW in [0, 1] in and out, as the Python APIs take and give them):

- generator: ``z`` (N×z_dim) [+ ``labels`` (N, int64) when conditional] [+ ``truncation_psi`` (1,)
  for stylegan2: w = w_avg + psi (w − w_avg)] -> ``image``. StyleGAN2's modulated convolutions are
  already the non-fused form (scale inputs by the style, shared-weight conv, demodulate the
  output) and its noise inputs are the fixed eval-mode buffers (noise_mode const).
- translator: ``image`` -> ``image``; H, W dynamic, multiples of the translator's ``multiple``
  (the Python API pads; the graph does not). BatchNorm layers that use the statistics of their
  input batch (pix2pix U-Nets) are written out as per-image statistics, as ``Translator`` runs them (one image
  per forward).
- style-decoder: ``content``, ``style``, ``alpha`` (1,) -> ``image``: the VGG encoder, AdaIN and
  the decoder as one graph (content H, W multiples of 8 for relu4_1; style any size).
- upscaler: ``image`` -> ``image`` ×scale; H, W dynamic.
- inpainter: ``image``, ``mask`` (N×1×H×W, 1 = hole) -> ``image`` with the hole filled and the
  known pixels kept (H, W multiples of the inpainter's ``multiple``).

A model the graph cannot express is a one-line :class:`~ganforge.errors.GanforgeError`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import GanforgeError
from ..translate.pretrained import batch_statistics
from .contract import family_of
from .families import load_families

OPSET = 17
SUFFIX = ".onnx"


class _GanGraph(nn.Module):
    def __init__(self, G: nn.Module, conditional: bool, w_space: bool) -> None:
        super().__init__()
        self.G, self.conditional, self.w_space = G, conditional, w_space

    def forward(self, z: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        labels = rest[0] if self.conditional else None
        psi = rest[-1] if self.w_space else None
        if self.w_space:  # truncation as an input: mapping without it, then the lerp toward w_avg
            ws = self.G.mapping(z, labels)
            w = ws[:, 0]
            avg = self.G.mapping.w_avg  # one w_avg (published networks), or one per class (ganforge's)
            avg = avg[labels] if self.conditional and avg.ndim == 2 else avg
            w = avg + psi.reshape(1, 1) * (w - avg)
            img = self.G.synthesis(w[:, None, :].expand(-1, ws.shape[1], -1))
        else:
            img = self.G(z, labels)
        return img.float().add(1).div(2).clamp(0, 1)


class _BatchStatNorm(nn.Module):
    """A train-mode BatchNorm2d's forward on a batch of one image (normalise by the image's own
    statistics, biased variance) in plain ops, per image: what ``Translator`` computes, since it
    feeds such networks one image at a time so that an output never depends on the rest of the batch."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__()
        self.eps, self.weight, self.bias = bn.eps, bn.weight, bn.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = (x - mean).square().mean(dim=(2, 3), keepdim=True)
        y = (x - mean) / torch.sqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def _inference_copy(net: nn.Module) -> nn.Module:
    """An eval-mode copy of ``net`` where train-mode BatchNorm layers become :class:`_BatchStatNorm`."""
    if not batch_statistics(net):
        return copy.deepcopy(net).eval()
    net = copy.deepcopy(net)
    for name, module in list(net.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and child.training:
                setattr(module, child_name, _BatchStatNorm(child))
    return net.eval()


class _ImageGraph(nn.Module):
    """[0, 1] in, the [-1, 1] network, [0, 1] out (translators)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1).float().add(1).div(2).clamp(0, 1)


class _UpscaleGraph(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).float().clamp(0, 1)


class _InpaintGraph(nn.Module):
    """Inpainter.fill composited: known pixels from the input, the hole generated (with the
    pyramid pre-fill as the base the network corrects, when the inpainter was trained so)."""

    def __init__(self, net: nn.Module, prefill: str) -> None:
        super().__init__()
        self.net, self.prefill = net, prefill

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from ..restore.inpaint.ops import net_input

        x, base = net_input(image * 2 - 1, mask, self.prefill)
        filled = (base + self.net(x).float()).add(1).div(2).clamp(0, 1)
        return image * (1 - mask) + filled * mask


class _AdaINGraph(nn.Module):
    """VGG encoder -> AdaIN (unbiased std, as ganforge.style.adain) -> alpha mix -> decoder."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, layer: str, eps: float) -> None:
        super().__init__()
        self.encoder, self.decoder, self.layer, self.eps = encoder, decoder, layer, eps

    def _mean_std(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = f.flatten(2)
        mean = flat.mean(dim=2, keepdim=True)
        var = (flat - mean).square().sum(dim=2, keepdim=True) / (flat.shape[2] - 1)
        return mean.unsqueeze(-1), (var + self.eps).sqrt().unsqueeze(-1)

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        fc = self.encoder(content, (self.layer,))[self.layer]
        fs = self.encoder(style, (self.layer,))[self.layer]
        cm, cs = self._mean_std(fc)
        sm, ss = self._mean_std(fs)
        target = (fc - cm) / cs * ss + sm
        a = alpha.reshape(1, 1, 1, 1)
        return self.decoder(a * target + (1 - a) * fc).float().clamp(0, 1)


def _batch(*names: str) -> dict[str, dict[int, str]]:
    return {name: {0: "batch"} for name in names}


def _spatial(*names: str) -> dict[str, dict[int, str]]:
    return {name: {0: "batch", 2: "height", 3: "width"} for name in names}


def _fixed_size(size: Any, multiple: int) -> tuple[int, int]:
    """(H, W) from ``size`` (N or (H, W)) for a graph of one image size; a one-line error if missing
    or not a multiple of the network's ``multiple``."""
    if size is None:
        raise GanforgeError("ONNX export of an inpainter trained with prefill='pyramid' needs the image size "
                            f"(--size HxW, multiples of {multiple}): its multigrid fill is unrolled for one size")
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 1 or w < 1 or h % multiple or w % multiple:
        raise GanforgeError(f"--size {h}x{w}: height and width must be positive multiples of {multiple}")
    return int(h), int(w)


def onnx_graph(obj: Any, *, encoder: str | nn.Module | None = None, size: Any = None):
    """(module, example inputs, input names, output names, dynamic axes, notes) for ``obj``."""
    load_families()
    family = family_of(obj)
    if family == "generator":
        gen = obj
        G = copy.deepcopy(gen.G_ema).float().cpu().eval()
        for m in G.modules():  # StyleGAN2: the non-fused modulated conv (shared-weight convs; ONNX needs known kernel shapes)
            if hasattr(m, "fused_modconv"):
                m.fused_modconv = False
        cond = bool(gen.num_classes)
        z = torch.randn(2, gen.z_dim)
        inputs, names = [z], ["z"]
        if cond:
            inputs.append(torch.zeros(2, dtype=torch.long))
            names.append("labels")
        if gen.w_space:
            inputs.append(torch.ones(1))
            names.append("truncation_psi")
        module = _GanGraph(G, cond, gen.w_space)
        return module, tuple(inputs), names, ["image"], _batch("z", "labels", "image"), {"output_range": "[0, 1]"}
    if family == "translator":
        if obj.labels:
            raise GanforgeError("ONNX export of label-map translators (SPADE) is not supported")
        n = size or 2 * obj.multiple
        x = torch.rand(2, obj.in_channels, n, n)
        net = _inference_copy(obj.net).float().cpu()
        return (_ImageGraph(net), (x,), ["image"], ["output"], _spatial("image", "output"),
                {"multiple": obj.multiple, "batch_statistics": batch_statistics(obj.net)})
    if family == "upscaler":
        net = copy.deepcopy(obj).float().cpu().eval()
        n = size or 4 * getattr(net, "input_multiple", 1)
        x = torch.rand(2, net.in_channels, n, n)
        return (_UpscaleGraph(net), (x,), ["image"], ["output"], _spatial("image", "output"),
                {"scale": net.scale, "multiple": getattr(net, "input_multiple", 1)})
    if family == "inpainter":
        net = _inference_copy(obj.net).float().cpu()
        if obj.prefill == "pyramid":  # the multigrid fill is unrolled for one image size
            h, w = _fixed_size(size, obj.multiple)
            axes, notes = _batch("image", "mask", "output"), {"multiple": obj.multiple, "fixed_size": [h, w]}
        else:
            h = w = size if isinstance(size, int) else obj.multiple
            axes, notes = _spatial("image", "mask", "output"), {"multiple": obj.multiple}
        image = torch.rand(2, obj.channels, h, w)
        mask = (torch.rand(2, 1, h, w) > 0.5).float()
        return _InpaintGraph(net, obj.prefill), (image, mask), ["image", "mask"], ["output"], axes, notes
    if family == "style-decoder":
        from ..nets.vgg import load_vgg
        from ..style.adain import EPS

        decoder = copy.deepcopy(getattr(obj, "decoder", obj)).float().cpu().eval()
        enc = encoder if encoder is not None else (getattr(obj, "encoder", None) or decoder.encoder_name)
        if not enc:
            raise GanforgeError("this style decoder does not name its encoder; pass encoder=NAME or a module")
        enc = copy.deepcopy(enc).float().cpu().eval() if isinstance(enc, nn.Module) else load_vgg(enc)
        n = size or 32
        content, style = torch.rand(2, 3, n, n), torch.rand(2, 3, n, n)
        return (_AdaINGraph(enc, decoder, decoder.layer, EPS), (content, style, torch.ones(1)),
                ["content", "style", "alpha"], ["output"],
                {**_spatial("content", "output"), "style": {0: "batch", 2: "style_height", 3: "style_width"}},
                {"layer": decoder.layer})
    raise GanforgeError(f"ONNX export of a {family} model is not supported")  # pragma: no cover


def export_onnx(obj: Any, path: str | Path, *, encoder: str | nn.Module | None = None,
                opset: int = OPSET, size: Any = None) -> dict[str, Any]:
    """Write ``obj`` (a model of any family) as an ONNX graph at ``path`` (``.onnx``). ``encoder``:
    for a style decoder, the VGG encoder (name, file or module; default: the one it was trained
    for). ``size`` (N or (H, W)): the image size of a graph that can only have one (an inpainter
    trained with the pyramid pre-fill); other graphs have dynamic sizes. Returns a summary:
    output, bytes, family, inputs, outputs, opset and notes."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise GanforgeError(f"{path}: use a {SUFFIX} file name")
    module, inputs, in_names, out_names, axes, notes = onnx_graph(obj, encoder=encoder, size=size)
    axes = {k: v for k, v in axes.items() if k in in_names or k in out_names}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's tracer warnings about shape checks
        try:
            torch.onnx.export(module, inputs, str(tmp), input_names=in_names, output_names=out_names,
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GanforgeError(f"ONNX export of this {family_of(obj)} failed: {first}") from None
    tmp.replace(path)
    return {"output": str(path), "bytes": path.stat().st_size, "format": "onnx", "family": family_of(obj),
            "inputs": in_names, "outputs": out_names, "opset": opset, "notes": notes}
