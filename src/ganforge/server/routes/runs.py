"""A served run's files: its latest sample grid, loss curves, and summary with the last log entry."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from ..errors import ApiError
from ..runs import RunInfo
from ..specs import find_run
from ..state import Svc

router = APIRouter(tags=["runs"])


def _file(info: RunInfo, which: str) -> Response:
    path = info.files()[which]
    if not path.is_file():
        raise ApiError(404, f"run {info.name!r} has no {path.name} yet")
    return Response(path.read_bytes(), media_type="image/png")


@router.get("/v1/runs/{name}/samples.png", summary="the run's latest sample grid")
def run_samples(name: str, s: Svc) -> Response:
    return _file(find_run(s, name), "samples")


@router.get("/v1/runs/{name}/loss_curves.png", summary="the run's loss curves")
def run_curves(name: str, s: Svc) -> Response:
    return _file(find_run(s, name), "loss_curves")


@router.get("/v1/runs/{name}/summary", summary="the run's summary, metrics and last log entry")
def run_summary(name: str, s: Svc) -> dict[str, Any]:
    info = find_run(s, name)
    out: dict[str, Any] = {"run": info.describe(), "summary": None, "last_log": None}
    summary = info.files()["summary"]
    if summary.is_file():
        try:
            data = json.loads(summary.read_text())
            # the server's own folders are not the client's business
            out["summary"] = {k: v for k, v in data.items() if k not in ("run_dir", "out", "path")} \
                if isinstance(data, dict) else data
        except (OSError, ValueError):
            pass
    log_file = info.path / "log.jsonl"
    if log_file.is_file():
        try:
            with open(log_file, "rb") as fh:
                fh.seek(max(0, log_file.stat().st_size - 65536))
                lines = [ln for ln in fh.read().splitlines() if ln.strip()]
            out["last_log"] = json.loads(lines[-1]) if lines else None
        except (OSError, ValueError):
            pass
    return out
