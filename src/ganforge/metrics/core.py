"""The metric mathematics, on feature matrices only (no networks, no I/O), so each formula can be
tested on constructed inputs and reused by the CLI, the training loop and style transfer.

Conventions follow the references torch-fidelity implements: FID from float64 mean/covariance
(unbiased covariance, ``N-1``); KID as the unbiased MMD² with the cubic polynomial kernel
``(x·y/d + 1)³`` averaged over random subsets; IS as ``exp(E KL(p(y|x) || p(y)))`` per split;
precision/recall with k-NN radii (Kynkäänniemi et al. 2019, k=3); density/coverage
(Naeem et al. 2020, k=5).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _np64(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def feature_stats(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (float64) of an N×D feature matrix."""
    f = _np64(features)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need an N×D feature matrix with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1-mu2||² + Tr(S1 + S2 - 2 (S1 S2)^½).

    Tr((S1 S2)^½) is the sum of square roots of the eigenvalues of S1·S2, which are real and
    non-negative for PSD matrices; taking the real part of the complex square roots (as
    torch-fidelity does) discards the round-off of rank-deficient covariances (N < D)."""
    diff = mu1 - mu2
    eig = np.linalg.eigvals(sigma1 @ sigma2).astype(np.complex128)
    tr_covmean = float(np.sqrt(eig).real.sum())
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def fid(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray) -> float:
    return frechet_distance(*feature_stats(features_a), *feature_stats(features_b))


def _poly_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k_xx = (x @ x.T / d + 1.0) ** 3
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    m = x.shape[0]
    n = y.shape[0]
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float(sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2.0 * k_xy.sum() / (m * n))


def kid(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray, *, subsets: int = 100,
        subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: mean and std of the unbiased MMD² over random subsets.
    ``subset_size`` is clipped to the smaller set (the caller records the size actually used)."""
    a, b = _np64(features_a), _np64(features_b)
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError("KID needs at least 2 samples on each side")
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        xa = a[rng.choice(len(a), size, replace=False)]
        xb = b[rng.choice(len(b), size, replace=False)]
        values[i] = _poly_mmd2_unbiased(xa, xb)
    return float(values.mean()), float(values.std())


def inception_score(logits: torch.Tensor, *, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) per split (p(y) estimated within the split); mean and std."""
    logits = logits.detach().double().cpu()
    n = logits.shape[0]
    splits = max(1, min(splits, n))
    order = torch.from_numpy(np.random.RandomState(seed).permutation(n))
    logits = logits[order]
    log_p = logits.log_softmax(dim=1)
    p = log_p.exp()
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        chunk_p, chunk_log_p = p[lo:hi], log_p[lo:hi]
        log_marginal = chunk_p.mean(dim=0, keepdim=True).log()
        kl = (chunk_p * (chunk_log_p - log_marginal)).sum(dim=1).mean()
        scores.append(math.exp(float(kl)))
    return float(np.mean(scores)), float(np.std(scores))


def _pairwise(x: torch.Tensor, y: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    x, y = x.double(), y.double()
    return torch.cat([torch.cdist(x[i:i + chunk], y) for i in range(0, len(x), chunk)])


_CHUNK = 1024  # rows per distance block: memory stays O(chunk × N), never N × N


def knn_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each point to its k-th nearest neighbour in the same set (itself excluded)."""
    f = torch.as_tensor(features).double()
    k = min(k, len(f) - 1)
    return torch.cat([torch.cdist(f[i:i + _CHUNK], f).kthvalue(k + 1, dim=1).values  # +1: itself
                      for i in range(0, len(f), _CHUNK)])


def _inside_any(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """For each query: is it inside at least one ball (centre, radius)?"""
    q, c = queries.double(), centres.double()
    return torch.cat([(torch.cdist(q[i:i + _CHUNK], c) <= radii.unsqueeze(0)).any(dim=1)
                      for i in range(0, len(q), _CHUNK)])


def precision_recall(real: torch.Tensor, fake: torch.Tensor, *, k: int = 3) -> tuple[float, float]:
    """Precision: share of fake samples inside the real k-NN manifold; recall: share of real samples
    inside the fake manifold (Kynkäänniemi et al. 2019)."""
    real, fake = torch.as_tensor(real), torch.as_tensor(fake)
    precision = _inside_any(fake, real, knn_radii(real, k)).double().mean().item()
    recall = _inside_any(real, fake, knn_radii(fake, k)).double().mean().item()
    return float(precision), float(recall)


def density_coverage(real: torch.Tensor, fake: torch.Tensor, *, k: int = 5) -> tuple[float, float]:
    """Density: mean number of real k-NN balls containing a fake sample, divided by k; coverage:
    share of real balls containing at least one fake sample (Naeem et al. 2020)."""
    real, fake = torch.as_tensor(real).double(), torch.as_tensor(fake).double()
    r_real = knn_radii(real, k)
    count = 0.0
    covered = []
    for i in range(0, len(real), _CHUNK):
        inside = torch.cdist(real[i:i + _CHUNK], fake) <= r_real[i:i + _CHUNK].unsqueeze(1)  # real × fake
        count += inside.double().sum().item()
        covered.append(inside.any(dim=1))
    return float(count / (k * len(fake))), float(torch.cat(covered).double().mean().item())


def mean_pairwise_distance(features: torch.Tensor, max_n: int = 2000, seed: int = 0) -> float:
    """Average L2 distance between distinct samples: a simple diversity measure (collapse -> 0)."""
    f = torch.as_tensor(features)
    if len(f) > max_n:
        f = f[torch.randperm(len(f), generator=torch.Generator().manual_seed(seed))[:max_n]]
    n = len(f)
    if n < 2:
        return 0.0
    return float(_pairwise(f, f).sum().item() / (n * (n - 1)))
