"""What the work routes share: waiting for a job and answering with its result."""

from __future__ import annotations

from fastapi.responses import Response

from ..errors import ApiError, error_response
from ..jobs import Job
from ..state import Service


async def run_now(service: Service, job: Job) -> Response:
    """Wait for ``job`` up to the request timeout (then cancel it: 504) and answer its result."""
    if not await job.wait(service.config.request_timeout):
        job.cancel()
        raise ApiError(504, f"the request took longer than {service.config.request_timeout:g} s; use POST /v1/jobs "
                            f"for long work")
    return job_response(job)


def job_response(job: Job) -> Response:
    if job.status == "done" and job.result is not None:
        return Response(job.result.body, media_type=job.result.media_type,
                        headers={"Content-Disposition": f'inline; filename="{job.result.filename}"',
                                 "X-Ganforge-Job": job.id})
    status, message = job.error or (500, "job failed")
    return error_response(status, message, job=job.id)
