"""Training data: one call, ``load_dataset(source, resolution=...)``, turns a built-in name
(``mnist``, ``mnist:test``, ``fashion-mnist``, ``digits``) or a folder of images into uint8
N×C×R×R tensors in memory, so the training loop never deals with files, modes or formats.

Built-in names win over folders of the same name; write ``./mnist`` to mean a folder. A prepared
dataset directory (``ganforge data prepare``, ``data/prepared.py``) loads too; training streams it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from .builtin import DATASETS, dataset_choices, dataset_names, parse_builtin
from .dataset import ImageDataset, check_channels
from .folder import load_folder

__all__ = ["ImageDataset", "load_dataset", "dataset_names", "dataset_choices"]


def load_dataset(source: str | os.PathLike, *, resolution: int, channels: int | None = None,
                 max_images: int | None = None, progress: bool = True) -> ImageDataset:
    """Load ``source`` at ``resolution``×``resolution``.

    - ``mnist[:train|:test]``, ``fashion-mnist[:train|:test]``: idx files from GANFORGE_DATA_DIR or
      the cache, sha256-checked, downloaded unless GANFORGE_OFFLINE=1; native 1 channel.
    - ``digits``: scikit-learn's 1797 8×8 digits (no download); native 1 channel.
    - a folder: images found recursively; immediate subfolders are classes (sorted by name);
      unreadable files are skipped with a warning; native channels = 1 only if every image is
      grayscale. Resize: shorter side to ``resolution``, bicubic, centre crop.

    ``channels`` 1 or 3 forces grayscale or RGB; ``max_images`` keeps the first N (sorted paths /
    dataset order). Raises ``DataError`` (one line) for anything the user can fix.
    """
    channels = check_channels(channels)
    text = os.fspath(source)
    builtin = None if isinstance(source, Path) else parse_builtin(text)
    if builtin is not None:
        name, split = builtin
        return DATASETS.get(name)(split, resolution, channels, max_images, progress)
    path = Path(text).expanduser()
    from .prepared import is_prepared

    if is_prepared(path):  # made by ``ganforge data prepare``: read back into memory
        from .prepared import open_training_data

        return open_training_data(path, resolution=resolution, channels=channels, max_images=max_images,
                                  progress=progress).to_image_dataset()
    if not path.exists():
        raise DataError(
            f"unknown dataset {text!r}: not a built-in one ({', '.join(dataset_choices())}) "
            f"and the path {path.resolve()} does not exist"
        )
    return load_folder(path, resolution=resolution, channels=channels, max_images=max_images, progress=progress)
