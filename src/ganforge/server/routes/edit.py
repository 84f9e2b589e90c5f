"""``POST /v1/edit`` (a sample of a served StyleGAN moved along a direction) and ``POST /v1/project``
(an uploaded image projected into a served StyleGAN: a job, polled through /v1/jobs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from ..editing import EditRequest, edit_spec, project_spec, submit_edit, submit_project
from ..state import Svc
from .common import off_loop, run_now

router = APIRouter(tags=["edit"])


@router.post("/v1/edit", summary="a sample of a served StyleGAN moved along a direction (PNG)",
             response_class=Response,
             responses={200: {"content": {"image/png": {}}}, 404: {"description": "unknown run"},
                        422: {"description": "bad parameters, or a model without a W space"}})
async def edit(body: EditRequest, s: Svc, request: Request) -> Response:
    return await run_now(s, submit_edit(s, edit_spec(s, body)), request)


@router.post("/v1/project", status_code=202, summary="project an image into a served StyleGAN (a job)",
             description="Multipart form: `run`, `image`, `steps` (1-1000, default 300), `space` (w or w+), "
                         "`seed`. Answers the job id; GET /v1/jobs/{id}/result gives a ZIP with "
                         "reconstruction.png, latent.safetensors, latent.npz and summary.json (PSNR, distance).")
async def project(s: Svc,
                  run: Annotated[str | None, Form(max_length=128)] = None,
                  image: Annotated[UploadFile | None, File()] = None,
                  steps: Annotated[int, Form()] = 300,
                  space: Annotated[str, Form(max_length=4)] = "w+",
                  seed: Annotated[int, Form(ge=0, le=2**31 - 1)] = 0) -> JSONResponse:
    spec = await off_loop(project_spec, s, run, image, steps, space, seed)
    job = submit_project(s, spec)
    return JSONResponse(job.as_dict(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})
