"""Request specs: the checked, decoded form of a stylise or generate request (:class:`StylizeSpec`,
:class:`GenerateSpec`), built from form fields or JSON by :func:`stylize_spec` / :func:`generate_spec`,
which answer every bad field with a one-line :class:`~.errors.ApiError`."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
from fastapi import UploadFile
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..errors import GanforgeError
from . import images
from .errors import ApiError
from .runs import RunInfo, inside

if TYPE_CHECKING:
    from .state import Service

METHODS = ("adain", "wct", "gatys")
COLOUR = {"none": "none", "false": "none", "0": "none", "off": "none", "": "none", "true": "luminance",
          "1": "luminance", "on": "luminance", "luminance": "luminance", "luminance-ycbcr": "luminance-ycbcr",
          "match": "match"}


@dataclass
class StylizeSpec:
    content: Any
    styles: list
    weights: list[float]
    alpha: float
    colour: str
    method: str
    max_size: int
    mask: Any
    fmt: str
    iterations: int | None

    def params(self) -> dict[str, Any]:
        return {"method": self.method, "alpha": self.alpha, "style_weights": self.weights, "colour": self.colour,
                "max_size": self.max_size, "styles": len(self.styles), "mask": self.mask is not None,
                **({"iterations": self.iterations} if self.iterations else {})}


@dataclass
class GenerateSpec:
    run: RunInfo
    n: int
    seed: int
    label: int | None
    truncation: float
    fmt: str
    prompt: str | None = None  # text-to-image runs

    def params(self) -> dict[str, Any]:
        return {"run": self.run.name, "n": self.n, "seed": self.seed, "class": self.label,
                "truncation": self.truncation, **({"prompt": self.prompt} if self.prompt is not None else {})}


def _not_bool(value: Any) -> Any:
    """JSON ``true``/``false`` are not numbers here (pydantic would take ``true`` as 1)."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number here")
    return value


NoBool = BeforeValidator(_not_bool)


MAX_PROMPT_CHARS = 1000  # a text run's prompt


class GenerateRequest(BaseModel):
    """Draw ``n`` samples from a served run (names as listed by GET /v1/models)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    run: str = Field(..., max_length=128, description="run name from GET /v1/models")
    n: Annotated[int, NoBool] = Field(16, ge=1, le=256,
                                      description="number of samples (the server caps it, default 64)")
    seed: Annotated[int, NoBool] = Field(0, ge=0, le=2**31 - 1)
    class_: Annotated[int | str | None, NoBool] = Field(None, alias="class",
                                                        description="class index or name (conditional runs)")
    truncation: Annotated[float, NoBool] = Field(1.0, gt=0, le=10, description="truncation of the latent (1: none)")
    format: Literal["png", "zip"] = Field("png", description="png: one grid; zip: one PNG per sample")
    prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS,
                               description="text-to-image runs (text: true in GET /v1/models): what to draw")


# -- parsing uploads ----------------------------------------------------------------------------------

async def read_image(upload: UploadFile, service: Service, what: str, mode: str = "RGB"):
    data = await upload.read(service.config.max_upload_bytes + 1)
    if len(data) > service.config.max_upload_bytes:
        raise ApiError(413, f"{what}: larger than the {service.config.max_upload_bytes:,}-byte upload limit")
    if not data:
        raise ApiError(422, f"{what}: empty upload")
    try:  # decoding is CPU work: off the event loop
        return await anyio.to_thread.run_sync(
            functools.partial(images.decode, data, max_pixels=service.config.max_pixels, what=what, mode=mode))
    except GanforgeError as exc:
        status = 413 if "limit" in str(exc) or "too large" in str(exc) else 415
        raise ApiError(status, str(exc)) from None


def uploads(value: Any) -> list[UploadFile]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [u for u in items if hasattr(u, "read") and (getattr(u, "filename", None) is not None or getattr(u, "size", 0))]


def find_run(service: Service, name: str) -> RunInfo:
    """The served run called ``name``, or 404."""
    info = service.runs.get(name)
    if info is None:
        raise ApiError(404, f"unknown run {name!r}; GET /v1/models lists the runs this server serves")
    return info


async def stylize_spec(service: Service, content: Any, style: Any, style_weights: str | None, alpha: float,
                       preserve_color: str, method: str, max_size: int | None, mask: Any, fmt: str,
                       iterations: int | None) -> StylizeSpec:
    cfg = service.config
    contents, styles, masks = uploads(content), uploads(style), uploads(mask)
    if len(contents) != 1:
        raise ApiError(422, "give exactly one content image (form field 'content')")
    if not styles:
        raise ApiError(422, "give at least one style image (form field 'style', repeat it for several)")
    if len(styles) > cfg.max_styles:
        raise ApiError(422, f"at most {cfg.max_styles} style images, got {len(styles)}")
    if method not in METHODS:
        raise ApiError(422, f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    colour = COLOUR.get(str(preserve_color).strip().lower())
    if colour is None:
        raise ApiError(422, "preserve_color must be none, luminance, luminance-ycbcr, match, true or false")
    if not (0.0 <= alpha <= 1.0) or math.isnan(alpha):
        raise ApiError(422, f"alpha must be in [0, 1], got {alpha}")
    size = cfg.default_max_size if max_size is None else max_size
    if not 16 <= size <= cfg.max_size:
        raise ApiError(422, f"max_size must be between 16 and {cfg.max_size}, got {size}")
    if style_weights:
        try:
            weights = [float(w) for w in style_weights.replace(";", ",").split(",") if w.strip()]
        except ValueError:
            raise ApiError(422, "style_weights must be numbers separated by commas, e.g. 0.7,0.3") from None
        if len(weights) != len(styles):
            raise ApiError(422, f"{len(weights)} style weights for {len(styles)} style images")
        if any(not (w >= 0 and math.isfinite(w)) for w in weights) or sum(weights) <= 0:
            raise ApiError(422, "style weights must be non-negative with a positive sum")
    else:
        weights = [1.0] * len(styles)
    total = sum(weights)
    weights = [w / total for w in weights]
    if iterations is not None and method != "gatys":
        raise ApiError(422, "iterations applies only to method=gatys")
    if iterations is not None and not 1 <= iterations <= cfg.gatys_max_iterations:
        raise ApiError(422, f"iterations must be between 1 and {cfg.gatys_max_iterations}")
    if fmt not in images.OUTPUT_FORMATS:
        raise ApiError(422, "format must be png or jpeg")
    content_img = await read_image(contents[0], service, "content")
    style_imgs = [await read_image(s, service, f"style {i + 1}") for i, s in enumerate(styles)]
    mask_img = await read_image(masks[0], service, "mask", mode="L") if masks else None
    if mask_img is not None and len(styles) < 2:
        raise ApiError(422, "a mask needs two style images (first inside the mask, second outside)")
    return StylizeSpec(content_img, style_imgs, weights, alpha, colour, method, size, mask_img, fmt,
                       iterations if method == "gatys" else None)


def check_run_files(info: RunInfo) -> None:
    """A run the model loader may read: its files stay inside ``--runs`` and its config reads.
    Anything else is the server's fault (500 with an error id in the log), not the client's."""
    from ..config import GanConfig
    from ..errors import GanforgeError

    if info.meta.get("published"):  # a published network named by the operator: no run files
        return
    bad = info.escapes()
    if bad:
        raise ApiError.fault(None, f"run {info.name!r}: files resolve outside the --runs folder: "
                                   f"{', '.join(bad[:5])}")
    config = inside(info.path / "config.json", info.jail)
    if config is None:
        raise ApiError.fault(None, f"run {info.name!r} has no config.json")
    try:
        GanConfig.load(config)
    except GanforgeError as exc:
        raise ApiError.fault(exc, f"run {info.name!r}: {exc}") from None


def generate_spec(service: Service, run: str | None, n: int, seed: int, label: Any, truncation: float,
                  fmt: str, prompt: str | None = None) -> GenerateSpec:
    if not run:
        raise ApiError(422, "give a run name (see GET /v1/models)")
    info = find_run(service, run)
    if any(isinstance(v, bool) for v in (n, seed, label, truncation)):
        raise ApiError(422, "n, seed, class and truncation are numbers (class may be a name), not booleans")
    if not 1 <= n <= service.config.max_n:
        raise ApiError(422, f"n must be between 1 and {service.config.max_n}")
    if not (0 < truncation <= 10) or math.isnan(truncation):
        raise ApiError(422, "truncation must be in (0, 10]")
    if fmt not in ("png", "zip"):
        raise ApiError(422, "format must be png or zip")
    num_classes = int(info.meta.get("spec", {}).get("num_classes") or 0)
    names = list(info.meta.get("class_names", []))
    if label is not None and str(label).strip() != "":
        if not num_classes:
            raise ApiError(422, f"run {info.name!r} is unconditional; leave 'class' empty")
        text = str(label).strip()
        if text in names:
            label = names.index(text)
        else:
            try:
                label = int(text)
            except ValueError:
                raise ApiError(422, f"class must be an index 0..{num_classes - 1} or one of {names}") from None
        if not 0 <= label < num_classes:
            raise ApiError(422, f"class must be in 0..{num_classes - 1}")
    else:
        label = None
    prompt = prompt.strip() if isinstance(prompt, str) and prompt.strip() else None
    is_text = bool(info.meta.get("text"))
    if prompt is not None and not is_text:
        raise ApiError(422, f"run {info.name!r} was not trained on text; leave 'prompt' empty")
    if is_text and prompt is None:
        raise ApiError(422, f"run {info.name!r} is a text-to-image run: give a 'prompt'")
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        raise ApiError(422, f"prompt: at most {MAX_PROMPT_CHARS} characters")
    check_run_files(info)
    return GenerateSpec(info, n, seed, label, float(truncation), fmt, prompt)
