"""A trained AdaIN style decoder read back from its run directory (``ganforge train-style``), the
style family's entry in the run registry (task ``style-decoder``) and its model family adapter
(``style-decoder``, for :mod:`ganforge.export.contract`'s ``save_pretrained`` / ``from_pretrained``).
Decoder files are also read as they are by ``nets.adain_decoder.load_decoder`` (and so by
``Stylizer(decoder=FILE)``): the adapter writes the ``layer`` and ``encoder`` keys it reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..export.container import load_strict
from ..export.contract import FAMILIES, Family, build_from_spec
from ..nets.adain_decoder import AdaINDecoder
from ..train.rundir import load_checkpoint, register_run_task


@dataclass
class DecoderRun:
    """A trained style decoder with what it was trained for (use with ``encoder`` at ``layer``)."""

    decoder: Any  # nets.adain_decoder.AdaINDecoder, eval mode
    encoder: str
    layer: str
    step: int
    run_dir: Path


def load_decoder_run(run_dir: Path, meta: dict[str, Any], *, checkpoint_name: str = "latest") -> DecoderRun:
    from ..train import checkpoint

    layer, encoder = meta.get("layer", "relu4_1"), meta.get("encoder", "")
    path, tensors, state = load_checkpoint(run_dir, checkpoint_name)
    decoder = AdaINDecoder(layer)
    checkpoint.restore_modules({"decoder": decoder}, tensors, path)
    decoder.encoder_name = encoder
    return DecoderRun(decoder.eval(), encoder, layer, int(state["step"]), run_dir)


register_run_task("style-decoder", load_decoder_run)


# -- the style-decoder family's adapter (ganforge.export.contract) ---------------------------------

def _decoder(obj: Any) -> AdaINDecoder | None:
    obj = obj.decoder if isinstance(obj, DecoderRun) else obj
    return obj if isinstance(obj, AdaINDecoder) else None


def _rebuild(arch: str, spec: dict[str, Any], tensors: dict, meta: dict, path: Path) -> AdaINDecoder:
    if arch != "adain-decoder":
        raise CheckpointError(f"{path}: unknown style decoder arch {arch!r} (known: adain-decoder)")
    decoder = build_from_spec(AdaINDecoder, spec, path, "an AdaIN decoder")
    load_strict(decoder, tensors, path, f"an AdaIN decoder for {spec.get('layer')}")
    decoder.encoder_name = meta.get("encoder", "")
    decoder.requires_grad_(False)
    return decoder.eval()


def _extra(obj: Any) -> dict[str, str]:
    # the keys nets.adain_decoder.load_decoder reads, so Stylizer(decoder=FILE) takes the file as it is
    dec = _decoder(obj)
    encoder = obj.encoder if isinstance(obj, DecoderRun) and isinstance(obj.encoder, str) else ""
    return {"layer": dec.layer, "encoder": encoder or dec.encoder_name or ""}


FAMILIES.register("style-decoder", Family(
    lambda obj: _decoder(obj) is not None,
    lambda obj: ("adain-decoder", {"layer": _decoder(obj).layer}, _decoder(obj)),
    _rebuild, _extra))
