"""Issue 22, the job side of ``ganforge serve``: finished jobs drop their inputs and callables,
stored results are bounded by bytes, image decoding does not block the event loop (/healthz stays
fast during concurrent big-canvas uploads), a client that disconnects cancels its synchronous
request, ``DELETE /v1/jobs/{id}`` cancels queued and running jobs, and uploads are not spooled to a
temporary file. Random small weights, small or flat images: no assets."""

from __future__ import annotations

import asyncio
import gc
import io
import tempfile
import threading
import time
import weakref

import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("multipart", reason="the serve extra (python-multipart) is not installed")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from ganforge.server import ServerConfig, create_app  # noqa: E402
from ganforge.server.jobs import JobQueue, Result  # noqa: E402
from server_fixtures import image_bytes, make_style_weights, smooth_image  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

CONTENT = image_bytes(smooth_image(1, 40, 56))
STYLE = image_bytes(smooth_image(2, 48, 48))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_style_weights(tmp_path_factory.mktemp("server-jobs") / "weights")


def _config(weights, **kw) -> ServerConfig:
    enc, dec = weights
    return ServerConfig(**{**dict(encoder=str(enc), decoder=str(dec), max_size=256, default_max_size=64), **kw})


def _wait(cond, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def _flat_png(side: int, colour=(200, 120, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(buf, format="PNG")
    return buf.getvalue()


# -- memory: finished jobs keep only their answer -------------------------------------------------------

def test_finished_failed_and_cancelled_jobs_drop_their_inputs():
    queue = JobQueue(workers=1, max_queue=8)
    queue.start()
    refs, jobs = [], []
    try:
        release = threading.Event()

        def block(job):
            release.wait(30)
            return Result(b"x", "text/plain", "x")

        queue.submit("block", block, 60)  # keeps the next jobs queued until released

        def submit(kind):
            big = torch.zeros(1_000_000)  # 4 MB of "decoded input", held only by the job's closures
            refs.append(weakref.ref(big))

            def work(job, big=big):
                if kind == "fail":
                    raise RuntimeError("boom")
                return Result(b"r" * 10, "text/plain", "r")

            jobs.append(queue.submit(kind, work, 60, batch_item={"input": big}))

        for kind in ("ok", "fail", "ok"):
            submit(kind)
        queue.cancel(jobs[2])  # queued: ends now, its inputs dropped
        assert jobs[2].status == "cancelled"
        release.set()
        assert _wait(lambda: all(j.done for j in jobs))
        gc.collect()
        assert [j.status for j in jobs] == ["done", "failed", "cancelled"]
        assert all(r() is None for r in refs), "a finished job still references its inputs"
        assert all(j.fn is None and j.batch_item is None for j in jobs)
        assert jobs[0].result.body == b"r" * 10 and jobs[1].error[0] == 500
    finally:
        queue.stop()


def test_stored_results_are_bounded_by_bytes():
    queue = JobQueue(workers=1, max_queue=32, max_result_bytes=1000)
    queue.start()
    try:
        jobs = [queue.submit("r", lambda job, i=i: Result(bytes([i]) * 300, "x/y", "r"), 60) for i in range(10)]
        assert _wait(lambda: all(j.done for j in jobs))
        kept = queue.jobs()
        assert queue.result_bytes <= 1000 and len(kept) == 3
        assert kept == jobs[-3:]  # the oldest results were evicted first
        assert queue.stats()["evicted"] == 7
        assert jobs[0].result is not None  # a request still waiting on an evicted job gets its answer
    finally:
        queue.stop()


def test_app_jobs_drop_decoded_images(weights):
    with TestClient(create_app(_config(weights))) as c:
        files = [("content", ("c.png", CONTENT, "image/png")), ("style", ("s.png", STYLE, "image/png"))]
        ids = [c.post("/v1/jobs", files=files, data={"task": "stylize", "max_size": "32"}).json()["id"] for _ in range(3)]
        queue = c.app.state.service.queue
        assert _wait(lambda: all(queue.get(i).done for i in ids))
        for i in ids:
            job = queue.get(i)
            assert job.status == "done" and job.fn is None and job.batch_fn is None and job.batch_item is None
        live = [o for o in gc.get_objects() if type(o).__name__ == "StylizeSpec"]
        assert not live, "a finished request's spec (decoded images) is still alive"


# -- the event loop stays free while uploads are decoded --------------------------------------------------

def test_healthz_answers_fast_during_concurrent_big_decodes(weights):
    """Eight requests, each a few-KB 3000x3000 PNG as content, style and mask (decoded, then refused
    with 422 because a mask needs two styles: no model work); /healthz meanwhile answers in <= 0.1 s."""
    app = create_app(_config(weights))
    big = _flat_png(3000)
    files = [("content", ("c.png", big, "image/png")), ("style", ("s.png", big, "image/png")),
             ("mask", ("m.png", big, "image/png"))]

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            await c.get("/healthz")
            done_at: list[float] = []

            async def upload():
                r = await c.post("/v1/stylize", files=files)
                done_at.append(time.perf_counter())
                return r.status_code

            tasks = [asyncio.create_task(upload()) for _ in range(8)]
            await asyncio.sleep(0.05)
            lat = []
            while not all(t.done() for t in tasks) and len(lat) < 200:
                t0 = time.perf_counter()
                r = await c.get("/healthz")
                lat.append((time.perf_counter() - t0, t0))
                assert r.status_code == 200
                await asyncio.sleep(0.01)
            codes = await asyncio.gather(*tasks)
            return codes, lat, done_at

    try:
        codes, lat, done_at = asyncio.run(main())
    finally:
        app.state.service.queue.stop()
    assert codes == [422] * 8, codes
    during = [dt for dt, t0 in lat if t0 < max(done_at)]
    assert len(during) >= 5, "/healthz could not run while the uploads were decoded (the event loop was blocked)"
    during.sort()
    p95 = during[int(0.95 * (len(during) - 1))]
    print(f"/healthz during 8 decodes: {len(during)} probes, p95 {p95:.3f} s, max {during[-1]:.3f} s")
    # <= 0.1 s; the max gets slack for one scheduler hiccup on a shared 2-core machine (before the fix:
    # no probe answered until every decode was done, seconds)
    assert p95 <= 0.1 and during[-1] <= 0.5, during[-5:]


# -- cancellation ---------------------------------------------------------------------------------------

# Long Gatys jobs (5000 iterations: seconds even on a fast CPU), cancelled once their first
# iteration is done (progress past 0.1), so the test takes the same short time on any machine.
LONG_GATYS = {"method": "gatys", "iterations": "5000", "max_size": "64"}


def test_client_disconnect_cancels_a_synchronous_request(weights):
    app = create_app(_config(weights, gatys_max_iterations=5000))
    files = [("content", ("c.png", CONTENT, "image/png")), ("style", ("s.png", STYLE, "image/png"))]
    req = httpx.Request("POST", "http://127.0.0.1/v1/stylize", files=files,
                        data=LONG_GATYS)
    body = req.read()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/stylize", "raw_path": b"/v1/stylize", "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in req.headers.items()],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
    queue = app.state.service.queue
    sent: list[dict] = []

    def running():
        return [j for j in queue.jobs() if j.status == "running" and j.progress > 0.1]

    async def main():
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            if messages:
                return messages.pop(0)
            while not running():  # the client leaves once its Gatys job is optimising
                await asyncio.sleep(0.02)
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        t0 = time.perf_counter()
        await asyncio.wait_for(app(scope, receive, send), 120)
        return time.perf_counter() - t0

    try:
        asyncio.run(main())
        job = [j for j in queue.jobs() if j.kind == "stylize"][0]
        assert _wait(lambda: job.done, 30)
        assert job.status == "cancelled" and job.progress < 0.5, job.as_dict()
        assert job.fn is None and queue.stats()["active"] == 0
    finally:
        queue.stop()


def test_delete_cancels_queued_and_running_jobs(weights):
    app = create_app(_config(weights, gatys_max_iterations=5000))
    with TestClient(app) as c:
        queue = app.state.service.queue
        files = [("content", ("c.png", CONTENT, "image/png")), ("style", ("s.png", STYLE, "image/png"))]
        data = {"task": "stylize", **LONG_GATYS}
        first = c.post("/v1/jobs", files=files, data=data).json()["id"]
        second = c.post("/v1/jobs", files=files, data=data).json()["id"]
        assert _wait(lambda: queue.get(first).status == "running" and queue.get(first).progress > 0.1)
        # queued: cancelled at once, inputs dropped
        resp = c.delete(f"/v1/jobs/{second}")
        assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
        assert queue.get(second).fn is None and queue.stats()["queued"] == 0
        # running: stops at its next Gatys iteration
        resp = c.delete(f"/v1/jobs/{first}")
        assert resp.status_code in (200, 202)
        assert _wait(lambda: c.get(f"/v1/jobs/{first}").json()["status"] == "cancelled", 30)
        status = c.get(f"/v1/jobs/{first}").json()
        assert status["progress"] < 0.5 and queue.get(first).fn is None
        err = c.get(f"/v1/jobs/{first}/result")
        assert err.status_code >= 400 and "error" in err.json()
        assert c.delete("/v1/jobs/0123456789abcdef0123456789abcdef").status_code == 404


# -- uploads stay in memory ----------------------------------------------------------------------------

def test_uploads_over_1mb_are_not_spooled_to_a_file(weights, monkeypatch):
    """What `ganforge serve` sets for its process (importing the server changes nothing global)."""
    from starlette.formparsers import MultiPartParser

    from ganforge.server.routes.common import keep_uploads_in_memory

    assert MultiPartParser.spool_max_size == 1024 * 1024  # untouched by importing and creating apps
    monkeypatch.setattr(MultiPartParser, "spool_max_size", MultiPartParser.spool_max_size)  # restored after
    keep_uploads_in_memory()
    opened: list = []
    real = tempfile.TemporaryFile

    def spy(*args, **kwargs):
        opened.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", spy)
    noise = Image.frombytes("RGB", (800, 800), bytes(torch.randint(0, 256, (800 * 800 * 3,), dtype=torch.uint8).tolist()))
    big = image_bytes(noise)
    assert len(big) > 1.5 * 2**20
    with TestClient(create_app(_config(weights))) as c:
        files = [("content", ("c.png", big, "image/png")), ("style", ("s.png", big, "image/png"))]
        resp = c.post("/v1/jobs", files=files, data={"task": "stylize", "alpha": "5"})
        assert resp.status_code == 422  # parsed (both parts received), then refused: no model work
    assert not opened, "an upload was spooled to a temporary file"
