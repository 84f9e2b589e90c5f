"""``POST /v1/generate``: samples of a served GAN run, as a PNG grid or a ZIP of PNGs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..specs import GenerateRequest, generate_spec
from ..state import Svc
from ..work import submit_generate
from .common import run_now

router = APIRouter()


@router.post("/v1/generate", tags=["generate"], summary="samples of a served GAN run (PNG grid or ZIP)",
             response_class=Response,
             responses={200: {"content": {"image/png": {}, "application/zip": {}}}, 404: {"description": "unknown run"},
                        422: {"description": "bad parameters"}, 503: {"description": "queue full"}})
async def generate(body: GenerateRequest, s: Svc, request: Request) -> Response:
    spec = generate_spec(s, body.run, body.n, body.seed, body.class_, body.truncation, body.format, body.prompt)
    return await run_now(s, submit_generate(s, spec), request)
