"""Inputs and outputs of the per-image commands (``upscale``, ``inpaint``): files and folders in,
PNG files out, named after the inputs. No torch here (the CLI's start-up stays light)."""

from __future__ import annotations

from pathlib import Path


def image_inputs(items: list[str]) -> list[Path]:
    """Image files, and the images directly inside folders; a missing path or an empty folder is a
    one-line DataError."""
    from ..errors import DataError
    from ..imageio import is_image_file

    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p))
            if not found:
                raise DataError(f"no images in {path}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"input not found: {path}")
    return files


def png_outputs(files: list[Path], out: str, why_png: str) -> list[Path]:
    """One output per input: ``out`` itself when it is a .png and there is one input, else
    ``out/STEM.png`` (``STEM-2.png``… for repeated stems). Another image format is refused with
    ``why_png`` (e.g. a lossy format would change exact pixels)."""
    from ..errors import DataError
    from ..imageio import IMAGE_SUFFIXES

    target = Path(out)
    suffix = target.suffix.lower()
    if suffix == ".png":
        if len(files) != 1:
            raise DataError(f"--out {target} is one file but there are {len(files)} input images; give a folder")
        return [target]
    if suffix in IMAGE_SUFFIXES:
        raise DataError(f"{why_png}: give --out NAME.png or a folder, not {target.name}")
    names: dict[str, int] = {}
    outputs = []
    for f in files:
        n = names[f.stem] = names.get(f.stem, 0) + 1
        outputs.append(target / (f"{f.stem}.png" if n == 1 else f"{f.stem}-{n}.png"))
    return outputs
