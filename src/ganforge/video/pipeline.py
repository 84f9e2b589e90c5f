"""The one video path every video command uses: read → per-frame op in batches → optional temporal
consistency → write, streamed and resumable.

Frames are processed in chunks of ``chunk_frames``; each finished chunk is saved (lossless,
``chunk_NNNNN.npz``: the output frames as uint8 plus the exact float state the temporal blend needs
to go on) in a work folder next to the output, ``.<out name>.work/``, with ``job.json`` naming the
input (path, size, mtime) and every setting. A killed job, run again with the same command,
continues after the last finished chunk and gives the same output as an uninterrupted run; a
changed input or setting starts over. When all chunks exist they are encoded in one pass (audio
copied from the input) to a hidden ``.part`` name, renamed, and the work folder is removed.

Memory holds one chunk, never the clip.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..train.checkpoint import write_text_atomic
from .io import VideoError, VideoWriter, iter_frames, probe
from .temporal import DEFAULT_STRENGTH, TemporalBlender

FrameOp = Callable[[torch.Tensor], torch.Tensor]  # N×3×H×W float [0, 1] -> N×3×H×W float [0, 1]
JOB_VERSION = 2  # 2: the temporal blend restores local contrast (temporal_contrast)


def work_dir_for(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.work")


def _job_key(src: Path, settings: dict[str, Any]) -> dict[str, Any]:
    st = src.stat()
    return {"version": JOB_VERSION, "input": str(src.resolve()), "input_size": st.st_size,
            "input_mtime_ns": st.st_mtime_ns, **settings}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def _finished_chunks(work: Path) -> int:
    """How many chunks, counted from 0 without a gap, are complete and readable."""
    n = 0
    while True:
        f = work / f"chunk_{n:05d}.npz"
        if not f.is_file():
            return n
        try:
            with np.load(f) as z:
                z["frames"].shape, z["last"].shape  # noqa: B018 - touch both arrays
        except Exception:  # noqa: BLE001 - a chunk cut short by a kill: redo it
            f.unlink()
            return n
        n += 1


def _run_op(op: FrameOp, frames: list[np.ndarray], batch_size: int, out_scale: float = 1.0) -> list[np.ndarray]:
    """``op`` over ``frames`` in batches; results not at ``out_scale`` × the frame size (e.g. from a
    smaller processing size) are resized to it."""
    out = []
    h, w = (max(1, round(n * out_scale)) for n in frames[0].shape[:2])
    for i in range(0, len(frames), batch_size):
        x = torch.from_numpy(np.stack(frames[i:i + batch_size])).permute(0, 3, 1, 2).float().div_(255)
        y = op(x)
        if not isinstance(y, torch.Tensor) or y.dim() != 4 or y.shape[0] != x.shape[0] or y.shape[1] != 3:
            raise VideoError(f"the frame operation returned {getattr(y, 'shape', type(y))}, expected {tuple(x.shape)}")
        if tuple(y.shape[-2:]) != (h, w):
            y = torch.nn.functional.interpolate(y.float(), size=(h, w), mode="bilinear", align_corners=False)
        out.extend(y.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy())
    return out


def process_video(src: str | os.PathLike, out: str | os.PathLike, op: FrameOp, *, temporal_strength: float = DEFAULT_STRENGTH,
                  flow: str = "dis", temporal_contrast: str = "restore", chunk_frames: int = 24, batch_size: int = 4, progress: bool = True,
                  resume: bool = True, keep_audio: bool = True, crf: int = 18, settings: dict[str, Any] | None = None,
                  desc: str = "video", out_scale: float = 1.0, provenance=None) -> dict[str, Any]:
    """Apply ``op`` (N×3×H×W → N×3×H'×W', values in [0, 1]) to every frame of ``src`` and write
    ``out`` (.mp4 / .mov / .mkv, or a folder for a PNG sequence); output frames are ``out_scale``
    × the input size (an upscaler's scale; 1 for everything else). ``settings``: whatever else
    defines the result (style, method, alpha…), so a resumed job only reuses matching chunks.
    ``provenance`` (a :class:`ganforge.provenance.Provenance`): the output's tags and frame watermark.
    Returns a summary (frames, fps, seconds, processing fps, resumed_from_frame, output size)."""
    from tqdm.auto import tqdm

    src, out = Path(src), Path(out)
    if chunk_frames < 1 or batch_size < 1:
        raise VideoError("chunk and batch sizes must be at least 1")
    info = probe(src)
    blender = TemporalBlender(temporal_strength, flow, temporal_contrast)  # validates the strength before any work
    work = work_dir_for(out)
    key = _job_key(src, {"temporal_strength": float(temporal_strength), "flow": flow,
                         "temporal_contrast": temporal_contrast, "chunk_frames": chunk_frames,
                         "batch_size": batch_size, "out_scale": float(out_scale), **(settings or {})})
    job_file = work / "job.json"
    if work.is_dir() and (not resume or _read_json(job_file) != key):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    if not job_file.is_file():
        write_text_atomic(job_file, json.dumps(key, indent=2) + "\n")
    done = _finished_chunks(work)
    start = done * chunk_frames
    if done:
        with np.load(work / f"chunk_{done - 1:05d}.npz") as z:
            prev_out = z["last"]
    t0 = time.perf_counter()
    bar = tqdm(total=info.frames, initial=min(start, info.frames), unit="frame", desc=desc, disable=not progress,
               dynamic_ncols=True)
    decoded = start
    try:
        frames_iter = iter_frames(src, start=max(0, start - 1))
        if start > 0:
            prev_src = next(frames_iter, None)
            if prev_src is None:
                raise VideoError(f"{src}: has fewer frames than the finished chunks in {work}; delete that folder")
            blender.set_state(prev_src, prev_out)
        index = done
        buffer: list[np.ndarray] = []

        def flush() -> None:
            nonlocal index
            styl = _run_op(op, buffer, batch_size, out_scale)
            outs = [blender(s, y) for s, y in zip(buffer, styl)]
            _atomic_savez(work / f"chunk_{index:05d}.npz",
                          frames=np.stack([(np.clip(o, 0, 1) * 255 + 0.5).astype(np.uint8) for o in outs]),
                          last=outs[-1].astype(np.float32))
            index += 1
            bar.update(len(buffer))
            buffer.clear()

        for frame in frames_iter:
            buffer.append(frame)
            decoded += 1
            if len(buffer) == chunk_frames:
                flush()
        if buffer:
            flush()
    finally:
        bar.close()
    processing_s = time.perf_counter() - t0
    if decoded < info.frames:
        shutil.rmtree(work, ignore_errors=True)
        raise VideoError(f"{src}: truncated: its header declares {info.frames} frames but only {decoded} decode")
    # encode every chunk in order, one at a time
    t1 = time.perf_counter()
    writer = VideoWriter(out, info.fps, rotation=info.rotation, audio_from=src if keep_audio and info.audio_codec else None,
                         crf=crf, provenance=provenance)
    try:
        for i in range(index):
            with np.load(work / f"chunk_{i:05d}.npz") as z:
                for frame in z["frames"]:
                    writer.write(frame)
        path = writer.close()
    except BaseException:
        writer.abort()
        raise
    shutil.rmtree(work, ignore_errors=True)
    new = decoded - start
    return {"input": str(src), "output": str(path), "frames": writer.count, "fps": float(info.fps),
            "width": info.width, "height": info.height, "rotation": info.rotation,
            "output_size": list(writer.size) if writer.size else None,
            "audio": (info.audio_codec if keep_audio and not writer.sequence else None),
            "temporal_strength": float(temporal_strength), "flow": flow if temporal_strength > 0 else None,
            "temporal_contrast": temporal_contrast if temporal_strength > 0 else None,
            "resumed_from_frame": start, "processed_frames": new,
            "processing_fps": round(new / processing_s, 3) if processing_s > 0 and new else None,
            "encode_seconds": round(time.perf_counter() - t1, 3),
            "trusted_fraction": round(float(np.mean(blender.trusted)), 4) if blender.trusted else None}
