"""2-D convolutions whose gradients are themselves convolutions, so a double backward (R1, WGAN-GP,
StyleGAN2's path length) costs first-order convolutions, with stock PyTorch ops only.

Autograd differentiates a convolution's backward (``convolution_backward``) with a generic double
backward; on CUDA it falls back to slow kernels for some shapes (depthwise filters, transposed
convolutions), which made 78 % of a StyleGAN2 step on an H200. Here the gradient of a convolution
with respect to its input is the adjoint convolution (a transposed convolution for a convolution
and the other way round), and its gradient with respect to the weight is a weight-gradient kernel
whose own gradients are again a convolution (w.r.t. the output gradient) and an adjoint
convolution (w.r.t. the input): every order of derivative is a first-order convolution kernel.
The idea is the one of StyleGAN2-ADA's ``conv2d_gradfix``; this is ganforge's own code and needs
no compiled extension.

Use: ``with double_backward_convs(device): ...`` around the forward whose graph will be
differentiated twice. Inside, ``F.conv2d`` and ``F.conv_transpose2d`` (and so ``nn.Conv2d``,
``nn.ConvTranspose2d``, spectral-normed ones, every architecture's layers) that need gradients are
routed to the custom op, outside autocast only (the penalties run in fp32). The first backward of
such a graph skips weight gradients that the current ``autograd.grad`` call does not ask for (R1
wants the gradient w.r.t. the images only), as autograd does for its own ops.

Per device (:func:`enabled_for`): always on CUDA; on the CPU where it measured no slower (see
``ENABLED`` and docs/benchmarks.md, "Double backward on the CPU, per pass"): the CPU's generic
double backward is already made of convolutions, so the gain there is smaller and not universal.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, NamedTuple

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["ENABLED", "conv2d", "conv_transpose2d", "double_backward_convs", "enabled_for"]

# device type -> whether double_backward_convs routes convolutions to the custom op there by default.
# CPU: measured faster for StyleGAN2 (R1 and path length at 64² and 128²) and DCGAN's R1, slower for
# the resnet family's D (its callers pass enabled=False there; docs/benchmarks.md, "Double backward on
# the CPU, per pass").
ENABLED: dict[str, bool] = {"cuda": True, "cpu": True}


def enabled_for(device: torch.device | str) -> bool:
    return ENABLED.get(torch.device(device).type, False)


class _Spec(NamedTuple):
    transposed: bool
    stride: tuple[int, int]
    padding: tuple[int, int]
    output_padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int


def _pair(v: int | tuple[int, ...] | list[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(i) for i in v)
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def _run(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, s: _Spec) -> torch.Tensor:
    return torch.convolution(x, w, b, s.stride, s.padding, s.dilation, s.transposed, s.output_padding, s.groups)


def _adjoint(s: _Spec, x_hw: tuple[int, int], y_hw: tuple[int, int], k_hw: tuple[int, int]) -> _Spec:
    """The convolution that maps an output gradient (size ``y_hw``) back to the input's size
    ``x_hw``: a transposed convolution for a convolution (its output padding recovers the rows a
    strided convolution dropped) and a convolution for a transposed one."""
    if s.transposed:
        return _Spec(False, s.stride, s.padding, (0, 0), s.dilation, s.groups)
    out_pad = tuple(x - ((y - 1) * st - 2 * p + d * (k - 1) + 1)
                    for x, y, st, p, d, k in zip(x_hw, y_hw, s.stride, s.padding, s.dilation, k_hw))
    return _Spec(True, s.stride, s.padding, out_pad, s.dilation, s.groups)


def _engine_needs(ctx, index: int) -> bool:
    """Whether the running backward will use input ``index``'s gradient (autograd.grad with
    ``inputs`` prunes the rest); True where torch cannot tell."""
    if not ctx.needs_input_grad[index]:
        return False
    node = ctx.next_functions[index][0] if hasattr(ctx, "next_functions") else None
    will_run = getattr(torch._C, "_will_engine_execute_node", None)
    if node is None or will_run is None:
        return True
    try:
        return bool(will_run(node))
    except RuntimeError:
        return True


class _Conv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, spec):
        ctx.save_for_backward(x, w)
        ctx.spec, ctx.has_bias = spec, b is not None
        return _run(x, w, b, spec)

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        spec = ctx.spec
        gx = gw = gb = None
        if _engine_needs(ctx, 0):
            adj = _adjoint(spec, tuple(x.shape[2:]), tuple(gy.shape[2:]), tuple(w.shape[2:]))
            gx = _Conv.apply(gy, w, None, adj)
        if _engine_needs(ctx, 1):
            gw = _WeightGrad.apply(gy, x, w, spec)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gy.sum(dim=(0, 2, 3))
        return gx, gw, gb, None


class _WeightGrad(torch.autograd.Function):
    """d<gy, conv(x, w)>/dw (bilinear in gy and x). Its gradients for an incoming ``ggw``:
    w.r.t. gy, conv(x, ggw); w.r.t. x, the adjoint convolution of gy with the weight ggw."""

    @staticmethod
    def forward(ctx, gy, x, w, spec):
        ctx.save_for_backward(gy, x)
        ctx.spec = spec
        return torch.ops.aten.convolution_backward(
            gy, x, w, None, list(spec.stride), list(spec.padding), list(spec.dilation), spec.transposed,
            list(spec.output_padding), spec.groups, [False, True, False])[1]

    @staticmethod
    def backward(ctx, ggw):
        gy, x = ctx.saved_tensors
        spec = ctx.spec
        g_gy = g_x = None
        if ctx.needs_input_grad[0]:
            g_gy = _Conv.apply(x, ggw, None, spec)
        if ctx.needs_input_grad[1]:
            adj = _adjoint(spec, tuple(x.shape[2:]), tuple(gy.shape[2:]), tuple(ggw.shape[2:]))
            g_x = _Conv.apply(gy, ggw, None, adj)
        return g_gy, g_x, None, None


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> torch.Tensor:
    """``F.conv2d`` (4-D input, numeric padding) with first-order-convolution derivatives of any order."""
    spec = _Spec(False, _pair(stride), _pair(padding), (0, 0), _pair(dilation), int(groups))
    return _Conv.apply(x, weight, bias, spec)


def conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> torch.Tensor:
    """``F.conv_transpose2d`` (4-D input) with first-order-convolution derivatives of any order."""
    spec = _Spec(True, _pair(stride), _pair(padding), _pair(output_padding), _pair(dilation), int(groups))
    return _Conv.apply(x, weight, bias, spec)


_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_CONVT_ARGS = ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")


class _RouteConvs(TorchFunctionMode):
    """Routes F.conv2d / F.conv_transpose2d that build a graph, in fp32 outside autocast, to the
    custom op; everything else (and string paddings, unbatched inputs) runs unchanged."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.conv2d or func is F.conv_transpose2d:
            names = _CONV_ARGS if func is F.conv2d else _CONVT_ARGS
            bound = dict(zip(names, args), **kwargs)
            x, w = bound["input"], bound["weight"]
            if (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad) and x.dim() == 4
                    and not isinstance(bound.get("padding", 0), str)
                    and not torch.is_autocast_enabled(x.device.type)):
                bound = {k: v for k, v in bound.items() if k != "input" and k != "weight"}
                op = conv2d if func is F.conv2d else conv_transpose2d
                return op(x, w, **bound)
        return func(*args, **kwargs)


@contextlib.contextmanager
def double_backward_convs(device: torch.device | str, enabled: bool | None = None) -> Iterator[None]:
    """Within the block, convolutions that need gradients get first-order-convolution derivatives
    of every order (see the module's docstring); ``enabled`` None: :func:`enabled_for` the device.
    Thread-local (a torch function mode); nothing stays changed after the block."""
    if not (enabled_for(device) if enabled is None else enabled):
        yield
        return
    with _RouteConvs():
        yield
