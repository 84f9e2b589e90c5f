"""A trained AdaIN style decoder read back from its run directory (``ganforge train-style``), and
the style family's entry in the run registry (task ``style-decoder``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    from ..nets.adain_decoder import AdaINDecoder
    from ..train import checkpoint

    layer, encoder = meta.get("layer", "relu4_1"), meta.get("encoder", "")
    path, tensors, state = load_checkpoint(run_dir, checkpoint_name)
    decoder = AdaINDecoder(layer)
    checkpoint.restore_modules({"decoder": decoder}, tensors, path)
    decoder.encoder_name = encoder
    return DecoderRun(decoder.eval(), encoder, layer, int(state["step"]), run_dir)


register_run_task("style-decoder", load_decoder_run)
