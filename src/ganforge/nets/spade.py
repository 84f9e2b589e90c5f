"""SPADE / GauGAN (Park et al. 2019, "Semantic Image Synthesis with Spatially-Adaptive
Normalization"): a generator that paints an image from a semantic label map, and the pix2pixHD
multi-scale PatchGAN discriminator it is trained against.

The label map enters every residual block, not only the input: each normalisation layer is a
parameter-free norm whose per-pixel gain and bias are predicted from the (resized) one-hot map,
so the layout cannot be "washed out" by normalisation as it is when the map is only the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError, GanforgeError

UPSAMPLING = {"normal": 5, "more": 6, "most": 7}
NORMS = ("instance", "batch")


def one_hot(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer class ids N×H×W (or N×1×H×W) -> float one-hot N×C×H×W (C = num_classes)."""
    if label.dim() == 4 and label.shape[1] == 1:
        label = label[:, 0]
    if label.dim() != 3:
        raise DataError(f"a label map batch must be N×H×W class ids, got shape {tuple(label.shape)}")
    if label.is_floating_point():
        raise DataError("class ids must be integers; pass a float one-hot N×C×H×W map instead")
    label = label.long()
    if label.numel():
        lo, hi = torch.stack(torch.aminmax(label)).tolist()  # one device sync
        if lo < 0:
            raise DataError(f"label map has a negative class id ({lo}); ids must be 0..{num_classes - 1}")
        if hi >= num_classes:
            raise DataError(f"label map has max id {hi}, outside 0..{num_classes - 1} for num_classes={num_classes}")
    out = torch.zeros((label.shape[0], num_classes, *label.shape[1:]), dtype=torch.float32, device=label.device)
    return out.scatter_(1, label.unsqueeze(1), 1.0)


def _wrap(spectral: bool):
    return nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)


def _param_free_norm(norm: str, channels: int) -> nn.Module:
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if norm == "batch":  # nn.SyncBatchNorm.convert_sync_batchnorm turns it into the synchronised one
        return nn.BatchNorm2d(channels, affine=False)
    raise GanforgeError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")


class SPADE(nn.Module):
    """Parameter-free normalisation of ``x`` followed by ``x * (1 + gamma) + beta``, gamma and beta
    predicted per pixel from the label map (nearest-resized to x's size) by a small shared conv."""

    def __init__(self, channels: int, label_channels: int, nhidden: int = 128, norm: str = "instance",
                 kernel_size: int = 3) -> None:
        super().__init__()
        self.norm = _param_free_norm(norm, channels)
        pad = kernel_size // 2
        self.shared = nn.Sequential(nn.Conv2d(label_channels, nhidden, kernel_size, padding=pad), nn.ReLU())
        self.gamma = nn.Conv2d(nhidden, channels, kernel_size, padding=pad)
        self.beta = nn.Conv2d(nhidden, channels, kernel_size, padding=pad)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        if isinstance(self.norm, nn.InstanceNorm2d) and x.shape[-2:].numel() == 1:
            normalized = torch.zeros_like(x)  # (x - mean) of one pixel; F.instance_norm refuses it in training
        else:
            normalized = self.norm(x)
        if segmap.shape[-2:] != x.shape[-2:]:
            segmap = F.interpolate(segmap, size=x.shape[-2:], mode="nearest")
        hidden = self.shared(segmap.to(x.dtype))
        return normalized * (1 + self.gamma(hidden)) + self.beta(hidden)


class SpadeResBlock(nn.Module):
    """(SPADE -> LeakyReLU(0.2) -> 3×3 conv) twice plus a shortcut that is learned (SPADE -> 1×1
    conv without bias) when the channel count changes, identity otherwise."""

    def __init__(self, fin: int, fout: int, label_channels: int, *, nhidden: int = 128, norm: str = "instance",
                 spectral: bool = True) -> None:
        super().__init__()
        wrap = _wrap(spectral)
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = wrap(nn.Conv2d(fin, fmid, 3, padding=1))
        self.conv_1 = wrap(nn.Conv2d(fmid, fout, 3, padding=1))
        self.norm_0 = SPADE(fin, label_channels, nhidden, norm)
        self.norm_1 = SPADE(fmid, label_channels, nhidden, norm)
        if self.learned_shortcut:
            self.conv_s = wrap(nn.Conv2d(fin, fout, 1, bias=False))
            self.norm_s = SPADE(fin, label_channels, nhidden, norm)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, segmap)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, segmap), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, segmap), 0.2))
        return shortcut + dx


class SpadeGenerator(nn.Module):
    """Label map -> image in [-1, 1] of the label map's height and width.

    ``num_upsampling_layers`` ("normal" 5, "more" 6, "most" 7 doublings) sets ``self.multiple``:
    the label's H and W must be multiples of it, and the first feature map is H/multiple ×
    W/multiple. Without z (``z_dim=0``) that map is a conv of the nearest-downsampled label map
    (SPADE's non-VAE mode); with ``z_dim > 0`` it is a linear layer from z, shaped for
    ``crop_size`` (the width) and ``aspect_ratio`` (W/H) and resized when a label of another size
    comes in. Labels are N×H×W integer class ids or a float one-hot N×C×H×W map.
    """

    def __init__(self, num_classes: int, out_channels: int = 3, ngf: int = 64, crop_size: int = 256,
                 aspect_ratio: float = 1.0, num_upsampling_layers: str = "normal", z_dim: int = 0,
                 norm: str = "instance", spectral: bool = True, nhidden: int = 128) -> None:
        super().__init__()
        if num_upsampling_layers not in UPSAMPLING:
            raise GanforgeError(f"num_upsampling_layers must be one of {', '.join(UPSAMPLING)}, "
                                f"got {num_upsampling_layers!r}")
        if num_classes < 1:
            raise GanforgeError(f"num_classes must be at least 1, got {num_classes}")
        _param_free_norm(norm, 1)  # validate early
        self.num_classes, self.out_channels, self.z_dim = num_classes, out_channels, z_dim
        self.num_upsampling_layers = num_upsampling_layers
        self.steps = UPSAMPLING[num_upsampling_layers]
        self.multiple = 2 ** self.steps
        self.sw = max(1, crop_size // self.multiple)
        self.sh = max(1, round(self.sw / aspect_ratio))
        nf = ngf
        block = lambda fin, fout: SpadeResBlock(fin, fout, num_classes, nhidden=nhidden, norm=norm,  # noqa: E731
                                                spectral=spectral)
        if z_dim > 0:
            self.fc = nn.Linear(z_dim, 16 * nf * self.sw * self.sh)
        else:
            self.fc = nn.Conv2d(num_classes, 16 * nf, 3, padding=1)
        self.head_0 = block(16 * nf, 16 * nf)
        self.middle_0 = block(16 * nf, 16 * nf)
        self.middle_1 = block(16 * nf, 16 * nf)
        self.up_0 = block(16 * nf, 8 * nf)
        self.up_1 = block(8 * nf, 4 * nf)
        self.up_2 = block(4 * nf, 2 * nf)
        self.up_3 = block(2 * nf, nf)
        final = nf
        self.up_4 = None
        if num_upsampling_layers == "most":
            self.up_4 = block(nf, max(1, nf // 2))
            final = max(1, nf // 2)
        self.conv_img = nn.Conv2d(final, out_channels, 3, padding=1)

    def _segmap(self, label: torch.Tensor) -> torch.Tensor:
        if label.is_floating_point():
            if label.dim() != 4 or label.shape[1] != self.num_classes:
                raise DataError(f"a float label map must be one-hot N×{self.num_classes}×H×W, "
                                f"got shape {tuple(label.shape)}")
            return label
        return one_hot(label, self.num_classes)

    def forward(self, label: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        seg = self._segmap(label)
        h, w = seg.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise GanforgeError(f"label map size {h}x{w} (HxW): both must be multiples of {self.multiple} "
                                f"for num_upsampling_layers={self.num_upsampling_layers!r}")
        sh, sw = h // self.multiple, w // self.multiple
        param = next(self.parameters())
        seg = seg.to(device=param.device, dtype=param.dtype)
        if self.z_dim > 0:
            if z is None:
                z = torch.randn(seg.shape[0], self.z_dim, device=seg.device, dtype=seg.dtype)
            x = self.fc(z).view(seg.shape[0], -1, self.sh, self.sw)
            if (sh, sw) != (self.sh, self.sw):
                x = F.interpolate(x, size=(sh, sw), mode="bilinear", align_corners=False)
        else:
            x = self.fc(F.interpolate(seg, size=(sh, sw), mode="nearest"))

        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
        x = up(self.head_0(x, seg))
        x = self.middle_0(x, seg)
        if self.steps >= 6:
            x = up(x)
        x = up(self.middle_1(x, seg))
        x = up(self.up_0(x, seg))
        x = up(self.up_1(x, seg))
        x = up(self.up_2(x, seg))
        x = self.up_3(x, seg)
        if self.up_4 is not None:
            x = self.up_4(up(x), seg)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


class NLayerDiscriminator(nn.Module):
    """pix2pixHD PatchGAN: 4×4 convs, the first ``n_layers - 1`` of stride 2; returns every
    block's output, the last being the 1-channel logit map."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 4, norm: str = "instance",
                 spectral: bool = True) -> None:
        super().__init__()
        if norm not in NORMS + ("none",):
            raise GanforgeError(f"norm must be one of instance, batch, none, got {norm!r}")
        wrap = _wrap(spectral)
        k, pad = 4, 2
        blocks = [nn.Sequential(nn.Conv2d(in_channels, ndf, k, stride=2, padding=pad), nn.LeakyReLU(0.2))]
        nf = ndf
        for n in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            stride = 1 if n == n_layers - 1 else 2
            layers: list[nn.Module] = [wrap(nn.Conv2d(prev, nf, k, stride=stride, padding=pad, bias=norm == "none"))]
            if norm != "none":
                layers.append(_param_free_norm(norm, nf))
            layers.append(nn.LeakyReLU(0.2))
            blocks.append(nn.Sequential(*layers))
        blocks.append(nn.Sequential(nn.Conv2d(nf, 1, k, stride=1, padding=pad)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """``num_d`` PatchGANs on the input at full, 1/2, 1/4 ... scale (3×3 average pooling, stride 2).

    ``forward(x)`` returns one list per scale of that discriminator's feature maps, the last
    entry being its logit map: the GAN loss uses ``out[i][-1]``, feature matching the rest.
    ``x`` is whatever the task concatenates (for SPADE: one-hot label map and image)."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 4, num_d: int = 2,
                 norm: str = "instance", spectral: bool = True) -> None:
        super().__init__()
        if num_d < 1:
            raise GanforgeError(f"num_d must be at least 1, got {num_d}")
        self.discriminators = nn.ModuleList(
            NLayerDiscriminator(in_channels, ndf, n_layers, norm, spectral) for _ in range(num_d)
        )

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for i, d in enumerate(self.discriminators):
            if i:
                x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)
            out.append(d(x))
        return out
