"""Editing images with a W-space generator: projection (GAN inversion, optional pivotal tuning),
semantic directions (SeFa, PCA, InterFaceGAN boundaries), applying them and style mixing.
See docs/editing.md."""

from __future__ import annotations

from .common import W_SPACE_ARCHS, EditError, load_latent, save_latent
from .directions import Directions, boundary_from_classes, boundary_from_folders, find_directions, pca, sefa
from .apply import EditResult, apply_direction, direction_grid, edit, mix, resolve_direction, save_direction_grid
from .project import Projection, project

__all__ = ["EditError", "W_SPACE_ARCHS", "load_latent", "save_latent", "Directions", "sefa", "pca",
           "boundary_from_classes", "boundary_from_folders", "find_directions", "EditResult", "apply_direction",
           "direction_grid", "edit", "mix", "resolve_direction", "save_direction_grid", "Projection", "project"]
