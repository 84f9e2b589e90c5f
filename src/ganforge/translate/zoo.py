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
from ..weights.catalog import CYCLEGAN_URL, PIX2PIX_URL, TRANSLATION_MODELS
from ..errors import GanforgeError, WeightsError
from ..nets.translators import ResnetGenerator, UnetGenerator, unet_downs_for

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



def _zoo_model(name: str, family: str, direction: str) -> ZooModel:
    if family == "cyclegan":
        return ZooModel(name, family, "resnet_9blocks", "instance", 3, 3, direction, norm_eval=True)
    return ZooModel(name, family, "unet_256", "batch", 3, 3, direction, norm_eval=False, use_dropout=True)


for _name, (_family, _upstream, _direction) in TRANSLATION_MODELS.items():
    ZOO[_name] = _zoo_model(_name, _family, _direction)


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
