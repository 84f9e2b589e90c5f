"""The generator of a ``train-upscaler`` run (:func:`load_upscaler_run`). Importing this module
registers the ``upscaler`` run task and model family (RRDBNet / SRResNet networks; the adapter of
:mod:`ganforge.export.contract`: ``save_pretrained`` / ``from_pretrained``, which
:func:`ganforge.restore.zoo.build_upscaler` uses for such files)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from ...errors import CheckpointError
from ...export.container import load_strict
from ...export.contract import FAMILIES, Family, build_from_spec
from ...nets.rrdb import RRDBNet, SRResNet
from ...train.rundir import load_checkpoint, register_run_task, require_task
from .config import SRConfig, build_sr_generator


def load_upscaler_run(run_dir: str | os.PathLike, *, checkpoint_name: str = "latest", ema: bool = True) -> nn.Module:
    """The generator of a ``train-upscaler`` run at a checkpoint ('latest', 'best', 'step-N'):
    the EMA copy when the run keeps one (and ``ema``), in eval mode on the CPU."""
    from ...train import checkpoint
    from ...train.run import CONFIG_FILE, load_options

    run_dir = Path(run_dir)
    require_task(run_dir, "upscaler")
    cfg = load_options(SRConfig, run_dir / CONFIG_FILE)
    path, tensors, state = load_checkpoint(run_dir, checkpoint_name)
    net = build_sr_generator(cfg)
    key = "G_ema" if ema and any(k.startswith("G_ema.") for k in tensors) else "G"
    checkpoint.restore_modules({key: net}, tensors, path)
    net.step = int(state.get("step", 0))
    net.source = f"{run_dir} ({cfg.arch} ×{cfg.scale}, {key}, step {net.step})"
    return net.eval()


def _load_upscaler_run(run_dir: Path, meta: dict, *, checkpoint_name: str = "latest") -> nn.Module:
    return load_upscaler_run(run_dir, checkpoint_name=checkpoint_name)


register_run_task("upscaler", _load_upscaler_run)


# -- the upscaler family's adapter (ganforge.export.contract) --------------------------------------

def _parts(net: nn.Module) -> tuple[str, dict[str, Any], nn.Module]:
    spec = dict(in_channels=net.in_channels, out_channels=net.out_channels, nf=net.nf, nb=net.nb, scale=net.scale)
    if isinstance(net, RRDBNet):
        return "rrdb", {**spec, "gc": net.gc}, net
    return "srresnet", spec, net


def _rebuild(arch: str, spec: dict[str, Any], tensors: dict, meta: dict, path: Path) -> nn.Module:
    classes = {"rrdb": RRDBNet, "srresnet": SRResNet}
    if arch not in classes:
        raise CheckpointError(f"{path}: unknown upscaler arch {arch!r} (known: rrdb, srresnet)")
    net = load_strict(build_from_spec(classes[arch], spec, path, f"an {arch} upscaler"), tensors, path,
                      f"an {arch} upscaler for {json.dumps(spec)}")
    net.step = int(meta.get("step", "0")) if str(meta.get("step", "0")).isdigit() else 0
    net.source = f"{path} ({arch} ×{spec.get('scale')})"
    return net.eval()


FAMILIES.register("upscaler", Family(lambda obj: isinstance(obj, (RRDBNet, SRResNet)), _parts, _rebuild,
                                     lambda net: {"step": str(int(getattr(net, "step", 0) or 0))}))
