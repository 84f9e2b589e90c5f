"""The ganforge HTTP server: a JSON/HTTP API (OpenAPI at /docs, /openapi.json) and a web page (/).

Every model call goes through one bounded :class:`~.jobs.JobQueue` served by ``workers`` threads:
``POST /v1/stylize`` and ``POST /v1/generate`` submit a job and wait for it (up to
``request_timeout``); ``POST /v1/jobs`` submits the same work and returns its id at once, for
progress polling. A full queue answers 503 with Retry-After. Errors are JSON ``{"error": message}``,
never a stack trace.
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
import zipfile
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..errors import GanforgeError
from . import images
from .jobs import Cancelled, Job, JobQueue, QueueFull, Result
from .models import ModelCache, module_bytes
from .runs import RunIndex, RunInfo, load_ema_generator

log = logging.getLogger("ganforge.server")

METHODS = ("adain", "wct", "gatys")
COLOUR = {"none": "none", "false": "none", "0": "none", "off": "none", "": "none", "true": "luminance",
          "1": "luminance", "on": "luminance", "luminance": "luminance", "luminance-ycbcr": "luminance-ycbcr",
          "match": "match"}


@dataclass
class ServerConfig:
    runs: list[Path] = field(default_factory=list)
    device: str = "auto"
    precision: str = "auto"
    encoder: str | None = None  # style encoder name/path (default: the Stylizer's choice per method)
    decoder: str | None = None  # AdaIN/WCT decoder name/path (default: the official or packaged one)
    workers: int = 1
    max_queue: int = 16
    max_upload_bytes: int = 25 * 2**20  # the whole request body
    max_pixels: int = 16_000_000  # per uploaded image, checked before decoding
    max_size: int = 1024  # the largest processing size (long side) a client may ask for
    default_max_size: int = 512
    max_styles: int = 4
    max_n: int = 64
    gatys_max_iterations: int = 300
    request_timeout: float = 120.0
    job_timeout: float = 600.0
    cache_bytes: int = 2 * 2**30
    keep_results_s: float = 600.0
    # batching of same-size stylise requests into one forward pass (None: on for CUDA, off elsewhere)
    max_batch: int | None = None  # None: 8 on CUDA, 1 (off) elsewhere
    batch_window_ms: float | None = None  # how long a worker waits for more; None: 10 on CUDA, 0 elsewhere


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status, headers=headers)


# -- request specs ------------------------------------------------------------------------------------

@dataclass
class StylizeSpec:
    content: Any
    styles: list
    weights: list[float]
    alpha: float
    colour: str
    method: str
    max_size: int
    mask: Any
    fmt: str
    iterations: int | None

    def params(self) -> dict[str, Any]:
        return {"method": self.method, "alpha": self.alpha, "style_weights": self.weights, "colour": self.colour,
                "max_size": self.max_size, "styles": len(self.styles), "mask": self.mask is not None,
                **({"iterations": self.iterations} if self.iterations else {})}


@dataclass
class GenerateSpec:
    run: RunInfo
    n: int
    seed: int
    label: int | None
    truncation: float
    fmt: str

    def params(self) -> dict[str, Any]:
        return {"run": self.run.name, "n": self.n, "seed": self.seed, "class": self.label,
                "truncation": self.truncation}


class GenerateRequest(BaseModel):
    """Draw ``n`` samples from a served run (names as listed by GET /v1/models)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    run: str = Field(..., max_length=128, description="run name from GET /v1/models")
    n: int = Field(16, ge=1, le=256, description="number of samples (the server caps it, default 64)")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    class_: int | str | None = Field(None, alias="class", description="class index or name (conditional runs)")
    truncation: float = Field(1.0, gt=0, le=10, description="truncation of the latent (1: none)")
    format: Literal["png", "zip"] = Field("png", description="png: one grid; zip: one PNG per sample")


# -- the service: state shared by the routes ----------------------------------------------------------

class Service:
    def __init__(self, config: ServerConfig) -> None:
        from ..device import resolve_device, resolve_precision

        self.config = config
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.cache = ModelCache(config.cache_bytes)
        cuda = self.device.type == "cuda"
        max_batch = config.max_batch if config.max_batch is not None else (8 if cuda else 1)
        window_ms = config.batch_window_ms if config.batch_window_ms is not None else (10.0 if cuda else 0.0)
        self.queue = JobQueue(workers=config.workers, max_queue=config.max_queue, keep_s=config.keep_results_s,
                              max_jobs=max(64, 4 * (config.max_queue + config.workers)),
                              max_batch=max_batch, batch_window_s=window_ms / 1000.0)
        self.runs = RunIndex(config.runs)
        self.started = time.time()

    # models
    def stylizer(self, method: str):
        def build():
            from ..style import Stylizer

            kwargs: dict[str, Any] = {"encoder": self.config.encoder}
            if method != "gatys":
                kwargs["decoder"] = self.config.decoder
            st = Stylizer(method, device=self.device, precision=self.precision, **kwargs)
            nets = [st.encoder, st.decoders]  # load now: a missing file fails this request, not a later one
            return st, module_bytes(*nets)

        return self.cache.get(("stylizer", method), build)

    def generator(self, run: RunInfo):
        from .runs import latest_checkpoint_name

        key = ("run", run.name, str(run.path), latest_checkpoint_name(run.path))

        def build():
            gen, _ = load_ema_generator(run, self.device)
            return gen, module_bytes(gen.G_ema)

        return self.cache.get(key, build)

    def method_status(self) -> dict[str, dict[str, Any]]:
        from .. import weights as W
        from ..nets.vgg import pick_encoder
        from ..style.stylizer import default_adain_pair

        def have(name: str | None) -> bool:
            if not name:
                return False
            if Path(name).suffix and Path(name).is_file():
                return True
            try:
                return W.find(name) is not None
            except Exception:
                return False

        if self.config.decoder:
            enc, dec = self.config.encoder or "vgg-normalised-adain", self.config.decoder
        else:
            enc, dec = default_adain_pair()
            enc = self.config.encoder or enc
        ff = have(enc) and have(dec)
        gatys_enc = self.config.encoder or pick_encoder()
        out = {m: {"available": ff, "encoder": enc, "decoder": dec} for m in ("adain", "wct")}
        out["gatys"] = {"available": have(gatys_enc), "encoder": gatys_enc}
        for m in out:
            out[m]["loaded"] = ("stylizer", m) in self.cache
        return out

    # work
    def run_stylize(self, job: Job, spec: StylizeSpec) -> Result:
        job.report(0.02, "loading model")
        entry = self.stylizer(spec.method)
        with entry.lock:
            job.report(0.1, "stylising")
            options: dict[str, Any] = {}
            if spec.method == "gatys":
                total = spec.iterations or 100
                options["iterations"] = total
                options["callback"] = lambda i, _stats: job.report(0.1 + 0.85 * min(1.0, i / total), "optimising")
            out = entry.value.stylize_tensor(spec.content, list(zip(spec.styles, spec.weights)), alpha=spec.alpha,
                                             colour=spec.colour, mask=spec.mask, max_size=spec.max_size,
                                             **options)
        job.report(0.97, "encoding")
        from ..imageio import tensor_to_pil

        body = images.encode(tensor_to_pil(out[0]), spec.fmt, method=f"stylize/{spec.method}", params=spec.params())
        ext = "jpg" if spec.fmt == "jpeg" else "png"
        return Result(body, images.OUTPUT_FORMATS[spec.fmt][1], f"stylized-{spec.method}.{ext}")

    def stylize_batch_key(self, spec: StylizeSpec) -> tuple | None:
        """Requests with equal keys can share one :meth:`Stylizer.stylize_batch` pass: AdaIN/WCT, one
        style (same pixels), same alpha and colour option (none or luminance, applied per image
        afterwards), no mask, and the same content size after ``max_size`` limiting. None: not
        batchable, or batching is off."""
        if self.queue.max_batch <= 1 or spec.method not in ("adain", "wct") or len(spec.styles) != 1:
            return None
        if spec.mask is not None or spec.colour not in ("none", "luminance", "luminance-ycbcr"):
            return None
        from ..style.stylizer import _identity

        w, h = spec.content.size
        scale = spec.max_size / max(h, w)
        size = (h, w) if scale >= 1 else (max(1, round(h * scale)), max(1, round(w * scale)))  # as limit_size
        return ("stylize", spec.method, _identity(spec.styles[0]), float(spec.alpha), spec.colour, size)

    def run_stylize_batch(self, jobs: list[Job]) -> list[Any]:
        """Jobs with one :meth:`stylize_batch_key`: one forward pass, then each job's own colour
        step, resize back to its content's size and encoding, as :meth:`run_stylize` does per image.
        Answers one Result (or the exception that job ended with) per job."""
        import torch

        from ..imageio import tensor_to_pil
        from ..style.controls import limit_size, preserve_colour, resize_to, to_batch

        outcomes: list[Any] = [None] * len(jobs)

        def live(fraction: float, stage: str) -> list[int]:
            keep = []
            for i, job in enumerate(jobs):
                if outcomes[i] is not None:
                    continue
                try:
                    job.report(fraction, stage)
                except Cancelled as exc:
                    outcomes[i] = exc
                else:
                    keep.append(i)
            return keep

        idx = live(0.02, "loading model")
        if not idx:
            return outcomes
        spec0: StylizeSpec = jobs[idx[0]].batch_item
        entry = self.stylizer(spec0.method)
        stylizer = entry.value
        if set(stylizer.decoders) != {"relu4_1"}:
            raise GanforgeError("batching needs a single-level decoder")
        originals = {i: to_batch(jobs[i].batch_item.content) for i in idx}
        contents = {i: limit_size(originals[i], jobs[i].batch_item.max_size) for i in idx}
        with entry.lock:
            idx = live(0.1, f"stylising (batch of {len(idx)})")
            if not idx:
                return outcomes
            out = stylizer.stylize_batch(torch.cat([contents[i] for i in idx]), spec0.styles[0],
                                         alpha=spec0.alpha, clamp=False).cpu()
        for row, i in enumerate(idx):
            job, spec = jobs[i], jobs[i].batch_item
            try:
                job.report(0.97, "encoding")
                y = preserve_colour(out[row:row + 1], contents[i], spec.colour)
                if tuple(y.shape[-2:]) != tuple(originals[i].shape[-2:]):
                    y = resize_to(y, originals[i].shape[-2:])
                body = images.encode(tensor_to_pil(y.clamp(0, 1)[0]), spec.fmt, method=f"stylize/{spec.method}",
                                     params=spec.params())
                ext = "jpg" if spec.fmt == "jpeg" else "png"
                outcomes[i] = Result(body, images.OUTPUT_FORMATS[spec.fmt][1], f"stylized-{spec.method}.{ext}")
            except Exception as exc:
                outcomes[i] = exc
        return outcomes

    def run_generate(self, job: Job, spec: GenerateSpec) -> Result:
        import contextlib

        import torch
        from torchvision.utils import make_grid

        from ..imageio import tensor_to_pil

        job.report(0.02, "loading model")
        entry = self.generator(spec.run)
        gen = entry.value
        z = gen.latents(spec.n, spec.seed, spec.truncation)
        w_psi = {"truncation_psi": spec.truncation} if gen.w_space and spec.truncation != 1 else {}  # stylegan2: in W
        labels = gen._labels(spec.n, spec.label, spec.seed)
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.precision == "bf16"
                    else contextlib.nullcontext())
        chunks = []
        with entry.lock, torch.inference_mode(), autocast:
            for i in range(0, spec.n, 32):
                job.report(0.1 + 0.8 * i / spec.n, "generating")
                y = labels[i:i + 32].to(self.device) if labels is not None else None
                chunks.append(gen.G_ema(z[i:i + 32].to(self.device), y, **w_psi).float().add(1).div(2).clamp(0, 1).cpu())
        samples = torch.cat(chunks)
        params = {**spec.params(), "checkpoint": f"step-{gen.step}"}
        job.report(0.95, "encoding")
        if spec.fmt == "zip":
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for i, x in enumerate(samples):
                    zf.writestr(f"sample-{i:04d}.png", images.encode(tensor_to_pil(x), "png", method="generate",
                                                                    params={**params, "index": i}))
                zf.writestr("provenance.json", json.dumps({**images.provenance("generate", params)}, indent=2))
            return Result(buf.getvalue(), "application/zip", f"{spec.run.name}-seed{spec.seed}.zip")
        nrow = max(1, int(math.ceil(math.sqrt(len(samples)))))
        grid = make_grid(samples, nrow=nrow, padding=2, pad_value=1.0)
        body = images.encode(tensor_to_pil(grid), "png", method="generate", params=params)
        return Result(body, "image/png", f"{spec.run.name}-seed{spec.seed}.png")

    def submit(self, kind: str, fn, **batch: Any) -> Job:
        self.queue.start()
        try:
            return self.queue.submit(kind, fn, self.config.job_timeout, **batch)
        except QueueFull as exc:
            raise ApiError(503, f"server busy: {exc}", {"Retry-After": "2"}) from None


def _service(request: Request) -> Service:
    return request.app.state.service


Svc = Annotated[Service, Depends(_service)]


# -- parsing uploads ----------------------------------------------------------------------------------

async def _read_image(upload: UploadFile, service: Service, what: str, mode: str = "RGB"):
    data = await upload.read(service.config.max_upload_bytes + 1)
    if len(data) > service.config.max_upload_bytes:
        raise ApiError(413, f"{what}: larger than the {service.config.max_upload_bytes:,}-byte upload limit")
    if not data:
        raise ApiError(422, f"{what}: empty upload")
    try:
        return images.decode(data, max_pixels=service.config.max_pixels, what=what, mode=mode)
    except GanforgeError as exc:
        status = 413 if "limit" in str(exc) or "too large" in str(exc) else 415
        raise ApiError(status, str(exc)) from None


def _uploads(value: Any) -> list[UploadFile]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [u for u in items if hasattr(u, "read") and (getattr(u, "filename", None) is not None or getattr(u, "size", 0))]


async def stylize_spec(service: Service, content: Any, style: Any, style_weights: str | None, alpha: float,
                       preserve_color: str, method: str, max_size: int | None, mask: Any, fmt: str,
                       iterations: int | None) -> StylizeSpec:
    cfg = service.config
    contents, styles, masks = _uploads(content), _uploads(style), _uploads(mask)
    if len(contents) != 1:
        raise ApiError(422, "give exactly one content image (form field 'content')")
    if not styles:
        raise ApiError(422, "give at least one style image (form field 'style', repeat it for several)")
    if len(styles) > cfg.max_styles:
        raise ApiError(422, f"at most {cfg.max_styles} style images, got {len(styles)}")
    if method not in METHODS:
        raise ApiError(422, f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    colour = COLOUR.get(str(preserve_color).strip().lower())
    if colour is None:
        raise ApiError(422, "preserve_color must be none, luminance, luminance-ycbcr, match, true or false")
    if not (0.0 <= alpha <= 1.0) or math.isnan(alpha):
        raise ApiError(422, f"alpha must be in [0, 1], got {alpha}")
    size = cfg.default_max_size if max_size is None else max_size
    if not 16 <= size <= cfg.max_size:
        raise ApiError(422, f"max_size must be between 16 and {cfg.max_size}, got {size}")
    if style_weights:
        try:
            weights = [float(w) for w in style_weights.replace(";", ",").split(",") if w.strip()]
        except ValueError:
            raise ApiError(422, "style_weights must be numbers separated by commas, e.g. 0.7,0.3") from None
        if len(weights) != len(styles):
            raise ApiError(422, f"{len(weights)} style weights for {len(styles)} style images")
        if any(not (w >= 0 and math.isfinite(w)) for w in weights) or sum(weights) <= 0:
            raise ApiError(422, "style weights must be non-negative with a positive sum")
    else:
        weights = [1.0] * len(styles)
    total = sum(weights)
    weights = [w / total for w in weights]
    if iterations is not None and method != "gatys":
        raise ApiError(422, "iterations applies only to method=gatys")
    if iterations is not None and not 1 <= iterations <= cfg.gatys_max_iterations:
        raise ApiError(422, f"iterations must be between 1 and {cfg.gatys_max_iterations}")
    if fmt not in images.OUTPUT_FORMATS:
        raise ApiError(422, "format must be png or jpeg")
    content_img = await _read_image(contents[0], service, "content")
    style_imgs = [await _read_image(s, service, f"style {i + 1}") for i, s in enumerate(styles)]
    mask_img = await _read_image(masks[0], service, "mask", mode="L") if masks else None
    if mask_img is not None and len(styles) < 2:
        raise ApiError(422, "a mask needs two style images (first inside the mask, second outside)")
    return StylizeSpec(content_img, style_imgs, weights, alpha, colour, method, size, mask_img, fmt,
                       iterations if method == "gatys" else None)


def generate_spec(service: Service, run: str | None, n: int, seed: int, label: Any, truncation: float,
                  fmt: str) -> GenerateSpec:
    if not run:
        raise ApiError(422, "give a run name (see GET /v1/models)")
    info = service.runs.get(run)
    if info is None:
        raise ApiError(404, f"unknown run {run!r}; GET /v1/models lists the runs this server serves")
    if not 1 <= n <= service.config.max_n:
        raise ApiError(422, f"n must be between 1 and {service.config.max_n}")
    if not (0 < truncation <= 10) or math.isnan(truncation):
        raise ApiError(422, "truncation must be in (0, 10]")
    if fmt not in ("png", "zip"):
        raise ApiError(422, "format must be png or zip")
    num_classes = int(info.meta.get("spec", {}).get("num_classes") or 0)
    names = list(info.meta.get("class_names", []))
    if label is not None and str(label).strip() != "":
        if not num_classes:
            raise ApiError(422, f"run {info.name!r} is unconditional; leave 'class' empty")
        text = str(label).strip()
        if text in names:
            label = names.index(text)
        else:
            try:
                label = int(text)
            except ValueError:
                raise ApiError(422, f"class must be an index 0..{num_classes - 1} or one of {names}") from None
        if not 0 <= label < num_classes:
            raise ApiError(422, f"class must be in 0..{num_classes - 1}")
    else:
        label = None
    return GenerateSpec(info, n, seed, label, float(truncation), fmt)


def submit_stylize(service: Service, spec: StylizeSpec) -> Job:
    key = service.stylize_batch_key(spec)
    batch: dict[str, Any] = {}
    if key is not None:
        batch = {"batch_key": key, "batch_fn": service.run_stylize_batch, "batch_item": spec}
    return service.submit("stylize", lambda job: service.run_stylize(job, spec), **batch)


async def _run_now(service: Service, kind: str, fn, job: Job | None = None) -> Response:
    job = job or service.submit(kind, fn)
    if not await job.wait(service.config.request_timeout):
        job.cancel()
        raise ApiError(504, f"the request took longer than {service.config.request_timeout:g} s; use POST /v1/jobs "
                            f"for long work")
    return _job_response(job)


def _job_response(job: Job) -> Response:
    if job.status == "done" and job.result is not None:
        return Response(job.result.body, media_type=job.result.media_type,
                        headers={"Content-Disposition": f'inline; filename="{job.result.filename}"',
                                 "X-Ganforge-Job": job.id})
    status, message = job.error or (500, "job failed")
    return _error(status, message, job=job.id)


# -- the body-size guard ------------------------------------------------------------------------------

class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413: by Content-Length up front, and by counting
    what arrives (chunked uploads) before the form parser spools it."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def _send_413(self, send: Any) -> None:
        body = json.dumps({"error": f"request body larger than the {self.max_bytes:,}-byte upload limit",
                           "status": 413}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._send_413(send)
        state = {"received": 0, "over": False, "replaced": False}

        async def limited_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["over"] = True
                    raise ApiError(413, "request body too large")
            return message

        async def guarded_send(message: Any) -> None:
            if state["over"]:
                if not state["replaced"]:
                    state["replaced"] = True
                    await self._send_413(send)
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except ApiError:
            if not state["replaced"]:
                state["replaced"] = True
                await self._send_413(send)


# -- the app ------------------------------------------------------------------------------------------

def _static(name: str) -> str:
    return resources.files("ganforge.server").joinpath("static", name).read_text(encoding="utf-8")


def create_app(config: ServerConfig | None = None) -> FastAPI:
    """The FastAPI app for ``config`` (tests use it with TestClient; ``ganforge serve`` with uvicorn)."""
    service = Service(config or ServerConfig())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.queue.start()
        yield
        service.queue.stop()

    app = FastAPI(title="ganforge", version=__version__, lifespan=lifespan,
                  description="Style transfer (AdaIN, WCT, Gatys) and sampling from trained GAN runs. "
                              "Errors are JSON objects with an `error` message.")
    app.state.service = service
    app.add_middleware(BodyLimit, max_bytes=service.config.max_upload_bytes)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return _error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = list(err.get("loc", ()))
            if loc and loc[0] in ("body", "query", "path", "header"):
                loc = loc[1:]
            where = ".".join(str(p) for p in loc)
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return _error(422, "invalid request: " + "; ".join(parts))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")

    # -- pages ----------------------------------------------------------------------------------------
    security = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self' "
                                           "'unsafe-inline'; script-src 'self'; object-src 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return Response(_static("index.html"), media_type="text/html; charset=utf-8", headers=security)

    @app.get("/static/app.js", include_in_schema=False)
    def app_js() -> Response:
        return Response(_static("app.js"), media_type="text/javascript; charset=utf-8", headers=security)

    @app.get("/static/app.css", include_in_schema=False)
    def app_css() -> Response:
        return Response(_static("app.css"), media_type="text/css; charset=utf-8", headers=security)

    # -- status -------------------------------------------------------------------------------------------
    @app.get("/healthz", tags=["status"], summary="liveness, queue and model-cache state")
    def healthz(s: Svc) -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "device": str(s.device), "precision": s.precision,
                "uptime_s": round(time.time() - s.started, 1), "queue": s.queue.stats(), "cache": s.cache.stats()}

    @app.get("/v1/models", tags=["status"], summary="served runs, style methods and registered weights")
    def models(s: Svc) -> dict[str, Any]:
        from .. import weights as W

        reg = []
        for name in W.WEIGHTS.names() if hasattr(W.WEIGHTS, "names") else list(W.WEIGHTS):
            entry = W.WEIGHTS.get(name)
            try:
                available = W.find(name) is not None
            except Exception:
                available = False
            reg.append({"name": entry.name, "licence": entry.licence, "architecture": entry.architecture,
                        "description": entry.description, "available": available, "downloadable": bool(entry.url)})
        return {"runs": [r.describe() for r in s.runs.all().values()], "methods": s.method_status(),
                "weights": reg, "limits": {"max_upload_bytes": s.config.max_upload_bytes,
                                           "max_pixels": s.config.max_pixels, "max_size": s.config.max_size,
                                           "default_max_size": s.config.default_max_size,
                                           "max_styles": s.config.max_styles, "max_n": s.config.max_n,
                                           "gatys_max_iterations": s.config.gatys_max_iterations,
                                           "request_timeout_s": s.config.request_timeout}}

    # -- runs -----------------------------------------------------------------------------------------
    def _run(s: Service, name: str) -> RunInfo:
        info = s.runs.get(name)
        if info is None:
            raise ApiError(404, f"unknown run {name!r}; GET /v1/models lists the runs this server serves")
        return info

    def _file(info: RunInfo, which: str) -> Response:
        path = info.files()[which]
        if not path.is_file():
            raise ApiError(404, f"run {info.name!r} has no {path.name} yet")
        return Response(path.read_bytes(), media_type="image/png")

    @app.get("/v1/runs/{name}/samples.png", tags=["runs"], summary="the run's latest sample grid")
    def run_samples(name: str, s: Svc) -> Response:
        return _file(_run(s, name), "samples")

    @app.get("/v1/runs/{name}/loss_curves.png", tags=["runs"], summary="the run's loss curves")
    def run_curves(name: str, s: Svc) -> Response:
        return _file(_run(s, name), "loss_curves")

    @app.get("/v1/runs/{name}/summary", tags=["runs"], summary="the run's summary, metrics and last log entry")
    def run_summary(name: str, s: Svc) -> dict[str, Any]:
        info = _run(s, name)
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

    # -- work -----------------------------------------------------------------------------------------
    img_responses = {200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "the stylised image"},
                     413: {"description": "upload too large"}, 415: {"description": "not an image type we accept"},
                     422: {"description": "bad parameters"}, 503: {"description": "queue full or model unavailable"},
                     504: {"description": "request timeout"}}

    @app.post("/v1/stylize", tags=["style"], summary="restyle a content image", responses=img_responses,
              response_class=Response)
    async def stylize(s: Svc,
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
        spec = await stylize_spec(s, content, style, style_weights, alpha, preserve_color, method, max_size, mask,
                                  format, iterations)
        return await _run_now(s, "stylize", None, submit_stylize(s, spec))

    @app.post("/v1/generate", tags=["generate"], summary="samples of a served GAN run (PNG grid or ZIP)",
              response_class=Response,
              responses={200: {"content": {"image/png": {}, "application/zip": {}}}, 404: {"description": "unknown run"},
                         422: {"description": "bad parameters"}, 503: {"description": "queue full"}})
    async def generate(body: GenerateRequest, s: Svc) -> Response:
        spec = generate_spec(s, body.run, body.n, body.seed, body.class_, body.truncation, body.format)
        return await _run_now(s, "generate", lambda job: s.run_generate(job, spec))

    @app.post("/v1/jobs", tags=["jobs"], status_code=202, summary="submit a long job (stylize or generate)",
              description="Multipart form: `task` = stylize (the fields of POST /v1/stylize) or generate "
                          "(run, n, seed, class, truncation, format). Answers the job id; poll GET /v1/jobs/{id}.")
    async def submit_job(s: Svc,
                         task: Annotated[Literal["stylize", "generate"], Form()],
                         content: Annotated[UploadFile | None, File()] = None,
                         style: Annotated[list[UploadFile] | None, File()] = None,
                         style_weights: Annotated[str | None, Form()] = None,
                         alpha: Annotated[float, Form()] = 1.0,
                         preserve_color: Annotated[str, Form()] = "none",
                         method: Annotated[str, Form()] = "adain",
                         max_size: Annotated[int | None, Form()] = None,
                         mask: Annotated[UploadFile | None, File()] = None,
                         format: Annotated[str | None, Form()] = None,
                         iterations: Annotated[int | None, Form()] = None,
                         run: Annotated[str | None, Form(max_length=128)] = None,
                         n: Annotated[int, Form()] = 16,
                         seed: Annotated[int, Form(ge=0, le=2**31 - 1)] = 0,
                         class_: Annotated[str | None, Form(alias="class")] = None,
                         truncation: Annotated[float, Form()] = 1.0) -> JSONResponse:
        if task == "stylize":
            spec = await stylize_spec(s, content, style, style_weights, alpha, preserve_color, method, max_size,
                                      mask, format or "png", iterations)
            job = submit_stylize(s, spec)
        else:
            gspec = generate_spec(s, run, n, seed, class_, truncation, format or "png")
            job = s.submit("generate", lambda job: s.run_generate(job, gspec))
        return JSONResponse(job.as_dict(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    def _job(s: Service, job_id: str) -> Job:
        job = s.queue.get(job_id) if len(job_id) == 32 and job_id.isalnum() else None
        if job is None:
            raise ApiError(404, f"unknown job {job_id!r} (finished jobs are kept {s.config.keep_results_s:g} s)")
        return job

    @app.get("/v1/jobs/{job_id}", tags=["jobs"], summary="a job's status and progress")
    def job_status(job_id: str, s: Svc) -> dict[str, Any]:
        return _job(s, job_id).as_dict()

    @app.get("/v1/jobs/{job_id}/result", tags=["jobs"], summary="a finished job's image or ZIP",
             response_class=Response)
    def job_result(job_id: str, s: Svc) -> Response:
        job = _job(s, job_id)
        if not job.done:
            return _error(409, f"job {job.id} is {job.status} ({job.progress:.0%}); poll GET /v1/jobs/{job.id}",
                          {"Retry-After": "1"})
        return _job_response(job)

    @app.delete("/v1/jobs/{job_id}", tags=["jobs"], summary="cancel a job")
    def job_cancel(job_id: str, s: Svc) -> dict[str, Any]:
        job = _job(s, job_id)
        job.cancel()
        return job.as_dict()

    return app
