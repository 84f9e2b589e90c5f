"""A served run's files: its latest sample grid, loss curves, and summary with the last log entry.
Files are resolved first (:meth:`RunInfo.file`): a symlink out of ``--runs`` is a 404; paths in the
summary and log entry are cut to their last component (:func:`~..errors.scrub_data`)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from ..errors import ApiError, scrub_data
from ..runs import RunInfo
from ..specs import find_run
from ..state import Svc

router = APIRouter(tags=["runs"])


def _file(info: RunInfo, which: str, name: str) -> Response:
    path = info.file(which)
    if path is None:
        raise ApiError(404, f"run {info.name!r} has no {name} yet")
    try:
        data = path.read_bytes()
    except OSError:
        raise ApiError(404, f"run {info.name!r} has no {name} yet") from None
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ApiError(404, f"run {info.name!r} has no {name} yet (not a PNG)")
    return Response(data, media_type="image/png", headers={"X-Content-Type-Options": "nosniff"})


@router.get("/v1/runs/{name}/samples.png", summary="the run's latest sample grid")
def run_samples(name: str, s: Svc) -> Response:
    return _file(find_run(s, name), "samples", "samples.png")


@router.get("/v1/runs/{name}/loss_curves.png", summary="the run's loss curves")
def run_curves(name: str, s: Svc) -> Response:
    return _file(find_run(s, name), "loss_curves", "loss_curves.png")


@router.get("/v1/runs/{name}/summary", summary="the run's summary, metrics and last log entry")
def run_summary(name: str, s: Svc) -> dict[str, Any]:
    info = find_run(s, name)
    out: dict[str, Any] = {"run": info.describe(), "summary": None, "last_log": None}
    dirs = s.runs.dirs()
    summary = info.file("summary")
    if summary is not None:
        try:
            data = json.loads(summary.read_text())
            # the server's own folders are not the client's business
            if isinstance(data, dict):
                data = {k: v for k, v in data.items() if k not in ("run_dir", "out", "path")}
            out["summary"] = scrub_data(data, dirs)
        except (OSError, ValueError):
            pass
    log_file = info.file("log")
    if log_file is not None:
        try:
            with open(log_file, "rb") as fh:
                fh.seek(max(0, log_file.stat().st_size - 65536))
                lines = [ln for ln in fh.read().splitlines() if ln.strip()]
            out["last_log"] = scrub_data(json.loads(lines[-1]), dirs) if lines else None
        except (OSError, ValueError):
            pass
    return out
