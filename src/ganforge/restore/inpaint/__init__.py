"""Inpainting GAN on the shared training loop: masked image + mask -> completed image.

Training (:func:`train_inpainter`, run task ``inpainter``; ``config``, ``data``, ``task``,
``train``): any image folder (or a built-in dataset name) loaded at ``load_size``, random crops and
flips, and hole masks made on the fly from the run's generator (:mod:`ganforge.restore.masks`).
The hole is first filled with a smooth multigrid interpolation of the known pixels
(:func:`~.ops.pyramid_fill`, ``prefill='pyramid'``); the generator, pix2pix's U-Net on 4 channels
(the pre-filled RGB + the mask), predicts a correction to that fill (``prefill='none'``: the hole
is set to 0, mid-grey, and the U-Net paints it alone). Its output is composited (known pixels from
the input, generated pixels in the hole) and a PatchGAN judges the composite together with the
mask. Losses: L1 on the hole (``lambda_hole``), a smaller L1 on the known pixels
(``lambda_valid``, it keeps the raw output near the input around the hole), the adversarial term,
and optionally a VGG perceptual term (``perceptual_weight``, default 0).

Inference (``apply``: :func:`load_inpainter`, :func:`inpaint_image`): images of any size
(reflect-padded to the U-Net's multiple and cropped back), masks of any size (resized to the
image, nearest), and the known pixels returned exactly (the composite is done on the 8-bit values).

Importing this package registers the ``inpainter`` run task.
"""

from __future__ import annotations

from .apply import MASK_THRESHOLD, Inpainter, inpaint_image, load_inpainter, read_mask
from .config import GENERATORS, NORMS, InpaintConfig, build_inpaint_generator
from .data import SNAPSHOT_ROWS, MaskedBatches, fixed_inputs, load_inpaint_data
from .ops import PREFILLS, PYRAMID_SMOOTHING, composite, masked_l1, net_input, pyramid_fill
from .task import InpaintTask
from .train import train_inpainter

__all__ = ["GENERATORS", "MASK_THRESHOLD", "NORMS", "PREFILLS", "PYRAMID_SMOOTHING", "SNAPSHOT_ROWS", "InpaintConfig",
           "InpaintTask", "Inpainter", "MaskedBatches", "build_inpaint_generator", "composite", "fixed_inputs",
           "inpaint_image", "load_inpaint_data", "load_inpainter", "masked_l1", "net_input", "pyramid_fill",
           "read_mask", "train_inpainter"]
