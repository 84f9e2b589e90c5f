"""``/v1/jobs``: submit long work (stylize or generate) and poll, fetch or cancel it by id."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse, Response

from ..errors import ApiError, error_response
from ..jobs import Job
from ..specs import generate_spec, stylize_spec
from ..state import Service, Svc
from ..work import submit_generate, submit_stylize
from .common import job_response, off_loop

router = APIRouter(tags=["jobs"])


@router.post("/v1/jobs", status_code=202, summary="submit a long job (stylize or generate)",
             description="Multipart form: `task` = stylize (the fields of POST /v1/stylize) or generate "
                         "(run, n, seed, class, truncation, format, prompt). Answers the job id; poll GET /v1/jobs/{id}.")
async def submit_job(s: Svc,
                     task: Annotated[Literal["stylize", "generate"], Form()],
                     content: Annotated[UploadFile | None, File()] = None,
                     style: Annotated[list[UploadFile] | None, File()] = None,
                     style_weights: Annotated[str | None, Form()] = None,
                     alpha: Annotated[float, Form()] = 1.0,
                     preserve_color: Annotated[str, Form()] = "none",
                     method: Annotated[str, Form()] = "adain",
                     max_size: Annotated[int | None, Form()] = None,
                     mask: Annotated[UploadFile | None, File()] = None,
                     format: Annotated[str | None, Form()] = None,
                     iterations: Annotated[int | None, Form()] = None,
                     run: Annotated[str | None, Form(max_length=128)] = None,
                     n: Annotated[int, Form()] = 16,
                     seed: Annotated[int, Form(ge=0, le=2**31 - 1)] = 0,
                     class_: Annotated[str | None, Form(alias="class")] = None,
                     truncation: Annotated[float, Form()] = 1.0,
                     prompt: Annotated[str | None, Form(max_length=1000)] = None) -> JSONResponse:
    if task == "stylize":
        spec = await off_loop(stylize_spec, s, content, style, style_weights, alpha, preserve_color, method,
                              max_size, mask, format or "png", iterations)
        job = submit_stylize(s, spec)
    else:
        job = submit_generate(s, generate_spec(s, run, n, seed, class_, truncation, format or "png", prompt))
    return JSONResponse(job.as_dict(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


def _job(s: Service, job_id: str) -> Job:
    job = s.queue.get(job_id) if len(job_id) == 32 and job_id.isalnum() else None
    if job is None:
        raise ApiError(404, f"unknown job {job_id!r} (finished jobs are kept {s.config.keep_results_s:g} s)")
    return job


@router.get("/v1/jobs/{job_id}", summary="a job's status and progress")
def job_status(job_id: str, s: Svc) -> dict[str, Any]:
    return _job(s, job_id).as_dict()


@router.get("/v1/jobs/{job_id}/result", summary="a finished job's image or ZIP", response_class=Response)
def job_result(job_id: str, s: Svc) -> Response:
    job = _job(s, job_id)
    if not job.done:
        return error_response(409, f"job {job.id} is {job.status} ({job.progress:.0%}); poll GET /v1/jobs/{job.id}",
                              {"Retry-After": "1"})
    return job_response(job)


@router.delete("/v1/jobs/{job_id}", summary="cancel a job",
               description="A queued job ends as cancelled at once (200); a running one stops at its next progress "
                           "point (202, poll GET /v1/jobs/{id}); a finished job is left as it is (200). A cancelled "
                           "job's inputs are dropped.")
def job_cancel(job_id: str, s: Svc) -> JSONResponse:
    job = _job(s, job_id)
    s.queue.cancel(job)
    return JSONResponse(job.as_dict(), status_code=200 if job.done else 202)
