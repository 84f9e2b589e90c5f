"""Video in and out with PyAV, streamed (memory does not grow with the clip's length).

- :func:`probe` opens a file and checks that it is a decodable video (one-line :class:`VideoError`
  otherwise: not a video, a still image, truncated, zero frames, a codec FFmpeg cannot decode).
- :func:`iter_frames` yields RGB ``uint8`` H×W×3 frames in stored (un-rotated) orientation.
- :class:`VideoWriter` writes H.264 MP4 (yuv420p; odd sizes are padded by one edge pixel, since
  4:2:0 needs even sizes) or a PNG sequence (a folder), keeps fps and the rotation metadata, and
  copies the audio stream of a source file through (re-encoded to AAC only when MP4 cannot hold the
  source codec). It writes to a hidden ``.part`` name and renames on success, so a partial output
  never looks complete; on an exception the partial file is removed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DataError
from ..provenance import VIDEO_PREFIX

# audio codecs the MP4 muxer takes as they are (anything else is re-encoded to AAC)
MP4_AUDIO_COPY = ("aac", "mp3", "ac3", "eac3", "alac", "opus", "flac")
IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "tiff_pipe", "gif", "apng")


class VideoError(DataError):
    """A video file could not be read or written."""


@dataclass
class VideoInfo:
    path: str
    width: int
    height: int
    fps: Fraction
    frames: int  # from the container header, else counted by demuxing (no decoding)
    rotation: int  # display rotation in degrees, counter-clockwise (0 when none)
    codec: str
    audio_codec: str | None  # None: no audio stream
    duration_s: float
    tags: dict = field(default_factory=dict)  # container metadata (video.json's "provenance" for a sequence)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fps"] = float(self.fps)
        return d


def _ffmpeg_errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.error.FFmpegError, OSError, ValueError, EOFError)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _open(path: str | Path):
    import av

    p = Path(path)
    if not p.is_file():
        raise VideoError(f"{p}: no such video file")
    if p.stat().st_size == 0:
        raise VideoError(f"{p}: empty file (0 bytes)")
    try:
        container = av.open(str(p))
    except _ffmpeg_errors() as exc:
        raise VideoError(f"{p}: not a readable video (truncated or not a video file): {_short(exc)}") from None
    if container.format.name in IMAGE_FORMATS:
        container.close()
        raise VideoError(f"{p}: a still image ({container.format.name}), not a video")
    if not container.streams.video:
        container.close()
        raise VideoError(f"{p}: no video stream with frames (format {container.format.name})")
    return container


def _fps(stream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0:
            return Fraction(rate).limit_denominator(1001 * 1000)
    return Fraction(25)


def _sequence_frames(folder: Path) -> list[Path]:
    return sorted(folder.glob("frame_*.png")) or sorted(folder.glob("*.png"))


def probe(path: str | Path) -> VideoInfo:
    """Facts about a video (or a PNG-sequence folder this module wrote), after checking its first
    frame decodes."""
    if Path(path).is_dir():
        files = _sequence_frames(Path(path))
        if not files:
            raise VideoError(f"{path}: a folder without PNG frames")
        from PIL import Image

        with Image.open(files[0]) as im:
            w, h = im.size
        meta = read_sequence_info(path)
        fps = Fraction(meta.get("fps_fraction", "25"))
        tags = {"comment": VIDEO_PREFIX + json.dumps(meta["provenance"])} if isinstance(meta.get("provenance"), dict) else {}
        return VideoInfo(str(path), w, h, fps, len(files), int(meta.get("rotation", 0)), "png", None, len(files) / float(fps),
                         tags)
    container = _open(path)
    try:
        vs = container.streams.video[0]
        codec = vs.codec_context.name if vs.codec_context is not None else "unknown"
        frames = int(vs.frames or 0)
        if frames <= 0:  # not in the header (e.g. Matroska/WebM): count packets, no decoding
            frames = sum(1 for pkt in container.demux(vs) if pkt.size)
            container.seek(0)
        rotation, first = 0, None
        try:
            for first in container.decode(video=0):
                rotation = int(round(getattr(first, "rotation", 0) or 0)) % 360
                break
        except _ffmpeg_errors() as exc:
            raise VideoError(f"{path}: cannot decode its {codec} video stream: {_short(exc)}") from None
        if first is None or frames <= 0:
            raise VideoError(f"{path}: the video stream has no frames")
        fps = _fps(vs)
        duration = float(vs.duration * vs.time_base) if vs.duration else frames / float(fps)
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(str(path), vs.codec_context.width or first.width, vs.codec_context.height or first.height,
                         fps, frames, rotation, codec, audio, duration, dict(container.metadata))
    finally:
        container.close()


def iter_frames(path: str | Path, start: int = 0) -> Iterator[np.ndarray]:
    """RGB uint8 H×W×3 frames of the first video stream, in order, from frame ``start`` on (the
    earlier ones are decoded and dropped: exact, whatever the keyframe layout)."""
    if Path(path).is_dir():
        from PIL import Image

        for f in _sequence_frames(Path(path))[start:]:
            with Image.open(f) as im:
                yield np.asarray(im.convert("RGB"))
        return
    container = _open(path)
    try:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        i = 0
        try:
            for frame in container.decode(vs):
                if i >= start:
                    yield frame.to_ndarray(format="rgb24")
                i += 1
        except _ffmpeg_errors() as exc:
            raise VideoError(f"{path}: decoding failed after {i} frames (truncated or corrupt?): {_short(exc)}") from None
    finally:
        container.close()


def is_image_sequence(path: str | Path) -> bool:
    """An output path without a video suffix (or ending in .png) is a PNG-sequence folder."""
    suffix = Path(path).suffix.lower()
    return suffix in ("", ".png", ".frames")


def part_path(path: Path) -> Path:
    """The hidden name an output is written under until it is complete."""
    return path.with_name(f".{path.name}.part" + (path.suffix if path.suffix and not is_image_sequence(path) else ""))


class VideoWriter:
    """Write RGB frames (uint8 H×W×3 or float [0,1]) to ``path``: ``.mp4``/``.mov``/``.mkv`` →
    H.264 yuv420p; a folder name (no suffix) → ``frame_000000.png``… plus ``video.json`` (fps,
    rotation). ``audio_from``: a file whose first audio stream is copied through (MP4 only; a PNG
    sequence has no audio and ``video.json`` says so). ``provenance`` (generated video): its facts
    go into the container's ``comment`` tag (a PNG sequence: each frame's XMP and ``video.json``)
    and, when it asks for one, the invisible watermark into every frame."""

    def __init__(self, path: str | Path, fps: Fraction | float, *, rotation: int = 0, audio_from: str | Path | None = None,
                 crf: int = 18, preset: str = "medium", provenance=None) -> None:
        self.path = Path(path)
        self.provenance = provenance
        self.fps = Fraction(fps).limit_denominator(1001 * 1000)
        self.rotation, self.crf, self.preset = int(rotation) % 360, crf, preset
        self.audio_from = audio_from
        self.sequence = is_image_sequence(self.path)
        self.tmp = part_path(self.path)
        self.count = 0
        self.audio_packets = 0
        self._container = self._stream = None
        self._audio_in = self._audio_out = self._audio_iter = self._pending = None
        self._resampler = None
        self.size: tuple[int, int] | None = None  # (width, height) of the frames given
        self._cleanup_tmp()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.sequence:
            self.tmp.mkdir(parents=True)

    # -- helpers -------------------------------------------------------------------------------------

    def _cleanup_tmp(self) -> None:
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp)
        elif self.tmp.exists():
            self.tmp.unlink()

    def _start(self, width: int, height: int) -> None:
        import av

        self.size = (width, height)
        if self.sequence:
            return
        try:
            self._container = av.open(str(self.tmp), mode="w", format=_muxer(self.path))
            if self.provenance is not None:
                self._container.metadata.update(self.provenance.video_metadata())
            s = self._container.add_stream("libx264", rate=self.fps)
            s.width, s.height = width + width % 2, height + height % 2
            s.pix_fmt = "yuv420p"
            s.options = {"crf": str(self.crf), "preset": self.preset}
            if self.rotation:
                s.set_display_rotation(self.rotation)
            self._stream = s
            if self.audio_from is not None:
                self._open_audio()
        except _ffmpeg_errors() as exc:
            raise VideoError(f"cannot write {self.path}: {_short(exc)}") from None

    def _open_audio(self) -> None:
        import av

        src = av.open(str(self.audio_from))
        if not src.streams.audio:
            src.close()
            return
        ain = src.streams.audio[0]
        self._audio_in = src
        if ain.codec_context.name in MP4_AUDIO_COPY:
            self._audio_out = self._container.add_stream_from_template(ain)
            self._audio_iter = (p for p in src.demux(ain) if p.pts is not None and p.size)
        else:  # e.g. PCM from AVI/WAV, Vorbis: re-encode to AAC
            rate = ain.codec_context.sample_rate or 44100
            channels = ain.codec_context.channels or 2
            layout = {1: "mono", 2: "stereo"}.get(channels) or ain.codec_context.layout.name
            self._audio_out = self._container.add_stream("aac", rate=rate, layout=layout)
            self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            self._audio_iter = self._transcoded(src, ain)
        self._pending = next(self._audio_iter, None)

    def _transcoded(self, src, ain):
        for frame in src.decode(ain):
            frame.pts = None
            for rf in self._resampler.resample(frame):
                yield from self._audio_out.encode(rf)
        for rf in self._resampler.resample(None):
            yield from self._audio_out.encode(rf)
        yield from self._audio_out.encode(None)

    def _mux_audio_until(self, t: float | None) -> None:
        """Mux source audio packets up to time ``t`` seconds (None: all the rest): interleaved with
        the video as it is written, so nothing piles up in memory."""
        while self._pending is not None:
            pkt = self._pending
            if t is not None and pkt.pts is not None and pkt.time_base is not None and float(pkt.pts * pkt.time_base) > t:
                return
            pkt.stream = self._audio_out
            self._container.mux(pkt)
            self.audio_packets += 1
            self._pending = next(self._audio_iter, None)

    # -- API -------------------------------------------------------------------------------------------

    def write(self, frame: np.ndarray) -> None:
        import av

        if frame.dtype != np.uint8:
            frame = (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise VideoError(f"frames must be H×W×3 RGB, got shape {frame.shape}")
        h, w = frame.shape[:2]
        if self.size is None:
            self._start(w, h)
        elif self.size != (w, h):
            raise VideoError(f"frame {self.count} is {w}x{h}, earlier frames were {self.size[0]}x{self.size[1]}")
        if self.provenance is not None and self.provenance.watermark:
            from ..watermark import embed

            frame = embed(frame)
        if self.sequence:
            from PIL import Image

            info = {} if self.provenance is None else self.provenance.save_kwargs("PNG")
            Image.fromarray(frame).save(self.tmp / f"frame_{self.count:06d}.png", compress_level=1, **info)
        else:
            if w % 2 or h % 2:
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts = self.count
            vf.time_base = 1 / self.fps
            try:
                for packet in self._stream.encode(vf):
                    self._container.mux(packet)
                if self._audio_iter is not None:
                    self._mux_audio_until((self.count + 1) / float(self.fps) + 0.5)
            except _ffmpeg_errors() as exc:
                raise VideoError(f"cannot write {self.path}: {_short(exc)}") from None
        self.count += 1

    def close(self) -> Path:
        """Finish the file and move it to its final name."""
        if self.count == 0:
            self.abort()
            raise VideoError(f"no frames to write to {self.path}")
        if self.sequence:
            meta = {"fps": float(self.fps), "fps_fraction": str(self.fps), "frames": self.count,
                    "rotation": self.rotation, "audio": "not kept (a PNG sequence has no audio track)"}
            if self.provenance is not None:
                meta["provenance"] = self.provenance.facts()
            (self.tmp / "video.json").write_text(json.dumps(meta, indent=2) + "\n")
        else:
            try:
                for packet in self._stream.encode():
                    self._container.mux(packet)
                if self._audio_iter is not None:
                    self._mux_audio_until(None)
                self._container.close()
            except _ffmpeg_errors() as exc:
                self.abort()
                raise VideoError(f"cannot write {self.path}: {_short(exc)}") from None
            finally:
                if self._audio_in is not None:
                    self._audio_in.close()
        if self.path.is_dir():
            shutil.rmtree(self.path)
        self.tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        """Drop a partial output."""
        for c in (self._container, self._audio_in):
            try:
                if c is not None:
                    c.close()
            except Exception:  # noqa: BLE001 - best effort on an error path
                pass
        self._container = self._audio_in = None
        self._cleanup_tmp()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _muxer(path: Path) -> str:
    return {".mov": "mov", ".mkv": "matroska", ".webm": "matroska"}.get(path.suffix.lower(), "mp4")


def read_sequence_info(folder: str | Path) -> dict:
    f = Path(folder) / "video.json"
    return json.loads(f.read_text()) if f.is_file() else {}


__all__ = ["VideoError", "VideoInfo", "VideoWriter", "iter_frames", "probe", "is_image_sequence", "part_path",
           "read_sequence_info", "MP4_AUDIO_COPY"]
