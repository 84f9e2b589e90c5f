"""The model work behind the routes, run by the job queue's workers: stylising through
:class:`ganforge.style.Stylizer` (one image, or a batch of same-size requests in one forward pass)
and sampling through :class:`ganforge.generator.Generator` (loaded by
:func:`ganforge.sample.load_generator`). Models are kept in the service's byte-bounded cache; every
forward pass runs under :func:`ganforge.device.autocast` for the service's resolved precision."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

from .. import imageio
from ..device import autocast
from ..errors import GanforgeError
from . import images
from .jobs import Cancelled, Job, Result
from .models import Entry, module_bytes
from .runs import RunInfo, latest_checkpoint_name
from .specs import GenerateSpec, StylizeSpec
from .state import Service


class RunFault(RuntimeError):
    """A run in --runs that cannot be loaded (corrupt or missing files): the server's fault, not the
    request's, so it is answered 500 with an error id (not a GanforgeError, which answers 422)."""

CHUNK = 32  # samples per generator call (progress is reported between calls)


# -- models -------------------------------------------------------------------------------------------

def stylizer(service: Service, method: str) -> Entry:
    """The cached :class:`~ganforge.style.Stylizer` for ``method``, its networks loaded."""
    def build():
        from ..style import Stylizer

        kwargs: dict[str, Any] = {"encoder": service.config.encoder}
        if method != "gatys":
            kwargs["decoder"] = service.config.decoder
        st = Stylizer(method, device=service.device, precision=service.precision, **kwargs)
        nets = [st.encoder, st.decoders]  # load now: a missing file fails this request, not a later one
        return st, module_bytes(*nets)

    return service.cache.get(("stylizer", method), build)


def load_run_generator(run: RunInfo, device: Any):
    """The run's newest loadable checkpoint as a :class:`~ganforge.generator.Generator` whose EMA
    weights are on ``device``; the training generator is dropped (the server samples EMA only)."""
    from ..sample import load_generator

    try:
        gen = load_generator(run.path)
    except GanforgeError as exc:  # a broken run is the server's fault: 500 with an error id, the text in the log
        raise RunFault(f"run {run.name!r} has no usable checkpoint: {exc}") from None
    gen.G_ema = gen.G_ema.to(device).eval().requires_grad_(False)
    gen.G = gen.G_ema
    return gen


def generator(service: Service, run: RunInfo) -> Entry:
    key = ("run", run.name, str(run.path), latest_checkpoint_name(run.path))

    def build():
        gen = load_run_generator(run, service.device)
        return gen, module_bytes(gen.G_ema)

    return service.cache.get(key, build)


def method_status(service: Service) -> dict[str, dict[str, Any]]:
    """Per style method: whether its weights are here, which ones, and whether it is loaded."""
    from .. import weights as W
    from ..nets.vgg import pick_encoder
    from ..style.stylizer import default_adain_pair

    config = service.config

    def have(name: str | None) -> bool:
        if not name:
            return False
        if Path(name).suffix and Path(name).is_file():
            return True
        try:
            return W.find(name) is not None
        except Exception:
            return False

    if config.decoder:
        enc, dec = config.encoder or "vgg-normalised-adain", config.decoder
    else:
        enc, dec = default_adain_pair()
        enc = config.encoder or enc
    ff = have(enc) and have(dec)
    gatys_enc = config.encoder or pick_encoder()
    out = {m: {"available": ff, "encoder": enc, "decoder": dec} for m in ("adain", "wct")}
    out["gatys"] = {"available": have(gatys_enc), "encoder": gatys_enc}
    for m in out:
        out[m]["loaded"] = ("stylizer", m) in service.cache
    return out


# -- stylising ----------------------------------------------------------------------------------------

def _stylized_result(image: Any, spec: StylizeSpec) -> Result:
    body = images.encode(imageio.tensor_to_pil(image), spec.fmt, method=f"stylize/{spec.method}",
                         params=spec.params())
    ext = "jpg" if spec.fmt == "jpeg" else "png"
    return Result(body, images.OUTPUT_FORMATS[spec.fmt][1], f"stylized-{spec.method}.{ext}")


def run_stylize(service: Service, job: Job, spec: StylizeSpec) -> Result:
    job.report(0.02, "loading model")
    entry = stylizer(service, spec.method)
    with entry.lock:
        job.report(0.1, "stylising")
        options: dict[str, Any] = {}
        if spec.method == "gatys":
            total = spec.iterations or 100
            options["iterations"] = total
            options["callback"] = lambda i, _stats: job.report(0.1 + 0.85 * min(1.0, i / total), "optimising")
        out = entry.value.stylize_tensor(spec.content, list(zip(spec.styles, spec.weights)), alpha=spec.alpha,
                                         colour=spec.colour, mask=spec.mask, max_size=spec.max_size, **options)
    job.report(0.97, "encoding")
    return _stylized_result(out[0], spec)


def stylize_batch_key(service: Service, spec: StylizeSpec) -> tuple | None:
    """Requests with equal keys can share one :meth:`Stylizer.stylize_batch` pass: AdaIN/WCT, one
    style (same pixels), same alpha and colour option (none or luminance, applied per image
    afterwards), no mask, and the same content size after ``max_size`` limiting. None: not
    batchable, or batching is off."""
    if service.queue.max_batch <= 1 or spec.method not in ("adain", "wct") or len(spec.styles) != 1:
        return None
    if spec.mask is not None or spec.colour not in ("none", "luminance", "luminance-ycbcr"):
        return None
    import torch

    from ..style.controls import limit_size
    from ..style.stylizer import identity

    w, h = spec.content.size
    # the processed size, by the Stylizer's own rule; a meta tensor has a shape and no pixels
    size = tuple(limit_size(torch.empty(1, 3, h, w, device="meta"), spec.max_size).shape[-2:])
    return ("stylize", spec.method, identity(spec.styles[0]), float(spec.alpha), spec.colour, size)


def run_stylize_batch(service: Service, jobs: list[Job]) -> list[Any]:
    """Jobs with one :func:`stylize_batch_key`: one :meth:`Stylizer.stylize_batch` pass, then each
    job's own colour step and resize back to its content's size (what
    :meth:`Stylizer.stylize_tensor` does after its forward pass) and encoding. Answers one Result
    (or the exception that job ended with) per job."""
    import torch

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
    entry = stylizer(service, spec0.method)
    model = entry.value
    if set(model.decoders) != {"relu4_1"}:
        raise GanforgeError("batching needs a single-level decoder")
    originals = {i: to_batch(jobs[i].batch_item.content) for i in idx}
    contents = {i: limit_size(originals[i], jobs[i].batch_item.max_size) for i in idx}
    with entry.lock:
        idx = live(0.1, f"stylising (batch of {len(idx)})")
        if not idx:
            return outcomes
        out = model.stylize_batch(torch.cat([contents[i] for i in idx]), spec0.styles[0],
                                  alpha=spec0.alpha, clamp=False).cpu()
    for row, i in enumerate(idx):
        job, spec = jobs[i], jobs[i].batch_item
        try:
            job.report(0.97, "encoding")
            y = preserve_colour(out[row:row + 1], contents[i], spec.colour)
            y = resize_to(y, originals[i].shape[-2:])
            outcomes[i] = _stylized_result(y.clamp(0, 1)[0], spec)
        except Exception as exc:
            outcomes[i] = exc
    return outcomes


def submit_stylize(service: Service, spec: StylizeSpec) -> Job:
    key = stylize_batch_key(service, spec)
    batch: dict[str, Any] = {}
    if key is not None:
        batch = {"batch_key": key, "batch_fn": lambda jobs: run_stylize_batch(service, jobs), "batch_item": spec}
    return service.submit("stylize", lambda job: run_stylize(service, job, spec), **batch)


# -- sampling -----------------------------------------------------------------------------------------

def run_generate(service: Service, job: Job, spec: GenerateSpec) -> Result:
    import torch
    from torchvision.utils import make_grid

    job.report(0.02, "loading model")
    entry = generator(service, spec.run)
    gen = entry.value
    z = gen.latents(spec.n, spec.seed, spec.truncation)  # W-space generators truncate in generate()
    if spec.prompt is not None:  # a text run: the prompt's sentence embedding for every sample
        with entry.lock:
            labels = gen.embed([spec.prompt]).expand(spec.n, -1)
    else:
        labels = gen.labels(spec.n, spec.label, spec.seed)
    chunks = []
    precision = gen.precision_for(service.config.precision, service.device)  # published networks: fp32 by default
    with entry.lock, torch.inference_mode(), autocast(precision, service.device):
        for i in range(0, spec.n, CHUNK):
            job.report(0.1 + 0.8 * i / spec.n, "generating")
            y = labels[i:i + CHUNK].to(service.device) if labels is not None else None
            chunks.append(gen.generate(z[i:i + CHUNK].to(service.device), y, truncation=spec.truncation,
                                       batch_size=CHUNK).cpu())
    samples = torch.cat(chunks)
    params = {**spec.params(), "checkpoint": f"step-{gen.step}"}
    job.report(0.95, "encoding")
    if spec.fmt == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for i, x in enumerate(samples):
                zf.writestr(f"sample-{i:04d}.png", images.encode(imageio.tensor_to_pil(x), "png", method="generate",
                                                                params={**params, "index": i}))
            zf.writestr("provenance.json", json.dumps({**images.provenance("generate", params)}, indent=2))
        return Result(buf.getvalue(), "application/zip", f"{spec.run.name}-seed{spec.seed}.zip")
    nrow = max(1, int(math.ceil(math.sqrt(len(samples)))))
    grid = make_grid(samples, nrow=nrow, padding=2, pad_value=1.0)
    body = images.encode(imageio.tensor_to_pil(grid), "png", method="generate", params=params)
    return Result(body, "image/png", f"{spec.run.name}-seed{spec.seed}.png")


def submit_generate(service: Service, spec: GenerateSpec) -> Job:
    return service.submit("generate", lambda job: run_generate(service, job, spec))
