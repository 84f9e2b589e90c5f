"""The public pretrained pix2pix / CycleGAN generators (junyanz/pytorch-CycleGAN-and-pix2pix), as
entries of ganforge's weights registry plus what is needed to rebuild and run them.

URLs are the ones upstream's ``scripts/download_cyclegan_model.sh`` and
``scripts/download_pix2pix_model.sh`` fetch. Upstream publishes no checksums for these files, so
the entries carry ``sha256=""``: only the strict key/shape check guards them. Several upstream
files share a name (``facades_label2photo.pth`` exists for both CycleGAN and pix2pix), so the
local file name is the registry name: ``cyclegan-horse2zebra.pth`` etc. (rename a file upstream's
script saved as ``latest_net_G.pth`` accordingly, or pass its path to :func:`build_zoo_generator`).

Test-time normalisation: upstream ``test.py`` calls ``model.eval()`` only with ``--eval``, so the
published pix2pix results use BatchNorm with the statistics of the (single) test image, not the
running averages. :func:`build_zoo_generator` reproduces that for entries with ``norm_eval=False``
(see there). CycleGAN's InstanceNorm keeps no running statistics, so the mode does not matter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .. import weights as W
from ..errors import GanforgeError, WeightsError
from ..nets.translators import ResnetGenerator, UnetGenerator, unet_downs_for

CYCLEGAN_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/{}.pth"
PIX2PIX_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/{}.pth"
LICENCE = ("BSD (pytorch-CycleGAN-and-pix2pix, (c) 2017 Jun-Yan Zhu and Taesung Park); no separate "
           "licence is stated for the weights, and the training images keep their own terms")


@dataclass(frozen=True)
class ZooModel:
    """How to rebuild and run one published generator."""

    weights: str  # the name in ganforge.weights.WEIGHTS
    family: str  # "cyclegan" | "pix2pix"
    arch: str  # "resnet_9blocks" | "unet_256" (upstream --netG names)
    norm: str  # "instance" | "batch" (upstream --norm)
    in_channels: int
    out_channels: int
    direction: str  # what goes in and what comes out, in words
    norm_eval: bool  # False: BatchNorm uses the test batch's statistics, as upstream test.py (no --eval)
    use_dropout: bool = False  # upstream: pix2pix U-Nets have Dropout(0.5); inactive here (eval mode)
    ngf: int = 64


ZOO: dict[str, ZooModel] = {}

_CYCLEGAN = {  # the list in upstream's download_cyclegan_model.sh, in its order
    "apple2orange": "apple → orange (ImageNet photos)",
    "orange2apple": "orange → apple (ImageNet photos)",
    "summer2winter_yosemite": "summer → winter (Yosemite photos)",
    "winter2summer_yosemite": "winter → summer (Yosemite photos)",
    "horse2zebra": "horse → zebra",
    "zebra2horse": "zebra → horse",
    "monet2photo": "Monet painting → photo",
    "style_monet": "photo → Monet painting",
    "style_cezanne": "photo → Cézanne painting",
    "style_ukiyoe": "photo → Ukiyo-e print",
    "style_vangogh": "photo → Van Gogh painting",
    "sat2map": "satellite photo → map",
    "map2sat": "map → satellite photo",
    "cityscapes_photo2label": "Cityscapes street photo → label colours",
    "cityscapes_label2photo": "Cityscapes label colours → street photo",
    "facades_photo2label": "facade photo → CMP facade label colours",
    "facades_label2photo": "CMP facade label colours → facade photo",
    "iphone2dslr_flower": "iPhone flower photo → DSLR look (shallow depth of field)",
}

_PIX2PIX = {  # the list in upstream's download_pix2pix_model.sh, in its order
    "edges2shoes": "edge map → shoe photo",
    "sat2map": "satellite photo → map",
    "map2sat": "map → satellite photo",
    "facades_label2photo": "CMP facade label colours → facade photo",
    "day2night": "day → night (webcam scenes)",
}


def _register(family: str, upstream: str, direction: str) -> None:
    name = f"{family}-{upstream}"
    if family == "cyclegan":
        model = ZooModel(name, family, "resnet_9blocks", "instance", 3, 3, direction, norm_eval=True)
        url = CYCLEGAN_URL.format(upstream)
        arch = ("pytorch-CycleGAN-and-pix2pix ResnetGenerator (resnet_9blocks, ngf 64, affine-free "
                "InstanceNorm, reflection padding), keys model.N / model.N.conv_block.M")
        normalisation = "RGB in [-1, 1] (x / 127.5 - 1); height and width multiples of 4 (trained on 256x256)"
        how = "CycleGAN generator (one direction of the pair)"
    else:
        model = ZooModel(name, family, "unet_256", "batch", 3, 3, direction, norm_eval=False, use_dropout=True)
        url = PIX2PIX_URL.format(upstream)
        arch = ("pytorch-CycleGAN-and-pix2pix UnetGenerator (unet_256: 8 levels, ngf 64, BatchNorm), keys "
                "model.model.N / nested model.model.1.model.3…")
        normalisation = ("RGB in [-1, 1] (x / 127.5 - 1); height and width multiples of 256; upstream runs it "
                         "one image at a time with BatchNorm on that image's statistics")
        how = "pix2pix generator"
    ZOO[name] = model
    W.register_weights(W.WeightsEntry(
        name=name,
        filename=f"{name}.pth",  # upstream's {upstream}.pth names collide between the two families
        url=url,
        sha256="",  # upstream publishes no sha256 (its download scripts only wget the file): not checkable
        licence=LICENCE,
        architecture=arch,
        normalisation=normalisation,
        description=(f"{how}: {direction}. Upstream's {upstream}.pth; no sha256 is published upstream, so only "
                     f"the strict key/shape check guards this file"),
    ))


for _name, _direction in _CYCLEGAN.items():
    _register("cyclegan", _name, _direction)
for _name, _direction in _PIX2PIX.items():
    _register("pix2pix", _name, _direction)


# --- loading -------------------------------------------------------------------------------------

_LEGACY_NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _strip_prefix(state: dict) -> dict:
    """``nn.DataParallel`` saves keys as ``module.…``: drop that prefix."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _infer_arch(state: dict) -> str:
    blocks = {k.split(".")[1] for k in state if k.startswith("model.") and ".conv_block." in k}
    if blocks:
        return f"resnet_{len(blocks)}blocks"
    if any(k.startswith("model.model.") for k in state):
        downs = max(k.split(".").count("model") for k in state if k.startswith("model.model.")) - 1
        return f"unet_{2 ** downs}"
    raise WeightsError("not a pix2pix/CycleGAN generator: the keys are neither upstream ResnetGenerator's "
                       "(model.N.conv_block.M…) nor UnetGenerator's (model.model.N…); pass arch=")


def _infer_norm(state: dict, arch: str) -> str:
    if any(k.endswith(".weight") and v.dim() == 1 for k, v in state.items()):
        return "batch"  # affine BatchNorm; InstanceNorm upstream is affine-free
    first = "model.1.bias" if arch.startswith("resnet") else "model.model.0.bias"
    return "instance" if first in state else "none"  # upstream: convs keep a bias only before InstanceNorm


def _parse_arch(arch: str) -> tuple[str, int]:
    if m := re.fullmatch(r"resnet_(\d+)blocks", arch):
        return "resnet", int(m.group(1))
    if m := re.fullmatch(r"unet_(\d+)", arch):
        return "unet", unet_downs_for(int(m.group(1)))
    raise GanforgeError(f"unknown generator arch {arch!r}; use resnet_<N>blocks (e.g. resnet_9blocks) or "
                        f"unet_<size> (e.g. unet_256)")


def _shape_hints(state: dict, kind: str) -> tuple[int, int, int] | None:
    """(in_channels, out_channels, ngf) read off the checkpoint, or None if the keys are not there."""
    try:
        if kind == "resnet":
            first = state["model.1.weight"]
            last = max((int(k.split(".")[1]) for k in state
                        if re.fullmatch(r"model\.\d+\.weight", k) and state[k].dim() == 4))
            return first.shape[1], state[f"model.{last}.weight"].shape[0], first.shape[0]
        first = state["model.model.0.weight"]
        return first.shape[1], state["model.model.3.weight"].shape[1], first.shape[0]  # ConvT: (in, out, k, k)
    except (KeyError, ValueError, IndexError):
        return None


def _fit_legacy(net: nn.Module, state: dict) -> dict:
    """What upstream patches on load: InstanceNorm running statistics saved by older PyTorch (which
    tracked them by default) are dropped; BatchNorm files from before PyTorch 0.4.1 lack
    ``num_batches_tracked``, which is filled with 0 as PyTorch itself does."""
    state = dict(state)
    for name, module in net.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, nn.InstanceNorm2d) and not module.track_running_stats:
            for buf in _LEGACY_NORM_BUFFERS:
                state.pop(prefix + buf, None)
        elif isinstance(module, nn.BatchNorm2d) and module.track_running_stats:
            key = prefix + "num_batches_tracked"
            if key not in state and prefix + "running_mean" in state:
                state[key] = module.num_batches_tracked.clone()
    return state


def use_batch_statistics(net: nn.Module) -> None:
    """BatchNorm normalises with the statistics of the batch it sees, as upstream test.py (which
    leaves the model in train mode); momentum 0 keeps the loaded running averages unchanged."""
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.train()
            module.momentum = 0.0


def build_zoo_generator(name_or_path: str, arch: str | None = None, norm: str | None = None) -> nn.Module:
    """A published (or upstream-trained) generator, loaded strictly and ready for inference.

    ``name_or_path``: a zoo name (``cyclegan-horse2zebra``, ``pix2pix-facades_label2photo``, …; found
    through GANFORGE_WEIGHTS_DIR, the cache, or downloaded) or a ``.pth``/``.safetensors`` file in
    upstream's layout. ``arch`` (``resnet_9blocks``, ``unet_256``, …) and ``norm`` (``instance``,
    ``batch``, ``none``) override what the zoo says, or what is read off the keys for a file. A
    ``module.`` prefix and legacy InstanceNorm running statistics are removed first; any other
    mismatch is a one-line WeightsError.

    The returned network is in eval mode (Dropout off: deterministic), except that when the zoo
    entry has ``norm_eval=False`` — the pix2pix U-Nets, and any BatchNorm file given by path —
    its BatchNorm layers stay in train mode (with momentum 0), normalising each input batch by its
    own statistics as upstream's test.py does; feed one image at a time to match upstream's
    outputs. ``net.norm_eval`` says which; ``net.eval()`` switches to the running averages.
    """
    key = str(name_or_path)
    info = ZOO.get(key)
    if info is None and key not in W.WEIGHTS and not Path(key).is_file():
        raise WeightsError(f"no weights file {key} and no zoo model of that name "
                           f"(zoo: {', '.join(sorted(ZOO))}; see `ganforge weights list`)")
    state = _strip_prefix(W.load_state_dict(key))
    source = key if info is None else f"weights {key!r}"
    arch = arch or (info.arch if info else _infer_arch(state))
    kind, depth = _parse_arch(arch)
    norm = norm or (info.norm if info else _infer_norm(state, arch))
    hints = _shape_hints(state, kind)
    if info is not None:
        in_ch, out_ch, ngf = info.in_channels, info.out_channels, info.ngf
    elif hints is not None:
        in_ch, out_ch, ngf = hints
    else:
        in_ch, out_ch, ngf = 3, 3, 64  # keys absent: the load below names what is missing
    if kind == "resnet":
        # Dropout sits mid-block upstream and moves the block's second conv from index 5 to 6
        dropout = any(k.endswith(".conv_block.6.weight") and v.dim() == 4 for k, v in state.items())
        net: nn.Module = ResnetGenerator(in_ch, out_ch, ngf=ngf, n_blocks=depth, norm=norm, use_dropout=dropout)
    else:
        net = UnetGenerator(in_ch, out_ch, num_downs=depth, ngf=ngf, norm=norm,
                            use_dropout=info.use_dropout if info else True)
    W.load_into(net, _fit_legacy(net, state), source=source)
    norm_eval = info.norm_eval if info is not None else norm != "batch"
    net.eval()
    if not norm_eval:
        use_batch_statistics(net)
    net.norm_eval = norm_eval
    net.zoo = info
    return net


def zoo_names(family: str | None = None) -> list[str]:
    """Registered zoo names, optionally of one family (``cyclegan`` / ``pix2pix``)."""
    return sorted(n for n, m in ZOO.items() if family is None or m.family == family)


__all__ = ["ZOO", "ZooModel", "build_zoo_generator", "zoo_names", "CYCLEGAN_URL", "PIX2PIX_URL"]
