"""Editing over HTTP: ``POST /v1/edit`` (a served StyleGAN's sample moved along a direction) and the
``project`` job (an uploaded image projected into W/W+: its reconstruction, latent and figures).

Both run on the served W-space runs only (a DCGAN run is a one-line 422 naming the architectures
that can); the cached generator is never changed (no pivotal tuning here: it would retrain a model
other requests share; use ``ganforge project --pti-steps`` locally). Directions are the built-in
``sefa-K`` / ``pca-K`` names (optionally ``@A-B`` for a ws range).
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from . import images
from .errors import ApiError
from .jobs import Job, Result
from .runs import RunInfo
from .specs import NoBool, check_run_files, find_run, generate_spec, read_image
from .state import Service
from .work import generator

MAX_PROJECT_STEPS = 1000


class EditRequest(BaseModel):
    """Sample ``seed`` of a served StyleGAN run, moved ``strength`` along ``direction``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    run: str = Field(..., max_length=128, description="run name from GET /v1/models (a W-space model)")
    seed: Annotated[int, NoBool] = Field(0, ge=0, le=2**31 - 1)
    class_: Annotated[int | str | None, NoBool] = Field(None, alias="class",
                                                        description="class index or name (conditional runs)")
    direction: str = Field("sefa-0", max_length=32, description="sefa-K or pca-K, optionally @A-B (ws range)")
    strength: Annotated[float, NoBool] = Field(0.0, ge=-10, le=10, description="in standard deviations of W")
    truncation: Annotated[float, NoBool] = Field(1.0, gt=0, le=10, description="toward w_avg before editing")


@dataclass
class EditSpec:
    run: RunInfo
    seed: int
    label: int | None
    direction: str
    strength: float
    truncation: float

    def params(self) -> dict[str, Any]:
        return {"run": self.run.name, "seed": self.seed, "class": self.label, "direction": self.direction,
                "strength": self.strength, "truncation": self.truncation}


def edit_spec(service: Service, body: EditRequest) -> EditSpec:
    base = generate_spec(service, body.run, 1, body.seed, body.class_, body.truncation, "png")  # the shared checks
    if not math.isfinite(body.strength):
        raise ApiError(422, "strength must be a finite number")
    return EditSpec(base.run, base.seed, base.label, body.direction.strip(), float(body.strength), base.truncation)


def _w_space(service: Service, run: RunInfo):
    from ..editing.common import require_w_space

    entry = generator(service, run)
    require_w_space(entry.value)  # GanforgeError -> 422, naming the architectures that can
    return entry


def run_edit(service: Service, job: Job, spec: EditSpec) -> Result:
    import torch

    from ..editing.apply import apply_direction, render, resolve_direction
    from ..editing.directions import sample_w
    from ..imageio import tensor_to_pil

    job.report(0.05, "loading model")
    entry = _w_space(service, spec.run)
    gen = entry.value
    with entry.lock, torch.no_grad():
        job.report(0.2, "finding the direction")
        vector, scale, layers = resolve_direction(gen, spec.direction)
        w = sample_w(gen, 1, spec.seed, spec.label)
        w_avg = gen.w_avg.reshape(1, -1).to(w) if getattr(gen, "w_avg", None) is not None else w.mean(0, keepdim=True)
        w = w_avg + spec.truncation * (w - w_avg)
        from ..editing.common import num_ws

        ws = w[:, None].repeat(1, num_ws(gen), 1)
        job.report(0.6, "drawing")
        image = render(gen, apply_direction(ws, vector, scale, spec.strength, layers))[0]
    job.report(0.95, "encoding")
    params = {**spec.params(), "layers": list(layers), "checkpoint": f"step-{gen.step}"}
    body = images.encode(tensor_to_pil(image), "png", method="edit", params=params)
    return Result(body, "image/png", f"{spec.run.name}-seed{spec.seed}-{spec.direction}.png")


def submit_edit(service: Service, spec: EditSpec) -> Job:
    return service.submit("edit", lambda job: run_edit(service, job, spec))


@dataclass
class ProjectSpec:
    run: RunInfo
    image: Any  # PIL image (decoded, size-limited)
    steps: int
    space: str
    seed: int

    def params(self) -> dict[str, Any]:
        return {"run": self.run.name, "steps": self.steps, "space": self.space, "seed": self.seed}


async def project_spec(service: Service, run: str | None, image: Any, steps: int, space: str, seed: int) -> ProjectSpec:
    if not run:
        raise ApiError(422, "give a run name (see GET /v1/models)")
    info = find_run(service, run)
    if image is None:
        raise ApiError(422, "project needs an 'image' file")
    if any(isinstance(v, bool) for v in (steps, seed)) or not 1 <= steps <= MAX_PROJECT_STEPS:
        raise ApiError(422, f"steps must be a number between 1 and {MAX_PROJECT_STEPS}")
    if space not in ("w", "w+"):
        raise ApiError(422, "space must be w or w+")
    check_run_files(info)
    return ProjectSpec(info, await read_image(image, service, "image"), int(steps), space, int(seed))


def run_project(service: Service, job: Job, spec: ProjectSpec) -> Result:
    import numpy as np
    from safetensors.torch import save as save_tensors

    from ..editing.project import project
    from ..imageio import tensor_to_pil

    job.report(0.02, "loading model")
    entry = _w_space(service, spec.run)
    gen = entry.value

    def progress(step: int, loss: float) -> None:  # also where a cancelled or timed-out job stops
        job.report(0.05 + 0.85 * step / spec.steps, f"projecting (step {step}, loss {loss:.4g})")

    with entry.lock:
        result = project(gen, spec.image, steps=spec.steps, space=spec.space, pti_steps=0, seed=spec.seed,
                         frames=0, callback=progress)
    job.report(0.95, "encoding")
    params = {**spec.params(), "checkpoint": f"step-{gen.step}"}
    summary = {**result.summary(), **params}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("reconstruction.png", images.encode(tensor_to_pil(result.image[0]), "png",
                                                        method="project", params=params))
        zf.writestr("latent.safetensors", save_tensors({"ws": result.ws.contiguous().cpu()}))
        npz = io.BytesIO()
        np.savez(npz, w=result.ws.cpu().numpy())
        zf.writestr("latent.npz", npz.getvalue())
        zf.writestr("summary.json", json.dumps(summary, indent=2))
    return Result(buf.getvalue(), "application/zip", f"{spec.run.name}-projection.zip")


def submit_project(service: Service, spec: ProjectSpec) -> Job:
    return service.submit("project", lambda job: run_project(service, job, spec))
