"""WCT (Li et al. 2017): whiten the content features (identity covariance), then colour them with
the style's covariance and mean. Exactly matches second-order statistics, where AdaIN matches only
per-channel mean/std. Single level with an AdaIN-style decoder; multi-level (relu5_1 → relu1_1, as
in the paper) when a decoder per level is given.
"""

from __future__ import annotations

import torch

from .adain import Moments, _mask_at

EIG_EPS = 1e-5
# Ridge added to the content covariance before its inverse square root, as the reference WCT code
# does (cov + I before the SVD): a region or tile with fewer positions than channels has a singular
# covariance whose tiny, noisy eigenvalues would otherwise amplify features by orders of magnitude.
CONTENT_RIDGE = 1.0


def _power(cov: torch.Tensor, p: float, eps: float = EIG_EPS) -> torch.Tensor:
    """cov^p via eigen-decomposition, ignoring directions with eigenvalue below ``eps`` (the
    reference's truncation), in float64 for stability."""
    vals, vecs = torch.linalg.eigh(cov.double())
    keep = vals > eps
    vals = torch.where(keep, vals.clamp_min(eps) ** p, torch.zeros_like(vals))
    return (vecs * vals) @ vecs.T


@torch.no_grad()
def style_colouring(style_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean C, cov^{1/2} C×C) of a style's features: all WCT needs from the style, cached."""
    m = Moments.of(style_feat, full=True)
    return m.mean(), _power(m.cov(), 0.5)


def wct(content: torch.Tensor, colouring: tuple[torch.Tensor, torch.Tensor],
        content_moments: Moments | None = None, ridge: float = CONTENT_RIDGE) -> torch.Tensor:
    """Whiten ``content`` (1×C×H×W) with its own (or the given) mean and covariance (+ ``ridge``·I),
    colour with the style."""
    cm = content_moments or Moments.of(content, full=True)
    mean_c = cm.mean()
    cov = cm.cov()
    whiten = _power(cov + ridge * torch.eye(cov.shape[0], dtype=cov.dtype), -0.5)
    mean_s, colour = colouring
    f = content[0].double().flatten(1) - mean_c[:, None]
    out = (colour @ (whiten @ f)) + mean_s[:, None]
    return out.view_as(content).to(content.dtype)


def mix_features(content: torch.Tensor, colourings: list[tuple[torch.Tensor, torch.Tensor]],
                 weights: list[float], alpha: float, *, masks: list[torch.Tensor] | None = None,
                 content_moments: list[Moments] | None = None) -> torch.Tensor:
    """Σ w_i · WCT(f_c, s_i) or per-region WCT inside ``masks``; then α-blend with f_c."""
    if masks is None:
        cm = content_moments[0] if content_moments else None
        target = sum(w * wct(content, col, cm) for w, col in zip(weights, colourings))
    else:
        target = torch.zeros_like(content)
        for i, (col, mask) in enumerate(zip(colourings, masks)):
            cm = content_moments[i] if content_moments else Moments.of(content, mask, full=True)
            target = target + _mask_at(mask, content).to(content) * wct(content, col, cm)
    return alpha * target + (1 - alpha) * content
