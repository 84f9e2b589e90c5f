"""``ganforge serve``: a REST API and a web page for style transfer and GAN sampling.

Requires the ``serve`` extra (FastAPI, uvicorn, python-multipart). :func:`create_app` builds the
app for a :class:`ServerConfig`; see :mod:`.app` for the endpoints.
"""

from __future__ import annotations

from .app import create_app
from .config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
