"""The API's routes, one :class:`fastapi.APIRouter` per area, in the order the app includes them."""

from __future__ import annotations

from . import edit, generate, health, jobs, pages, runs, style

ROUTERS = (pages.router, health.router, runs.router, style.router, generate.router, edit.router, jobs.router)

__all__ = ["ROUTERS"]
