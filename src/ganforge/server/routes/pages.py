"""The web page: ``/`` and its script and style sheet, with a strict Content-Security-Policy."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

router = APIRouter()

SECURITY = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self' "
                                       "'unsafe-inline'; script-src 'self'; object-src 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _static(name: str) -> str:
    return resources.files("ganforge.server").joinpath("static", name).read_text(encoding="utf-8")


@router.get("/", include_in_schema=False)
def index() -> Response:
    return Response(_static("index.html"), media_type="text/html; charset=utf-8", headers=SECURITY)


@router.get("/static/app.js", include_in_schema=False)
def app_js() -> Response:
    return Response(_static("app.js"), media_type="text/javascript; charset=utf-8", headers=SECURITY)


@router.get("/static/app.css", include_in_schema=False)
def app_css() -> Response:
    return Response(_static("app.css"), media_type="text/css; charset=utf-8", headers=SECURITY)
