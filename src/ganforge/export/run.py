"""``ganforge export RUN --out FILE``: the trained model of a run directory of any task as one file
(safetensors, or an ONNX graph)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import GanforgeError

FORMATS = ("safetensors", "onnx")


def format_for(path: str | Path, fmt: str | None = None) -> str:
    """``fmt`` checked, or the format a file name asks for (.safetensors / .onnx)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise GanforgeError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    suffix = Path(path).suffix
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".safetensors":
        return "safetensors"
    raise GanforgeError(f"{path}: use a .safetensors file name (or .onnx for an ONNX graph)")


def load_run_model(run_dir: str | Path, task: str, *, checkpoint_name: str = "latest", ema: bool = True) -> Any:
    """The model a run of ``task`` trained, on the CPU in fp32 (EMA weights where the run keeps them
    and ``ema``)."""
    if task == "gan":
        from ..sample import load_generator

        gen = load_generator(run_dir, checkpoint_name=checkpoint_name)
        if not ema:  # the raw generator in the place exports read
            gen.G_ema = gen.G
        return gen
    if task == "translator":
        from ..translate.apply import load_translator

        return load_translator(run_dir, checkpoint=checkpoint_name, ema=ema, device="cpu", precision="fp32")
    if task == "inpainter":
        from ..restore.inpaint import load_inpainter

        return load_inpainter(run_dir, checkpoint=checkpoint_name, ema=ema, device="cpu", precision="fp32")
    if task == "upscaler":
        from ..restore.sr.load import load_upscaler_run

        return load_upscaler_run(run_dir, checkpoint_name=checkpoint_name, ema=ema)
    from ..runs import load_run

    return load_run(run_dir, checkpoint_name=checkpoint_name)  # style-decoder: a DecoderRun


def export_run(run_dir: str | Path, path: str | Path, *, checkpoint_name: str = "latest",
               ema: bool = True, format: str | None = None, encoder: str | None = None,
               size: Any = None) -> dict[str, Any]:
    """Export the model of a run directory of any task (``checkpoint_name``: latest, best or
    step-N). ``format``: safetensors or onnx (default: from the file name). A GAN run's
    safetensors export keeps the ``ganforge.generator`` layout; other tasks write the
    ``ganforge.model`` layout of :func:`ganforge.export.save_pretrained`. ``encoder``: for an ONNX
    style graph, the VGG encoder (default: the one the decoder was trained for); ``size``: for an
    ONNX graph of one image size (a pyramid-prefill inpainter), N or (H, W)."""
    from ..train.rundir import read_run_meta, run_task_name

    from ..published import is_published

    fmt = format_for(path, format)
    if is_published(run_dir):  # a published network (.pkl / .pt, or its registered name)
        return _export_published(run_dir, path, fmt, checkpoint_name, ema)
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise GanforgeError(f"{run_dir} is a file; ganforge export reads a run directory, a published network's "
                            ".pkl / .pt or its registered name")
    task = run_task_name(run_dir, read_run_meta(run_dir))
    if task == "style-decoder" and not ema:
        raise GanforgeError("a style decoder run keeps no EMA weights; omit --no-ema")
    if fmt == "safetensors" and task == "gan":  # the generator layout, as before
        from ..sample import load_generator
        from .generator_file import export_generator

        summary = export_generator(load_generator(run_dir, checkpoint_name=checkpoint_name), path, ema=ema)
        return {**summary, "task": task, "format": fmt}
    model = load_run_model(run_dir, task, checkpoint_name=checkpoint_name, ema=ema)
    if fmt == "onnx":
        from .onnx import export_onnx

        summary = export_onnx(model, path, encoder=encoder, size=size)
    else:
        from .contract import save_pretrained

        summary = save_pretrained(model, path)
    return {**summary, "task": task, "format": fmt}


def _export_published(source: str | Path, path: str | Path, fmt: str, checkpoint_name: str, ema: bool) -> dict[str, Any]:
    """A published network (official .pkl, rosinality .pt, or a registered name) as a generator file
    (the GAN runs' layout, its official init kwargs in the metadata) or an ONNX graph."""
    from ..sample import load_generator

    gen = load_generator(source, checkpoint_name=checkpoint_name)
    if fmt == "onnx":
        from .onnx import export_onnx

        if not ema:  # the raw generator in the place the graph reads
            gen.G_ema = gen.G
        summary = export_onnx(gen, path)
    else:
        from .generator_file import export_generator

        summary = export_generator(gen, path, ema=ema)
    return {**summary, "task": "gan", "format": fmt}
