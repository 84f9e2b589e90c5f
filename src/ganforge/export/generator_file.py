"""A trained generator as one self-describing safetensors file (layout: docs/export.md).

The file holds one generator's ``state_dict`` under the architecture's own module names and, in
safetensors' string metadata, everything needed to rebuild it (format, arch, the
:class:`~ganforge.nets.GanNetSpec` fields, class names, ganforge version, training step) plus a
sha256 of the tensor bytes, so it can be shared, loaded without its run directory, and read with
plain ``safetensors`` by other tools. Nothing here is specific to an architecture: any registered
one is rebuilt from ``arch`` and the spec and loaded strictly.

This module is also the generator family's adapter for :mod:`ganforge.export.contract`
(``save_pretrained`` / ``from_pretrained``): importing it registers the ``generator`` family, which
reads both layouts (``ganforge.model`` and this module's older ``ganforge.generator``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from ..version import __version__
from ..errors import CheckpointError, GanforgeError
from ..generator import Generator
from ..nets import GanNetSpec, build_gan
from .container import MODEL_FORMAT, MODEL_FORMAT_VERSION, load_strict, read_checked, write_checked
from .contract import FAMILIES, Family

FORMAT = "ganforge.generator"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
# text_dim (text-to-image, issue 20) is left out: text runs are not exported to one file yet, and
# a file without it reads back as 0 (_spec keeps the default), so the format stays as it was
SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(GanNetSpec) if f.name != "text_dim")
# written only where not 0 (a file without it reads back as 0): exports of the paper's nets are unchanged
OPTIONAL_SPEC_FIELDS = ("resize_conv",)


def spec_values(spec: GanNetSpec) -> dict[str, int]:
    """The spec fields an export writes (both layouts): every SPEC_FIELDS entry, the optional ones
    only where not 0."""
    return {name: getattr(spec, name) for name in SPEC_FIELDS
            if name not in OPTIONAL_SPEC_FIELDS or getattr(spec, name)}
# published networks (ganforge.published): not a registered architecture; the file also holds the
# official Generator's init kwargs (JSON) under this key (``spec`` key in the ganforge.model layout)
OFFICIAL_ARCH, OFFICIAL_KEY = "stylegan2-official", "official_kwargs"


def export_metadata(gen, *, ema: bool = True) -> dict[str, str]:
    """The metadata strings of an export of ``gen`` (a :class:`ganforge.sample.Generator`),
    without the checksum."""
    if not gen.arch:
        raise GanforgeError("this generator does not know its architecture; load it with ganforge.load_generator")
    official = {OFFICIAL_KEY: json.dumps(gen.G_ema.init_kwargs)} if gen.arch == OFFICIAL_ARCH else {}
    return {"format": FORMAT, "format_version": str(FORMAT_VERSION), "arch": gen.arch,
            **{name: json.dumps(value) for name, value in spec_values(gen.spec).items()},
            "class_names": json.dumps(list(gen.class_names)), "ganforge_version": __version__,
            "step": str(int(gen.step)), "weights": "ema" if ema else "raw", **official}


def export_generator(gen, path: str | Path, *, ema: bool = True) -> dict[str, Any]:
    """Write ``gen``'s EMA generator (``ema=False``: the raw one) to ``path`` as one safetensors
    file, atomically (a temporary file renamed into place). Returns a summary with the metadata."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise GanforgeError(f"{path}: use a {SUFFIX} file name")
    if getattr(gen, "is_text", False):  # the file would lose the run's text encoder
        raise GanforgeError("a text-to-image run is not exported to one file yet; sample it from its run "
                            "directory (ganforge sample RUN --prompt ...)")
    net = gen.G_ema if ema else gen.G
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    meta = export_metadata(gen, ema=ema)
    blob = write_checked(tensors, meta, path)
    return {"output": str(path), "bytes": len(blob), "tensors": len(tensors), "metadata": meta}


def _foreign(path: Path, header: dict[str, Any]) -> str:
    if any(key.startswith("G_ema.") for key in header):
        return (f"{path} is a training checkpoint, not a generator export: pass its run "
                f"directory, or write an export with: ganforge export RUN --out FILE{SUFFIX}")
    return (f"{path} is not a ganforge generator export (its safetensors metadata has no "
            f"format={FORMAT!r}); write one with: ganforge export RUN --out FILE{SUFFIX}")


def read_export(path: str | Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a generator export, checked: a missing, truncated, corrupt or foreign
    file is a one-line :class:`~ganforge.errors.CheckpointError`."""
    return read_checked(path, {FORMAT: FORMAT_VERSION}, _foreign)


def _spec(meta: dict[str, str], path: Path) -> GanNetSpec:
    values: dict[str, Any] = {}
    for field in dataclasses.fields(GanNetSpec):
        if field.name not in meta:
            if field.default is dataclasses.MISSING:
                raise CheckpointError(f"{path}: metadata key {field.name!r} is missing")
            continue
        try:
            value = json.loads(meta[field.name])
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CheckpointError(f"{path}: metadata {field.name}={meta[field.name]!r} is not a non-negative integer")
        values[field.name] = value
    return GanNetSpec(**values)


def load_exported(path: str | Path):
    """A :class:`ganforge.sample.Generator` from a generator export (either layout): the network of
    the file's ``arch`` built for its spec, loaded strictly (every key, every shape). The file holds
    one generator, so ``G`` and ``G_ema`` are the same network; ``run_dir`` is the file."""
    path = Path(path)
    meta, tensors = read_checked(path, {FORMAT: FORMAT_VERSION, MODEL_FORMAT: MODEL_FORMAT_VERSION}, _foreign)
    if meta["format"] == MODEL_FORMAT:  # save_pretrained's layout (any family): it must hold a generator
        if meta.get("family") != "generator":
            raise CheckpointError(f"{path} holds a {meta.get('family')!r} model, not a generator; "
                                  "load it with ganforge.export.from_pretrained")
        try:
            spec = json.loads(meta.get("spec", ""))
        except ValueError:
            spec = None
        return _rebuild(meta.get("arch", ""), spec, tensors, meta, path)
    return _load_layout(meta, tensors, path)


def rebuild_generator(arch: str, spec: GanNetSpec, tensors: dict[str, torch.Tensor], meta: dict[str, str],
                      path: Path) -> Generator:
    """The :class:`Generator` of an ``arch`` network for ``spec`` loaded strictly from ``tensors``,
    with ``class_names`` and ``step`` from ``meta``."""
    if arch == OFFICIAL_ARCH:
        G = _official(meta.get(OFFICIAL_KEY), tensors, path)
        class_names, step = _class_names(meta, path)
        return Generator(G, G, spec, class_names, step, path, arch=arch)
    try:
        G, _ = build_gan(arch, spec)
    except GanforgeError as exc:  # an architecture this version does not have
        raise CheckpointError(f"{path}: {exc}") from None
    except Exception as exc:  # the arch refuses the spec (e.g. a resolution it cannot build)
        raise CheckpointError(f"{path}: cannot build a {arch} generator for {spec}: {exc}") from None
    load_strict(G, tensors, path, f"a {arch} generator for {spec}")
    class_names, step = _class_names(meta, path)
    return Generator(G, G, spec, class_names, step, path, arch=arch)


def _class_names(meta: dict[str, str], path: Path) -> tuple[list[str], int]:
    try:
        class_names = json.loads(meta.get("class_names", "[]"))
        step = int(meta.get("step", "0"))
    except ValueError:
        raise CheckpointError(f"{path}: metadata class_names must be a JSON list and step an integer") from None
    if not isinstance(class_names, list) or not all(isinstance(c, str) for c in class_names):
        raise CheckpointError(f"{path}: metadata class_names must be a JSON list of strings")
    return class_names, step


def _official(kwargs: Any, tensors: dict[str, torch.Tensor], path: Path) -> torch.nn.Module:
    """A published network's generator (official architecture) from its stored init kwargs."""
    from ..published.load import rebuild_official

    if isinstance(kwargs, str):
        try:
            kwargs = json.loads(kwargs)
        except ValueError:
            kwargs = None
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{path}: a {OFFICIAL_ARCH} export needs its {OFFICIAL_KEY} (a JSON object) in the metadata")
    try:
        return rebuild_official(kwargs, tensors, str(path))
    except GanforgeError as exc:
        raise CheckpointError(str(exc)) from None


# -- the generator family's adapter (ganforge.export.contract) -------------------------------------

def _parts(gen) -> tuple[str, dict[str, Any], torch.nn.Module]:
    if not gen.arch:
        raise GanforgeError("this generator does not know its architecture; load it with ganforge.load_generator")
    if gen.spec.text_dim:
        raise GanforgeError("a text-to-image generator cannot be saved to one file yet (its text encoder stays in the "
                            "run); use the run directory")
    official = {OFFICIAL_KEY: gen.G_ema.init_kwargs} if gen.arch == OFFICIAL_ARCH else {}
    spec = spec_values(gen.spec)
    return gen.arch, {**spec, **official}, gen.G_ema


def _rebuild(arch, spec, tensors, meta, path) -> Generator:
    """The ``ganforge.model`` layout: ``spec`` is the JSON object of the GanNetSpec fields (and,
    for a published network, its official init kwargs)."""
    if isinstance(spec, dict) and arch == OFFICIAL_ARCH:
        spec = dict(spec)
        meta = {**meta, OFFICIAL_KEY: spec.pop(OFFICIAL_KEY, None)}
    try:
        net_spec = GanNetSpec(**spec)
    except TypeError:
        raise CheckpointError(f"{path}: metadata spec {json.dumps(spec)} is not a GAN spec") from None
    return rebuild_generator(arch, net_spec, tensors, meta, path)


def _load_layout(meta, tensors, path) -> Generator:
    """The older ``ganforge.generator`` layout: one metadata key per GanNetSpec field."""
    return rebuild_generator(meta.get("arch", ""), _spec(meta, path), tensors, meta, path)


FAMILIES.register("generator", Family(
    lambda obj: isinstance(obj, Generator), _parts, _rebuild,
    lambda gen: {"class_names": json.dumps(list(gen.class_names)), "step": str(int(gen.step)), "weights": "ema"},
    layouts={FORMAT: FORMAT_VERSION}, load_layout=_load_layout))
