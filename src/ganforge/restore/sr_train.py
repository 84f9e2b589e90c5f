"""The super-resolution trainer's old home: every name now lives in :mod:`ganforge.restore.sr`
(``config``, ``data``, ``task``, ``train``, ``load``) and is re-exported here, so
``from ganforge.restore.sr_train import SRConfig, train_upscaler, load_upscaler_run`` keeps working.
Importing it registers the ``upscaler`` run task (through the package)."""

from __future__ import annotations

from .sr import (ARCHS, EXPORT_FILE, GAN_LOSSES, NB_DEFAULT, PERCEPTUAL_SCALE, SNAPSHOT_ROWS, SRConfig, SRTask,
                 build_sr_generator, d_output_size, fixed_pairs, load_perceptual, load_sr_images, load_upscaler_run,
                 relativistic_d_loss, relativistic_g_loss, train_upscaler)

__all__ = ["ARCHS", "EXPORT_FILE", "GAN_LOSSES", "NB_DEFAULT", "PERCEPTUAL_SCALE", "SNAPSHOT_ROWS", "SRConfig", "SRTask",
           "build_sr_generator", "d_output_size", "fixed_pairs", "load_perceptual", "load_sr_images",
           "load_upscaler_run", "relativistic_d_loss", "relativistic_g_loss", "train_upscaler"]
