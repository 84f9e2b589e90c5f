"""Train a super-resolution network (RRDBNet or SRResNet) the ESRGAN way, on the generic loop
(``config``, ``data``, ``task``, ``train``; ``load`` reads a run back).

One run, two phases, chosen by the step alone (so a run resumes exactly in either phase and
across the boundary):

1. steps ``[0, psnr_steps)``: L1 only (the "PSNR-oriented" network: ESRNet / SRResNet); the
   discriminator is not touched; the generator uses its own Adam (``G_psnr``, lr ``lr_psnr``).
2. steps ``[psnr_steps, steps)``: ``l1_weight`` × L1 + ``perceptual_weight`` × VGG feature L1 +
   ``gan_weight`` × adversarial loss (relativistic average, as ESRGAN, or non-saturating), with a
   PatchGAN discriminator; the generator switches to a fresh Adam (``G``, lr ``lr_g``), as ESRGAN
   starts its GAN stage from the PSNR model with new optimisers.

Images are RGB in [0, 1] (the range of :mod:`ganforge.nets.rrdb`); pairs are made on the fly by
:class:`ganforge.restore.degrade.DegradedBatches`. run.json's task is ``upscaler``:
``ganforge upscale --model RUN`` and :func:`ganforge.restore.zoo.build_upscaler` load the run's
generator (the EMA copy when there is one), and ``RUN/upscaler.safetensors`` holds it in the
ESRGAN/basicsr key layout when the run finishes. Importing this package registers the ``upscaler``
run task.
"""

from __future__ import annotations

from .config import ARCHS, GAN_LOSSES, NB_DEFAULT, SRConfig, build_sr_generator, d_output_size
from .data import SNAPSHOT_ROWS, fixed_pairs, load_sr_images
from .load import load_upscaler_run
from .task import PERCEPTUAL_SCALE, SRTask, load_perceptual, relativistic_d_loss, relativistic_g_loss
from .train import EXPORT_FILE, train_upscaler

__all__ = ["ARCHS", "EXPORT_FILE", "GAN_LOSSES", "NB_DEFAULT", "PERCEPTUAL_SCALE", "SNAPSHOT_ROWS", "SRConfig", "SRTask",
           "build_sr_generator", "d_output_size", "fixed_pairs", "load_perceptual", "load_sr_images",
           "load_upscaler_run", "relativistic_d_loss", "relativistic_g_loss", "train_upscaler"]
