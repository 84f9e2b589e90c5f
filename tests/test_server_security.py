"""``ganforge serve`` exposed to a network (issue 22): no symlink followed out of ``--runs``, no
filesystem path in any answer, server faults as 500 with an error id that the log line carries,
the API key, the Host allow-list, cross-origin writes, the rate limit, the body read timeout,
booleans refused as numbers, ``--host`` beyond loopback refused without a key, and a bounded fuzz
of the API (hypothesis): no 500, no traceback, no path."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("multipart", reason="the serve extra (python-multipart) is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from ganforge.server import ServerConfig, create_app  # noqa: E402
from ganforge.server.config import LOOPBACK_HOSTS  # noqa: E402
from ganforge.server.middleware import RateLimiter  # noqa: E402
from server_fixtures import image_bytes, make_gan_run, make_style_weights, smooth_image, stop_server  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

KEY = "k" * 8 + "-test-key-1234567890"
AUTH = {"Authorization": f"Bearer {KEY}"}
SECRET = b"root:x:0:0:secret-line"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    enc, dec = make_style_weights(root / "weights")
    run = make_gan_run(root / "runs", "r1")
    outside = root / "outside"
    outside.mkdir()
    (outside / "passwd").write_bytes(SECRET)
    (outside / "summary.json").write_text(json.dumps({"secret": SECRET.decode()}))
    # r2: its shown files are links out of the folder; r3: a link inside it; r4: corrupt config;
    # r5: a checkpoint linked out of the folder; r6: every checkpoint truncated (fails only when loaded)
    for name in ("r2", "r3", "r4", "r5", "r6"):
        shutil.copytree(run, root / "runs" / name, symlinks=True)
    r2 = root / "runs" / "r2"
    (r2 / "samples" / "latest.png").unlink()
    os.symlink(outside / "passwd", r2 / "samples" / "latest.png")
    (r2 / "summary.json").unlink()
    os.symlink(outside / "summary.json", r2 / "summary.json")
    r3 = root / "runs" / "r3"
    (r3 / "samples" / "latest.png").unlink()
    os.symlink(run / "samples" / "latest.png", r3 / "samples" / "latest.png")
    (root / "runs" / "r4" / "config.json").write_text("{ not json")
    r5 = root / "runs" / "r5" / "checkpoints"
    step = sorted(p for p in r5.iterdir() if p.name.startswith("step-"))[-1]
    moved = outside / "ckpt"
    shutil.move(str(step), moved)
    os.symlink(moved, step)
    for weights in (root / "runs" / "r6" / "checkpoints").glob("step-*/weights.safetensors"):
        weights.write_bytes(weights.read_bytes()[:100])
    # summary.json of r1 names the server's folders
    summary = json.loads((run / "summary.json").read_text())
    summary.update(data_dir=str(root / "data"), cache={"dir": str(root / "cache"), "note": f"at {root}/x/y"})
    (run / "summary.json").write_text(json.dumps(summary))
    return root, enc, dec


def _config(setup, **kw) -> ServerConfig:
    root, enc, dec = setup
    base = dict(runs=[root / "runs"], encoder=str(enc), decoder=str(dec), max_size=128, default_max_size=32)
    return ServerConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def client(setup):
    with TestClient(create_app(_config(setup)), raise_server_exceptions=False) as c:
        yield c


def _no_path(resp, root: Path) -> None:
    text = resp.text
    for leak in (str(root), str(root.resolve()), "/tmp", "Traceback", 'File "'):
        assert leak not in text, (leak, text[:400])


# -- files --------------------------------------------------------------------------------------------

def test_symlinks_out_of_runs_are_not_followed(client, setup):
    root = setup[0]
    resp = client.get("/v1/runs/r2/samples.png")
    assert resp.status_code == 404 and SECRET not in resp.content, resp.text
    summary = client.get("/v1/runs/r2/summary")
    assert summary.status_code == 200 and summary.json()["summary"] is None
    assert b"secret" not in summary.content
    run = next(r for r in client.get("/v1/models").json()["runs"] if r["name"] == "r2")
    assert run["samples"] is None  # not offered either
    # a link that stays inside the runs folder is followed
    inside = client.get("/v1/runs/r3/samples.png")
    assert inside.status_code == 200 and inside.content.startswith(b"\x89PNG")
    for r in (resp, summary, inside):
        _no_path(r, root)


@pytest.mark.filterwarnings("ignore:skipping checkpoint")  # r6's truncated checkpoints, reported on loading
def test_checkpoint_linked_out_and_corrupt_config_are_server_faults_with_an_id(client, setup, caplog):
    root = setup[0]
    for run in ("r5", "r4", "r6"):
        with caplog.at_level(logging.ERROR, logger="ganforge.server"):
            resp = client.post("/v1/generate", json={"run": run, "n": 1})
        assert resp.status_code == 500, resp.text
        body = resp.json()
        assert re.fullmatch(r"[0-9a-f]{12}", body["error_id"]) and body["error_id"] in body["error"]
        assert f"error id {body['error_id']}" in caplog.text  # the log line an operator can grep
        _no_path(resp, root)


def test_no_path_in_health_summary_or_errors(client, setup):
    root = setup[0]
    assert client.post("/v1/generate", json={"run": "r1", "n": 1}).status_code == 200  # a run in the cache
    health = client.get("/healthz")
    assert any(e.startswith("run r1") for e in health.json()["cache"]["entries"])
    summary = client.get("/v1/runs/r1/summary")
    assert summary.json()["summary"]["data_dir"] == "…/data"
    errors = [client.post("/v1/generate", json={"run": "nope"}), client.get("/v1/runs/r9/summary"),
              client.post("/v1/stylize", files=[("content", ("c.png", b"junk", "image/png")),
                                                ("style", ("s.png", b"junk", "image/png"))])]
    for resp in [health, summary, client.get("/v1/models"), *errors]:
        _no_path(resp, root)


def test_unexpected_error_is_500_with_id_in_log_and_no_path(setup, monkeypatch, caplog):
    from ganforge.server.routes import health

    def boom(service):
        raise RuntimeError(f"failed reading {setup[0]}/weights/secret.bin")

    monkeypatch.setattr(health, "method_status", boom)
    with TestClient(create_app(_config(setup)), raise_server_exceptions=False) as c:
        with caplog.at_level(logging.ERROR, logger="ganforge.server"):
            resp = c.get("/v1/models")
    assert resp.status_code == 500
    error_id = resp.json()["error_id"]
    assert f"error id {error_id}" in caplog.text and "RuntimeError" in caplog.text
    _no_path(resp, setup[0])


def test_booleans_are_not_numbers(client):
    for body in ({"run": "r1", "class": True}, {"run": "r1", "n": True}, {"run": "r1", "seed": False},
                 {"run": "r1", "truncation": True}):
        resp = client.post("/v1/generate", json=body)
        assert resp.status_code == 422, (body, resp.text)


# -- exposure -----------------------------------------------------------------------------------------

def test_api_key_guards_v1_and_leaves_page_and_health_open(setup):
    with TestClient(create_app(_config(setup, api_key=KEY)), raise_server_exceptions=False) as c:
        for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": KEY}):
            resp = c.get("/v1/models", headers=headers)
            assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer", resp.text
        assert c.post("/v1/generate", json={"run": "r1", "n": 1}).status_code == 401
        assert c.get("/v1/runs/r1/samples.png").status_code == 401
        assert c.get("/v1/models", headers=AUTH).status_code == 200
        assert c.post("/v1/generate", json={"run": "r1", "n": 1}, headers=AUTH).status_code == 200
        assert c.get("/").status_code == 200 and c.get("/static/app.js").status_code == 200
        assert c.get("/openapi.json").status_code == 200
        assert c.get("/healthz").json() == {"status": "ok", "version": c.get("/healthz").json()["version"]}
        assert "queue" in c.get("/healthz", headers=AUTH).json()


def test_host_header_allow_list(setup):
    app = create_app(_config(setup, allowed_hosts=LOOPBACK_HOSTS + ("gan.example.org",)))
    with TestClient(app, base_url="http://localhost:7860") as c:
        assert c.get("/healthz").status_code == 200
        for host in ("127.0.0.1:7860", "[::1]:7860", "localhost", "GAN.example.org", "gan.example.org:443"):
            assert c.get("/v1/models", headers={"Host": host}).status_code == 200, host
        for host in ("evil.example", "evil.example:7860", "127.0.0.1.evil.example", ""):
            resp = c.get("/healthz", headers={"Host": host})
            assert resp.status_code == 400 and resp.json()["error"], host


def test_cross_origin_writes_need_the_key(setup):
    for key in (None, KEY):
        with TestClient(create_app(_config(setup, api_key=key)), base_url="http://localhost:7860") as c:
            auth = AUTH if key else {}
            body = {"run": "r1", "n": 1}
            for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                            {"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://localhost:7861"}):
                resp = c.post("/v1/generate", json=body, headers={**headers, **({"Authorization": "Bearer x" * 3}
                                                                                   if key else {})})
                assert resp.status_code in (401, 403), (headers, resp.status_code)
                if not key:
                    assert resp.status_code == 403
                    assert c.post("/v1/jobs", data={"task": "generate", "run": "r1"},
                                  headers=headers).status_code == 403
            same = c.post("/v1/generate", json=body, headers={"Origin": "http://localhost:7860",
                                                              "Sec-Fetch-Site": "same-origin", **auth})
            assert same.status_code == 200, same.text
            if key:  # with the key, another origin may write (the key is the authority)
                other = c.post("/v1/generate", json=body, headers={"Origin": "http://evil.example", **AUTH})
                assert other.status_code == 200
            assert c.get("/healthz", headers={"Origin": "http://evil.example"}).status_code == 200  # reads: CORS


def test_rate_limit_is_429_with_retry_after(setup):
    bucket = RateLimiter(rate=2.0, burst=2.0)
    assert [bucket.take("a", now=0.0) for _ in range(2)] == [0.0, 0.0]
    assert bucket.take("a", now=0.0) == pytest.approx(0.5) and bucket.take("b", now=0.0) == 0.0
    assert bucket.take("a", now=0.6) == 0.0
    with TestClient(create_app(_config(setup, rate_limit=1.0, rate_burst=3))) as c:
        codes = [c.get("/healthz") for _ in range(5)]
        assert [r.status_code for r in codes[:3]] == [200, 200, 200]
        assert codes[3].status_code == 429 and int(codes[3].headers["retry-after"]) >= 1
        assert "too many requests" in codes[3].json()["error"]


def test_stalled_body_is_cut_with_408(setup):
    app = create_app(_config(setup, read_timeout=0.3))
    sent: list[dict] = []

    async def drive():
        chunks = [{"type": "http.request", "body": b"--x\r\n", "more_body": True}]

        async def receive():
            if chunks:
                return chunks.pop(0)
            await asyncio.sleep(3600)  # the client stalls

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/jobs", "raw_path": b"/v1/jobs", "query_string": b"",
                 "root_path": "", "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 7860),
                 "headers": [(b"host", b"127.0.0.1:7860"), (b"content-length", b"1000"),
                             (b"content-type", b"multipart/form-data; boundary=x")]}
        await asyncio.wait_for(app(scope, receive, send), 10)

    asyncio.run(drive())
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 408, sent
    assert b"stalled" in b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_serve_beyond_loopback_needs_a_key(capsys, monkeypatch):
    from ganforge.cli import main
    from ganforge.cli.serve import allowed_hosts, is_loopback, parse_rate

    monkeypatch.delenv("GANFORGE_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "API key" in err and "Traceback" not in err
    monkeypatch.setenv("GANFORGE_API_KEY", "short")
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "at least 16" in capsys.readouterr().err
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.org")
    assert parse_rate("20/s") == 20 and parse_rate("120/min") == 2 and parse_rate("0") == 0
    assert "gan.example.org" in allowed_hosts("127.0.0.1", ["gan.example.org"])
    assert "10.0.0.5" in allowed_hosts("10.0.0.5", [])


# -- fuzz ---------------------------------------------------------------------------------------------

def test_fuzz_api_no_500_no_traceback_no_path(client, setup):
    hypothesis = pytest.importorskip("hypothesis", reason="hypothesis (dev extra) is not installed")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    root = setup[0]
    png = image_bytes(smooth_image(4, 12, 12))
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
                        st.text(max_size=20), st.sampled_from(["r1", "r2", "r3", "adain", "gatys", "png", "zip"]))
    json_bodies = st.one_of(st.dictionaries(st.sampled_from(["run", "n", "seed", "class", "truncation", "format", "x"]),
                                            scalars, max_size=6),
                            st.lists(scalars, max_size=3), scalars)
    form_values = st.one_of(st.text(max_size=12), st.sampled_from(["stylize", "generate", "r1", "-1", "1e309",
                                                                    "nan", "true", "0.5", "9999999"]))
    forms = st.dictionaries(st.sampled_from(["task", "run", "n", "seed", "class", "alpha", "max_size", "method",
                                             "preserve_color", "style_weights", "format", "iterations",
                                             "truncation"]), form_values, max_size=7)
    files = st.lists(st.tuples(st.sampled_from(["content", "style", "mask", "other"]),
                               st.one_of(st.just(png), st.binary(max_size=64))), max_size=3)
    segment = st.text(st.characters(codec="ascii", min_codepoint=32, max_codepoint=126, exclude_characters="/?#%"),
                      max_size=12)
    requests = st.one_of(
        st.tuples(st.just("json"), st.sampled_from(["/v1/generate", "/v1/jobs", "/v1/stylize"]), json_bodies),
        st.tuples(st.just("form"), st.sampled_from(["/v1/jobs", "/v1/stylize", "/v1/generate"]),
                  st.tuples(forms, files)),
        st.tuples(st.just("get"), st.sampled_from(["/v1/runs/{}/summary", "/v1/runs/{}/samples.png",
                                                   "/v1/jobs/{}", "/v1/jobs/{}/result", "/{}", "/v1/{}"]), segment),
        st.tuples(st.just("delete"), st.sampled_from(["/v1/jobs/{}", "/healthz"]), segment))

    @settings(max_examples=250, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(requests)
    def one(req):
        kind, path, payload = req
        if kind == "json":
            body = json.dumps(payload)
            if "/tmp" in body:
                return
            resp = client.post(path, content=body, headers={"content-type": "application/json"})
        elif kind == "form":
            data, fs = payload
            if n := data.get("n"):
                data = {**data, "n": n[:1]}  # keep generation small
            resp = client.post(path, data=data, files=[(k, ("f", v, "image/png")) for k, v in fs] or None)
        else:
            resp = client.request(kind.upper(), path.format(payload))
        assert resp.status_code < 500 or resp.status_code in (503, 504), (req, resp.status_code, resp.text[:300])
        _no_path(resp, root)

    assert hypothesis.__version__
    one()


# -- the real server ----------------------------------------------------------------------------------

def test_real_server_with_key_host_check_stalled_body_and_the_page(setup, tmp_path):
    """``ganforge serve`` with GANFORGE_API_KEY on a free loopback port: the key over real sockets,
    a foreign Host, a stalled upload cut with 408, and (when Playwright and Chromium are here) the
    page asking for the key, then generating with it."""
    import shutil as sh
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    root, enc, dec = setup
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANFORGE_API_KEY": KEY}
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "ganforge", "serve", "--port", str(port), "--runs",
                             str(root / "runs" / "r1"), "--encoder", str(enc), "--decoder", str(dec),
                             "--read-timeout", "1", "--quiet"], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"

    def get(path, headers=None):
        try:
            with urllib.request.urlopen(urllib.request.Request(url + path, headers=headers or {}), timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    try:
        for _ in range(240):
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            try:
                if get("/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.25)
        assert get("/v1/models")[0] == 401 and get("/v1/models", AUTH)[0] == 200
        assert get("/healthz", {"Host": "evil.example"})[0] == 400
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {KEY}\r\n"
                         f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 5000\r\n\r\n"
                         f"--x\r\n".encode())
            t0 = time.monotonic()
            answer = sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert time.monotonic() - t0 < 8
        assert get("/healthz", AUTH)[0] == 200  # still serving

        chromium = os.environ.get("GANFORGE_CHROMIUM") or sh.which("chromium") or "/usr/bin/chromium"
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            return
        if not Path(chromium).is_file():
            return
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                         args=["--headless", "--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(url + "/")
                page.wait_for_selector("#key-row:not([hidden])", timeout=30_000)  # /v1/models answered 401
                page.fill("#api-key", KEY)
                page.dispatch_event("#api-key", "change")
                page.wait_for_selector("#gen-run option", state="attached", timeout=30_000)  # runs listed
                page.click("#tab-generate")
                page.fill("#gen-n", "4")
                page.click("#generate-btn")
                page.wait_for_selector("#gen-img:not([hidden])", timeout=60_000)
                assert page.text_content("#generate-error") == "" and not errors, errors
                page.click("#tab-runs")
                page.wait_for_selector(".run-card img:not([hidden])", timeout=30_000)
            finally:
                browser.close()
    finally:
        stop_server(proc, log)
