"""One entry point for every method and control: :class:`Stylizer` (reusable; caches networks and
per-style statistics) and :func:`stylize` (one call, one image)."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image
from torch import nn

from ..device import autocast
from ..errors import WeightsError
from ..imageio import save_image, tensor_to_pil
from ..provenance import Provenance
from ..nets.adain_decoder import load_decoder
from ..nets.vgg import VGGEncoder, default_style_weight, load_vgg, pick_encoder
from . import adain as adain_ops
from . import wct as wct_ops
from ..imageops import crop_to, pad_to_multiple
from .controls import (COLOUR_MODES, ImageLike, StyleArg, StyleError, auto_foreground_mask, identity,  # noqa: F401
                       limit_size, load_mask, match_colour, parse_styles, partition_tiles, plan_tiles, preserve_colour,
                       region_masks, resize_to, resolve_paths, run_tiled, to_batch)
from .gatys import at_least, gatys, style_targets
from .similarity import similarity_report

METHODS = ("adain", "wct", "gatys")
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
MULTIPLE = 8  # three poolings to relu4_1: pad to this and crop back


def packaged_decoder(encoder: str) -> Path | None:
    """A decoder ganforge trained itself and ships (``style/pretrained/``), if any, for ``encoder``."""
    path = PRETRAINED_DIR / f"adain-decoder-{encoder}.safetensors"
    return path if path.is_file() else None


def default_adain_pair() -> tuple[str, str]:
    """(encoder, decoder) for --method adain: the official files if present locally, else a decoder
    ganforge ships, else the official names (whose loading gives the clear missing-file error)."""
    from .. import weights

    if weights.find("adain-decoder") is None:
        for encoder in ("vgg19-caffe", "vgg19-torchvision"):
            path = packaged_decoder(encoder)
            if path is not None and weights.find(encoder) is not None:
                return encoder, str(path)
    return "vgg-normalised-adain", "adain-decoder"


class Stylizer:
    """Reusable style transfer. Networks load once; each style's statistics (AdaIN mean/std, WCT
    colouring, Gatys Grams) are computed once and cached, so repeated styles cost only the content.

    ``encoder``/``decoder`` take registry names, file paths or modules. ``decoders`` ({layer: decoder})
    turns on multi-level WCT. ``precision='bf16'`` runs the networks under bf16 autocast (about 2×
    faster on CPUs with AVX-512 BF16 and on GPUs; ~15× slower on CPUs without); ``'auto'`` picks
    bf16 only where the hardware runs it natively, else fp32; ``'fp16'`` is for CUDA (AdaIN/WCT).
    Statistics stay fp32. ``device``: 'cpu' (default), 'cuda', 'cuda:N' or 'auto'.

    Gatys without ``encoder`` uses ``vgg19-torchvision`` (downloaded on first use), or another
    VGG19 already on this machine (e.g. ``vgg19-caffe`` in GANFORGE_WEIGHTS_DIR) when that one is
    absent; its default style weight follows the encoder's input scale (30 Caffe, 1e6 torchvision).
    """

    def __init__(self, method: str = "adain", *, encoder: str | nn.Module | None = None,
                 decoder: str | os.PathLike | nn.Module | None = None,
                 decoders: dict[str, str | nn.Module] | None = None, device: str | torch.device = "cpu",
                 precision: str = "fp32", style_size: int | None = 512, cache_size: int = 64,
                 **gatys_options: Any) -> None:
        if method not in METHODS:
            raise StyleError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        self.method = method
        self.to(device, precision)
        self.style_size = style_size
        self.gatys_options = {"iterations": 200, "content_weight": 1.0, **gatys_options}
        if method == "gatys":
            encoder = encoder or pick_encoder()
        elif encoder is None and decoder is None and not decoders:
            encoder, decoder = default_adain_pair()
        elif encoder is None:
            encoder = "vgg-normalised-adain"
        self._encoder_arg, self._decoder_arg, self._decoders_arg = encoder, decoder, decoders
        self._cache_size = cache_size
        self.cache_hits = 0

    def to(self, device: str | torch.device = "auto", precision: str = "auto") -> "Stylizer":
        """Run on ``device`` at ``precision`` (through :mod:`ganforge.device`); the networks are placed
        there on their next use and the cached style statistics are recomputed."""
        from ..device import PRECISIONS, resolve_device, resolve_precision

        if precision not in PRECISIONS:
            raise StyleError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
        dev = resolve_device(device)
        prec = resolve_precision(precision, dev)
        if prec == "fp16" and self.method == "gatys":
            raise StyleError("gatys optimises in fp32 or bf16; use --precision bf16, fp32 or auto")
        self.device, self.precision = dev, prec
        self._encoder: VGGEncoder | None = None
        self._decoders: dict[str, nn.Module] | None = None
        self._cache: OrderedDict[tuple, Any] = OrderedDict()
        return self

    # -- networks ----------------------------------------------------------------------------------

    @property
    def encoder(self) -> VGGEncoder:
        if self._encoder is None:
            enc = self._encoder_arg
            enc = enc if isinstance(enc, nn.Module) else load_vgg(enc)
            self._encoder = enc.to(self.device).eval()
            if self.precision != "fp32":
                self._encoder.to(memory_format=torch.channels_last)
        return self._encoder

    @property
    def encoder_name(self) -> str:
        return self._encoder_arg if isinstance(self._encoder_arg, str) else getattr(self._encoder_arg, "source", "")

    @property
    def decoders(self) -> dict[str, nn.Module]:
        """{layer: decoder}; one entry (relu4_1) except for multi-level WCT."""
        if self._decoders is None:
            if self.method == "gatys":
                self._decoders = {}
            else:
                given = dict(self._decoders_arg or {})
                if self._decoder_arg is not None or not given:
                    given.setdefault("relu4_1", self._decoder_arg or "adain-decoder")
                out = {}
                for layer, dec in given.items():
                    try:
                        dec = dec if isinstance(dec, nn.Module) else load_decoder(dec, layer)
                    except WeightsError as exc:  # the commonest offline situation: say what works
                        raise WeightsError(f"{exc}; or use --method gatys, which needs only a VGG19 encoder") from exc
                    trained_for = getattr(dec, "encoder_name", "")
                    if trained_for and self.encoder_name and trained_for != self.encoder_name:
                        raise StyleError(f"decoder {layer} was trained for encoder {trained_for!r}, "
                                         f"not {self.encoder_name!r}; pass encoder={trained_for!r}")
                    given_module = isinstance(dec, nn.Module) and dec is given.get(layer)
                    out[layer] = dec.to(self.device).eval()
                    if self.precision != "fp32":  # as the encoder: channels_last; a decoder loaded here also gets
                        # bf16 weights once instead of a cast per call (CPU 640x360: decoder ~2x faster)
                        out[layer].to(memory_format=torch.channels_last)
                        if self.precision == "bf16" and not given_module:
                            out[layer].to(torch.bfloat16)
                self._decoders = out
        return self._decoders

    def _encode(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        if self.precision != "fp32":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(self.precision, self.device):
            return self.encoder(x.to(self.device), (layer,))[layer].float()

    def _decode(self, layer: str, feat: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(self.precision, self.device):
            return self.decoders[layer](feat.to(self.device)).float()

    # -- style statistics (cached) -------------------------------------------------------------------

    def _cached(self, key: tuple, make: Any) -> Any:
        if key in self._cache:
            self._cache.move_to_end(key)
            self.cache_hits += 1
            return self._cache[key]
        value = make()
        self._cache[key] = value
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return value

    def style_tensor(self, style: ImageLike, content: torch.Tensor | None = None, colour: str = "none") -> torch.Tensor:
        s = at_least(limit_size(to_batch(style), self.style_size))  # a 1×1 style: a flat colour, not a crash
        if colour == "match" and content is not None:
            s = match_colour(s, content)
        return s

    def style_stats(self, style: ImageLike, layer: str = "relu4_1", *, content: torch.Tensor | None = None,
                    colour: str = "none") -> Any:
        """The method's statistics of one style: AdaIN (mean, std), WCT (mean, cov^½), Gatys Grams."""
        key = (self.method, layer, identity(style), self.style_size, self.precision)
        if colour == "match" and content is not None:  # recoloured per content: key on the content too
            key += (identity(content),)

        def make() -> Any:
            s = self.style_tensor(style, content, colour)
            if self.method == "gatys":
                return style_targets(self.encoder, s.to(self.device))
            feat = self._encode(s, layer)
            if self.method == "adain":
                return adain_ops.mean_std(feat)
            return wct_ops.style_colouring(feat.cpu())

        return self._cached(key, make)

    # -- stylising -----------------------------------------------------------------------------------

    def stylize(self, content: ImageLike, style: StyleArg, **options: Any) -> Image.Image:
        """Stylise one image; see :meth:`stylize_tensor` for the options. Returns a PIL image of the
        content's exact size (unless ``preserve_size=False`` with ``max_size``)."""
        return tensor_to_pil(self.stylize_tensor(content, style, **options)[0])

    def stylize_tensor(self, content: ImageLike, style: StyleArg, *, weights: Sequence[float] | None = None,
                       alpha: float = 1.0, colour: str = "none", mask: ImageLike | str | None = None,
                       max_size: int | None = None, preserve_size: bool = True, tile: int | None = None,
                       overlap: int = 32, halo: int = 64, **gatys_options: Any) -> torch.Tensor:
        """Stylise ``content`` (path/PIL/tensor) with one or more styles.

        - ``style``: an image, a list of images, ``[(image, weight), ...]`` or ``"path:0.7"`` strings;
          ``weights`` overrides. Weights are normalised to sum to 1.
        - ``alpha``: 0 = content (AdaIN/WCT: the decoder's reconstruction), 1 = full style.
        - ``colour``: 'none', 'match' (recolour the style to the content's mean/covariance first),
          'luminance' (YIQ) or 'luminance-ycbcr' (transfer luminance only).
        - ``mask``: with two styles, style 1 inside the mask and style 2 outside; a K-channel tensor
          for K styles; ``"auto"`` for an automatic foreground/background split.
        - ``max_size``: cap the long side for processing; the result is resized back to the input
          size when ``preserve_size`` (default).
        - ``tile``/``overlap``/``halo``: tiled inference (AdaIN/WCT) for images larger than memory:
          content statistics are gathered over the whole image first, so tiles agree; tiles
          overlap by ``overlap`` px (linear blending) and see ``halo`` px of extra context.
        """
        if not 0.0 <= alpha <= 1.0:
            raise StyleError(f"alpha must be in [0, 1], got {alpha}")
        if colour not in COLOUR_MODES:
            raise StyleError(f"unknown colour mode {colour!r}; use one of {', '.join(COLOUR_MODES)}")
        original = to_batch(content)
        c = limit_size(original, max_size)
        styles = parse_styles(style, weights)
        work = at_least(c)  # an image smaller than VGG's deepest layer needs is processed upsampled
        masks = None
        if mask is not None:
            m = auto_foreground_mask(work, self.encoder) if isinstance(mask, str) and mask == "auto" \
                else load_mask(mask, work.shape[-2:])
            masks = region_masks(m, len(styles))
        if gatys_options and self.method != "gatys":
            raise StyleError(f"options {sorted(gatys_options)} apply only to method='gatys'")
        if self.method == "gatys":
            if tile:
                raise StyleError("tiling is for the feed-forward methods (adain, wct); use max_size with gatys")
            out = self._gatys(work, styles, alpha, colour, masks, gatys_options)
        else:
            out = self._feedforward(work, styles, alpha, colour, masks, tile, overlap, halo)
        out = resize_to(out, c.shape[-2:])
        out = preserve_colour(out, c, colour)
        if preserve_size and tuple(out.shape[-2:]) != tuple(original.shape[-2:]):
            out = resize_to(out, original.shape[-2:])
        return out.clamp(0, 1)

    def _gatys(self, c: torch.Tensor, styles: list, alpha: float, colour: str, masks: Any,
               options: dict[str, Any]) -> torch.Tensor:
        targets = [self.style_stats(img, content=c, colour=colour) for img, _ in styles]
        opts = {**self.gatys_options, **options}
        if opts.get("style_weight") is None:
            opts["style_weight"] = default_style_weight(self.encoder)
        result = gatys(c.to(self.device), targets, [w for _, w in styles], self.encoder, masks=masks,
                       alpha=alpha, autocast=self.precision == "bf16", **opts)
        self.last_history = result.history
        return result.image.cpu()

    def _feedforward(self, c: torch.Tensor, styles: list, alpha: float, colour: str, masks: Any,
                     tile: int | None, overlap: int, halo: int) -> torch.Tensor:
        layers = sorted(self.decoders, reverse=True)  # deepest first (multi-level WCT)
        weights = [w for _, w in styles]
        out = c
        for layer in layers:
            stats = [self.style_stats(img, layer, content=c, colour=colour) for img, _ in styles]
            if tile and (out.shape[-2] > tile or out.shape[-1] > tile):
                out = self._tiled_level(out, layer, stats, weights, alpha, masks, tile, overlap, halo)
            else:
                out = self._level(out, layer, stats, weights, alpha, masks)
        return out

    def _transform(self, feat: torch.Tensor, stats: list, weights: list[float], alpha: float,
                   masks: list[torch.Tensor] | None, global_moments: list | None) -> torch.Tensor:
        if self.method == "adain":
            cstats = [m.mean_std() for m in global_moments] if global_moments else None
            return adain_ops.mix_features(feat, stats, weights, alpha, masks=masks, content_stats=cstats)
        return wct_ops.mix_features(feat.cpu(), stats, weights, alpha, masks=masks,
                                    content_moments=global_moments).to(feat.device)

    def _level(self, x: torch.Tensor, layer: str, stats: list, weights: list[float], alpha: float,
               masks: list[torch.Tensor] | None, global_moments: list | None = None) -> torch.Tensor:
        padded, size = pad_to_multiple(x, MULTIPLE, small="replicate"), x.shape[-2:]
        feat = self._encode(padded, layer)
        pmasks = None
        if masks is not None:
            pmasks = [pad_to_multiple(m, MULTIPLE, small="replicate").to(feat.device) for m in masks]
        target = self._transform(feat, stats, weights, alpha, pmasks, global_moments)
        return crop_to(self._decode(layer, target), size).cpu()

    def _tiled_level(self, x: torch.Tensor, layer: str, stats: list, weights: list[float], alpha: float,
                     masks: list[torch.Tensor] | None, tile: int, overlap: int, halo: int) -> torch.Tensor:
        """Two passes: (1) content moments over the whole image from non-overlapping tiles with halo;
        (2) overlapping tiles transformed with those global moments, decoded and blended."""
        h, w = x.shape[-2:]
        tile = max(MULTIPLE * 4, tile // MULTIPLE * MULTIPLE)
        regions = masks if masks is not None else [None]
        full = self.method == "wct"
        moments: list[Any] = [None] * len(regions)
        for t in partition_tiles(h, w, tile, halo, MULTIPLE):
            y0, x0, y1, x1 = t.core
            padded = pad_to_multiple(x[..., t.y0:t.y1, t.x0:t.x1], MULTIPLE, small="replicate")
            feat = self._encode(padded, layer).cpu()
            fy0, fx0 = (y0 - t.y0) // MULTIPLE, (x0 - t.x0) // MULTIPLE
            fy1, fx1 = fy0 + -(-(y1 - y0) // MULTIPLE), fx0 + -(-(x1 - x0) // MULTIPLE)
            core = feat[..., fy0:fy1, fx0:fx1]
            for i, m in enumerate(regions):
                mc = None if m is None else adain_ops._mask_at(m[..., y0:y1, x0:x1], core)
                part = adain_ops.Moments.of(core, mc, full=full)
                moments[i] = part if moments[i] is None else moments[i] + part

        def one_tile(piece: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
            pm = None if masks is None else [m[..., box[0]:box[2], box[1]:box[3]] for m in masks]
            return self._level(piece, layer, stats, weights, alpha, pm, moments)

        return _run_tiled_boxes(x, one_tile, tile=tile, overlap=overlap, halo=halo)

    def stylize_batch(self, contents: torch.Tensor, style: ImageLike, *, alpha: float = 1.0,
                      clamp: bool = True) -> torch.Tensor:
        """Throughput path for AdaIN/WCT: N same-size contents (N×3×H×W in [0, 1]) with one style in
        one forward pass (the style statistics come from the cache). No masks, tiling or colour
        options here; the result equals calling :meth:`stylize_tensor` per image. ``clamp=False``
        returns the decoder's raw output (what :meth:`stylize_tensor` post-processes before its
        final clamp), for callers that apply colour preservation or resizing themselves."""
        if self.method == "gatys":
            raise StyleError("stylize_batch is for adain/wct; Gatys optimises one image at a time")
        layer = "relu4_1"
        if set(self.decoders) != {layer}:
            raise StyleError("stylize_batch supports single-level decoders only")
        stats = self.style_stats(style, layer)
        work = at_least(contents.float())  # as stylize_tensor: tiny images are processed upsampled
        padded, size = pad_to_multiple(work, MULTIPLE, small="replicate"), work.shape[-2:]
        feat = self._encode(padded, layer)
        if self.method == "adain":
            target = adain_ops.mix_features(feat, [stats], [1.0], alpha)
        else:
            target = torch.cat([wct_ops.mix_features(f[None].cpu(), [stats], [1.0], alpha) for f in feat]).to(feat.device)
        out = resize_to(crop_to(self._decode(layer, target), size), contents.shape[-2:])
        return out.clamp(0, 1) if clamp else out

    # -- batch and reports --------------------------------------------------------------------------

    def provenance(self, content: Any = None, style: Any = None, options: dict | None = None, *,
                   watermark: bool = True) -> Provenance:
        """The "AI-generated" provenance of this stylizer's outputs (method, encoder, content and
        style names (never paths), the options; the invisible watermark unless ``watermark=False``)."""
        name = lambda x: Path(str(x)).name if isinstance(x, (str, os.PathLike)) else type(x).__name__  # noqa: E731
        params = {"encoder": self.encoder_name, **{k: v for k, v in (options or {}).items() if not isinstance(v, torch.Tensor)}}
        if content is not None:
            params["content"] = name(content)
        if style is not None:
            params["style"] = name(style)
        return Provenance("stylize", f"{self.method}", None, params, watermark)

    def batch(self, contents: str | os.PathLike | Sequence[ImageLike], styles: str | os.PathLike | Sequence[ImageLike],
              out_dir: str | os.PathLike, *, suffix: str = ".jpg", progress: bool = True,
              metrics: bool = False, watermark: bool = True, **options: Any) -> list[Path]:
        """Every content × every style into ``out_dir`` as ``<content>__<style><suffix>``; each
        style's statistics are computed once (cache). With ``metrics`` also writes metrics.json."""
        from tqdm.auto import tqdm
        import json

        content_list = resolve_paths(contents) if isinstance(contents, (str, os.PathLike)) else list(contents)
        style_list = resolve_paths(styles) if isinstance(styles, (str, os.PathLike)) else list(styles)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written, report = [], {}
        jobs = [(s, c) for s in style_list for c in content_list]  # style-major: stats stay hot
        for s, c in tqdm(jobs, desc=f"stylize ({self.method})", disable=not progress):
            name = f"{Path(str(c)).stem}__{Path(str(s)).stem}{suffix}"
            out = self.stylize_tensor(c, s, **options)
            written.append(save_image(out[0], out_dir / name,
                                      provenance=self.provenance(c, s, options, watermark=watermark)))
            if metrics:
                report[name] = self.report(out, c, s)
        if metrics:
            (out_dir / "metrics.json").write_text(json.dumps(report, indent=2))
        return written

    def report(self, output: ImageLike, content: ImageLike, style: ImageLike, *, encoder: str | nn.Module | None = None) -> dict[str, float]:
        """Similarity of an output to its content and style (docs/style.md has the definitions),
        measured with the features of :attr:`report_encoder_name` by default (any registered
        encoder works)."""
        enc = encoder if isinstance(encoder, nn.Module) else self._report_encoder(encoder)
        return similarity_report(to_batch(output), to_batch(content), to_batch(style), enc)

    @property
    def report_encoder_name(self) -> str:
        """The encoder :meth:`report` uses by default: vgg19-torchvision, or the VGG19 found locally."""
        return pick_encoder()

    def _report_encoder(self, name: str | None) -> nn.Module:
        name = name or self.report_encoder_name
        if name == self.encoder_name:
            return self.encoder
        return self._cached(("report-encoder", name), lambda: load_vgg(name))


def _run_tiled_boxes(x: torch.Tensor, fn: Any, *, tile: int, overlap: int, halo: int) -> torch.Tensor:
    """``run_tiled`` that also tells ``fn`` which box of the image it is working on."""
    boxes = iter(plan_tiles(x.shape[-2], x.shape[-1], tile, overlap, halo, MULTIPLE))

    def wrapped(piece: torch.Tensor) -> torch.Tensor:
        t = next(boxes)
        return fn(piece, (t.y0, t.x0, t.y1, t.x1))

    return run_tiled(x, wrapped, tile=tile, overlap=overlap, halo=halo, multiple=MULTIPLE)


_DEFAULT: dict[tuple, Stylizer] = {}


def stylize(content: ImageLike, style: StyleArg, method: str = "adain", alpha: float = 1.0, *,
            encoder: str | None = None, decoder: str | None = None, precision: str = "fp32",
            device: str = "cpu", **options: Any) -> Image.Image:
    """Stylise one image and return a PIL image the size of the content.

    ``method``: 'adain' (fast, needs a decoder), 'wct' (same decoder, full covariance), 'gatys'
    (optimisation; needs only a VGG19 encoder, ``vgg19-torchvision`` by default). Options as :meth:`Stylizer.stylize_tensor`
    (plus Gatys ``iterations``, ``style_weight``, ``tv_weight``, ``scales``, ``optimizer``).
    A module-level Stylizer per configuration is reused, so repeated calls keep their caches.
    """
    key = (method, encoder, decoder, precision, device)
    if key not in _DEFAULT:
        _DEFAULT[key] = Stylizer(method, encoder=encoder, decoder=decoder, precision=precision, device=device)
    return _DEFAULT[key].stylize(content, style, alpha=alpha, **options)


def save(image: Image.Image | torch.Tensor, path: str | os.PathLike) -> Path:
    return save_image(image, path, provenance=Provenance("stylize", watermark=True))
