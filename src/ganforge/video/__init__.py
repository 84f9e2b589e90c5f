"""Video: streamed I/O (PyAV), optical flow and temporal consistency (OpenCV), the shared
read → per-frame op → temporal blend → write path, the warping-error flicker metric, and GAN
latent-walk videos. See docs/video.md."""

from .io import VideoError, VideoInfo, VideoWriter, iter_frames, probe

__all__ = ["VideoError", "VideoInfo", "VideoWriter", "iter_frames", "probe"]
