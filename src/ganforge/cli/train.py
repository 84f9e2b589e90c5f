"""``ganforge train``: flags map one-to-one onto :class:`ganforge.config.GanConfig`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import MISSING, fields
from typing import Any, Callable

from ..config import GanConfig
from ._common import PRECISIONS, add_device, add_json, add_resume, hide_alias, write_json

HELP = {
    "init": "start from an existing network (transfer learning): a GAN run directory (G, G_ema, D), a ganforge "
            "generator export, or a published network (official .pkl, rosinality .pt, or a name such as "
            "stylegan2-ffhq256: its G and G_ema, and the .pkl's D; a .pt gets a fresh D); sets arch, resolution "
            "and z-dim",
    "data": "image folder (prepared into the cache on first use), a dataset made by 'ganforge data prepare', or mnist / fashion-mnist / digits",
    "resolution": "image size (power of two, 32..256)",
    "channels": "1 (grey) or 3 (RGB); default: the dataset's",
    "arch": "dcgan, resnet (SNGAN-style, spectral norm), stylegan2 (mapping network, modulated convs, noise, "
            "skip G / residual D) or progan (progressive growing from 4x4 with fade-in, pixel norm, equalised LR; "
            "the paper used --loss wgan-gp); each gets its paper's Adam settings unless --lr-g/--beta1/... say otherwise",
    "grow_steps": "progan: steps of each fade-in and of each stable phase (0: --steps split evenly over the levels)",
    "conditional": "class-conditional G (label embedding) and projection D",
    "text": "text-to-image: train on a captioned folder (x.png + x.txt, metadata.jsonl or metadata.csv); "
            "--arch dcgan (the default: text-conditional BatchNorm in G, projection D), dfgan or stylegan2; "
            "D also sees mismatched captions",
    "text_encoder": "--text: builtin (trained on the dataset's captions first, then frozen and kept in the run) or clip",
    "text_encoder_steps": "--text builtin: training steps of the text encoder (0: its default)",
    "ma_gp": "--text: matching-aware gradient penalty weight (DF-GAN's 2, on real images with their captions; 0: off, "
             "stylegan2 then uses its lazy R1; <0: auto, 2 for dfgan/stylegan2, 0 for dcgan's BatchNorm D)",
    "damsm": "--text: weight of AttnGAN's DAMSM sentence loss on G (the builtin encoder's image tower judges whether "
             "each fake matches its caption; <0: auto, 5 with the builtin encoder, 0 with clip)",
    "hard_negatives": "--text: D's mismatched caption is the most similar of K drawn at random (1: a random one)",
    "loss": "minimax, non-saturating, lsgan, hinge or wgan-gp",
    "r1_gamma": "R1 penalty weight (0: off; <0: the architecture's own: off, stylegan2 0.0002 x resolution^2 / batch size)",
    "lr_g": "G learning rate (0: the architecture's own: 2e-4 dcgan/resnet, a --conditional dcgan 4e-4 at width <= 32 to 2e-4 at >= 64, 0.0025 stylegan2, 0.001 progan)",
    "lr_d": "D learning rate (0: the architecture's own, as --lr-g)",
    "beta1": "Adam beta1 (<0: the architecture's own: 0.5 dcgan/resnet, 0 stylegan2/progan and a --conditional dcgan)",
    "beta2": "Adam beta2 (<0: the architecture's own: 0.999 dcgan/resnet, 0.99 stylegan2/progan and a --conditional dcgan)",
    "r1_every": "lazy R1: apply it every N steps with weight x N (0: 16 for stylegan2, 1 otherwise)",
    "style_mixing": "stylegan2: probability of mixing two latents at a random layer (style mixing regularisation)",
    "pl_weight": "stylegan2: path-length regularisation weight (0: off)",
    "pl_every": "stylegan2: path-length regularisation every N steps (lazy, weight x N)",
    "label_smoothing": "one-sided: real target 1 - s",
    "n_critic": "D steps per G step (0: auto: 1, or 10 in a --dp-epsilon run)",
    "dp_epsilon": "differentially private training with this budget epsilon: DP-SGD on D (Opacus: per-example "
                  "clipping, Gaussian noise set for the planned --steps x --n-critic D steps, Poisson batches); "
                  "the run stops when it is spent (0: off; docs/privacy.md)",
    "dp_delta": "--dp-epsilon: the delta of the (epsilon, delta) guarantee (keep it below 1 / the number of images)",
    "dp_max_grad_norm": "--dp-epsilon: per-example gradient clipping norm C",
    "fingerprint": "fingerprinted training (Yu et al. 2021): write this code, bits (1011...) or hex (0x...), 16-256 "
                   "bits, into every training image with an encoder/decoder pair trained for it first (kept in the "
                   "run); the generator's samples then carry it: 'ganforge provenance IMAGE --fingerprint RUN' reads it",
    "fingerprint_steps": "--fingerprint: training steps of the encoder/decoder pair (0: auto)",
    "fingerprint_strength": "--fingerprint: the largest change the code makes to a pixel, in [-1, 1] units (0.04: "
                            "~5 grey levels); more reads back more surely from samples and costs more FID",
    "dp_accountant": "--dp-epsilon: privacy accountant, rdp or prv (Opacus')",
    "mode_seeking": "mode-seeking weight (Mao et al. 2019) against per-class collapse; default 1 if --conditional or --text (dcgan), else 0",
    "ema": "fixed EMA decay of G weights, used with --ema-kimg 0 (0: no EMA at all)",
    "ema_kimg": "EMA half-life in thousands of images (<0: auto, batch x 10/32 as StyleGAN2-ADA; 0: the fixed --ema decay)",
    "ema_rampup": "EMA ramp-up: the half-life is at most this x the images seen so far (0: none)",
    "g_upsample": "dcgan generator upsampling: transposed (the paper's stride-2 transposed convs) or nearest (nearest-neighbour resize + 3x3 conv: no checkerboard speckle, ~1.3x the training time); auto: nearest for unconditional runs and --text",
    "d_norm": "dcgan discriminator normalisation: batch (the paper's BatchNorm), spectral (spectral norm, no BN) group (GroupNorm) or none (conv biases, no normalisation) — group and none are per-example Ds, without minibatch stddev; auto: batch, none with --dp-epsilon",
    "d_mbstd": "dcgan discriminator's minibatch-stddev channel: on or off; auto: off for unconditional runs (with it the BatchNorm D wins outright at 64²), on for --conditional and --text",
    "watchdog": "lost-game watchdog (D wins outright for a sustained window): off, warn (one line with the remedy) "
                "or act (also turns on/raises adaptive augmentation, then halves D's learning rate); auto: act",
    "augment": "comma list of color,translation,cutout (DiffAugment)",
    "augment_p": "augmentation probability (start value with --ada-target)",
    "ada_target": "adaptive p: target for E[sign D(real)], e.g. 0.6",
    "precision": "auto (bf16 where the CPU/GPU runs it natively, else fp32), fp32, bf16 or fp16 (GPU)",
    "lr_schedule": "constant, linear or cosine",
    "lr_decay_steps": "length of the LR schedule in steps (0: --steps); fix it to change --steps on resume",
    "grad_clip": "max gradient norm (0: off)",
    "nan_policy": "skip: drop a non-finite update; reload: also reload the last checkpoint",
    "max_reloads": "--nan-policy reload: reloads in a row without a newer checkpoint before the run stops with an error",
    "max_bad_steps": "non-finite steps in a row before the run stops with an error",
    "eval_every": "compute --eval-metric every N steps and keep a 'best' checkpoint (0: off)",
    "eval_metric": "fid or kid",
    "channels_last": "keep activations in the contiguous NCHW layout instead of channels-last (NHWC, faster convolutions on oneDNN CPUs and tensor-core GPUs)",
    "weight_init": "auto, dcgan (N(0, 0.02)) or default (PyTorch's)",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type = GanConfig,
                         helps: dict[str, str] | None = None, float_optionals: tuple[str, ...] = ("ada_target", "mode_seeking")) -> None:
    """One flag per field of the options dataclass ``cls`` (default None: the dataclass default
    applies, so a resumed run compares what was really asked). Shared by ``train`` and
    ``translate train``."""
    helps = HELP if helps is None else {**HELP, **helps}
    evaluates = any(f.name == "eval_metric" for f in fields(cls))  # --eval-every only where there is a metric
    for f in fields(cls):
        if f.name == "eval_every" and not evaluates:
            continue
        default = f.default if f.default is not MISSING else None
        if f.name == "progress":  # the shared vocabulary: --quiet (old spelling --no-progress, hidden)
            parser.add_argument("--quiet", dest="progress", action="store_false", default=None,
                                help="no progress bars")
            hide_alias(parser, "--no-progress", dest="progress", action="store_false", default=None)
            continue
        if f.name == "precision":
            parser.add_argument("--precision", dest="precision", default=None, choices=PRECISIONS,
                                help=f"{helps['precision']} (default: {default})")
            continue
        if isinstance(default, bool):
            if default:
                parser.add_argument(f"--no-{f.name.replace('_', '-')}", dest=f.name, action="store_false",
                                    default=None, help=helps.get(f.name, f"disable {f.name}"))
                # an option that became the default keeps its old switch, hidden, for one release
                hide_alias(parser, _flag(f.name), dest=f.name, action="store_true", default=None)
            else:
                parser.add_argument(_flag(f.name), dest=f.name, action="store_true", default=None,
                                    help=helps.get(f.name))
            continue
        kind = {int: int, float: float, str: str}.get(type(default), None)
        if kind is None:  # Optional fields default to None
            kind = float if f.name in float_optionals else int
        parser.add_argument(_flag(f.name), dest=f.name, type=kind, default=None,
                            help=f"{helps.get(f.name, '')} (default: {default})".strip())


def add_training_arguments(parser: argparse.ArgumentParser, cls: type = GanConfig,
                           helps: dict[str, str] | None = None, float_optionals: tuple[str, ...] | None = None) -> None:
    """What every command that trains into a run directory takes: ``--out``, ``--resume``,
    ``--device``, ``--json PATH`` and one flag per field of its options dataclass ``cls``."""
    parser.add_argument("--out", required=True, help="run directory (created; resumed if it holds a run)")
    add_resume(parser)
    add_device(parser)
    add_json(parser, "the run summary")
    if float_optionals is None:
        add_config_arguments(parser, cls, helps)
    else:
        add_config_arguments(parser, cls, helps, float_optionals=float_optionals)


SUMMARY_KEYS = ("run_dir", "steps", "seconds", "images_per_s", "precision", "bad_steps", "resumed_from")


def run_training(args: argparse.Namespace, cls: type, train: Callable[..., dict[str, Any]],
                 keys: tuple[str, ...] = SUMMARY_KEYS) -> int:
    """Build ``cls`` from the flags given (others keep the dataclass defaults, which is what a
    resume compares), train with the CLI's signal handling, print a one-line summary of ``keys``."""
    given = {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}
    summary = train(cls(**given), out=args.out, resume=args.resume, device=args.device, handle_signals=True)
    if args.json_path != "-":
        print(json.dumps({k: summary.get(k) for k in keys}))
    write_json(summary, args.json_path)
    stopped_by = summary.get("stopped_by")
    if stopped_by:  # SIGTERM/SIGINT: the step was finished and checkpointed; exit as the signal would
        print(f"stopped by {stopped_by} at step {summary.get('steps')}; checkpoint saved in {args.out} "
              f"(resume with the same command)", file=sys.stderr)
        return 128 + int(signal.Signals[stopped_by])
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train a GAN on an image folder or a standard dataset",
                            description="Train a GAN. Run it again with the same --out to resume exactly.")
    add_training_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..api import train_gan

    private = ("dp",) if getattr(args, "dp_epsilon", None) else ()  # epsilon spent in the one-line summary
    return run_training(args, GanConfig, train_gan, keys=SUMMARY_KEYS + private)
