"""``POST /v1/stylize``: restyle one content image and answer the image."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from ..specs import stylize_spec
from ..state import Svc
from ..work import submit_stylize
from .common import off_loop, run_now

router = APIRouter()

IMG_RESPONSES = {200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "the stylised image"},
                 413: {"description": "upload too large"}, 415: {"description": "not an image type we accept"},
                 422: {"description": "bad parameters"}, 503: {"description": "queue full or model unavailable"},
                 504: {"description": "request timeout"}}


@router.post("/v1/stylize", tags=["style"], summary="restyle a content image", responses=IMG_RESPONSES,
             response_class=Response)
async def stylize(s: Svc, request: Request,
                  content: Annotated[UploadFile, File(description="content image (PNG/JPEG/WebP/BMP)")],
                  style: Annotated[list[UploadFile], File(description="style image(s); repeat the field")],
                  style_weights: Annotated[str | None, Form(description="comma-separated weights, one per style")] = None,
                  alpha: Annotated[float, Form(description="0 = content, 1 = full style")] = 1.0,
                  preserve_color: Annotated[str, Form(description="none, luminance, luminance-ycbcr, match (true = luminance)")] = "none",
                  method: Annotated[str, Form(description="adain, wct or gatys")] = "adain",
                  max_size: Annotated[int | None, Form(description="processing size (long side); default 512")] = None,
                  mask: Annotated[UploadFile | None, File(description="optional mask: style 1 inside, style 2 outside")] = None,
                  format: Annotated[str, Form(description="png or jpeg")] = "png",
                  iterations: Annotated[int | None, Form(description="gatys iterations")] = None) -> Response:
    spec = await off_loop(stylize_spec, s, content, style, style_weights, alpha, preserve_color, method, max_size,
                          mask, format, iterations)
    return await run_now(s, submit_stylize(s, spec), request)
