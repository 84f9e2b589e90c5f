"""Options of a GAN training run: one dataclass, JSON round-trip, non-defaults marked."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from .errors import CheckpointError, GanforgeError
from .train.loop import LoopConfig
from .train.options import LoopOptions


# Each architecture's published optimiser settings, used where the options say "auto" (0 for a
# learning rate, < 0 for a beta or R1 gamma): DCGAN (Radford et al.) for dcgan and resnet,
# StyleGAN2-ADA's defaults for stylegan2 (its R1 heuristic gamma = 0.0002 R^2 / batch), and
# Progressive GAN's Adam for progan.
ARCH_OPTIMIZERS: dict[str, dict[str, float]] = {
    "dcgan": dict(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, r1_gamma=0.0),
    "resnet": dict(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, r1_gamma=0.0),
    "stylegan2": dict(lr_g=0.0025, lr_d=0.0025, beta1=0.0, beta2=0.99, r1_gamma=-1.0),  # -1: the heuristic
    "progan": dict(lr_g=1e-3, lr_d=1e-3, beta1=0.0, beta2=0.99, r1_gamma=0.0),
    "dfgan": dict(lr_g=2e-4, lr_d=4e-4, beta1=0.0, beta2=0.9, r1_gamma=0.0),  # DF-GAN (G 1e-4 there: long runs), MA-GP not R1
}
ARCH_OPTIMIZERS["stylegan2-official"] = ARCH_OPTIMIZERS["stylegan2"]  # published networks fine-tuned (--init)
# A class-conditional dcgan (not --text, not private) trains with Adam beta1 0, beta2 0.99: on the
# conditional MNIST benchmark (3 seeds) it raised recall by 0.10-0.17, cut FID by 25-36 % and raised the
# train-on-synthetic accuracy from ~91.5 % to 94-95 % against the paper's 0.5 / 0.999 (docs/benchmarks.md,
# session 13). Private runs keep the paper's (their figures were taken with it), text runs too (not
# measured).
CONDITIONAL_DCGAN_BETAS = (0.0, 0.99)
# ... and with R1 (gamma 0.1, lazily every 4 steps with gamma x 4): recall 0.72 -> 0.84, FID 6.9 -> 4.8 at
# width 32, 5.5 -> 2.8 at width 64 (docs/benchmarks.md, session 14); every 4 steps measured the same as every step.
CONDITIONAL_DCGAN_R1 = (0.1, 4)
# ... and with R1 holding D, Adam at 4e-4 for G and D at width 32 (FID 4.8 -> 3.3 / 4.9 -> 3.4, precision 0.70 -> 0.79
# on seeds 0 / 1) but the paper's 2e-4 at width 64 (4e-4 there: FID 2.8 -> 3.6); in between 1/width, as muP scales
# Adam's rate for hidden layers (docs/benchmarks.md, session 15; 8e-4 and a slower G measured worse at 32).
CONDITIONAL_DCGAN_LR = (4e-4, 32, 2e-4, 64)  # rate at and below the first width, rate at and above the second


def conditional_dcgan_lr(width: int) -> float:
    """A conditional dcgan's auto Adam rate for G and D at ``width`` (:data:`CONDITIONAL_DCGAN_LR`)."""
    high, narrow, low, wide = CONDITIONAL_DCGAN_LR
    return high if width <= narrow else low if width >= wide else low * wide / width
STYLE_ARCHS = ("stylegan2", "stylegan2-official")  # mapping/synthesis: style mixing, path length, lazy R1 16


# What an option added after a run was made means for that run: a config.json without the key
# was written before the option existed, so the run keeps the behaviour it was trained with.
LEGACY_VALUES: dict[str, Any] = {"d_norm": "batch", "d_mbstd": "on", "ema_kimg": 0.0, "watchdog": "off", "damsm": 0.0,
                                  "g_upsample": "transposed"}
# Options left at "auto" whose meaning for a stored run is the one it had when the run was made
# (run.json: "resolved", and "optimizer" for the Adam betas), whatever today's defaults are.
KEPT_AUTOS = (*LEGACY_VALUES, "lr_g", "lr_d", "beta1", "beta2", "r1_gamma", "r1_every", "n_critic")
OPTIMIZER_AUTOS = ("lr_g", "lr_d", "beta1", "beta2", "r1_gamma", "r1_every")  # kept autos that run.json records under "optimizer"
G_UPSAMPLES = ("auto", "transposed", "nearest")  # dcgan G: the paper's transposed convs or resize-conv
D_NORMS = ("auto", "batch", "spectral", "group", "none")  # group / none: per-example D (no minibatch stddev; DP runs)
D_MBSTD = ("auto", "on", "off")
TEXT_ARCHS = ("dfgan", "dcgan", "stylegan2")
TEXT_ENCODERS = ("builtin", "clip")
# --text defaults: dcgan at width 48 (32 before 2026-12-07; stored runs resume at theirs), dfgan at width 16 and batch 24 (its
# paper's width costs as much per step as dcgan's whole run; see docs/text.md)
TEXT_DCGAN_WIDTH, TEXT_DFGAN_WIDTH, TEXT_DFGAN_BATCH = 48, 16, 24
TEXT_DAMSM = 5.0  # AttnGAN's lambda for the DAMSM sentence loss on G (builtin encoder)
WATCHDOG_POLICIES = ("auto", "off", "warn", "act")


@dataclass
class GanConfig(LoopOptions):
    # data
    data: str = "mnist"
    resolution: int = 32
    channels: int | None = None  # None: the dataset's own (1 for MNIST, 3 for colour folders)
    hflip: bool = False
    max_images: int | None = None
    # model
    arch: str = "dcgan"
    init: str = ""  # start from this network (ganforge.published.finetune): run dir, export, .pkl/.pt or name
    conditional: bool = False
    z_dim: int = 100
    width: int = 64
    weight_init: str = "auto"  # auto: DCGAN init for dcgan, PyTorch defaults otherwise
    g_upsample: str = "auto"  # dcgan G: transposed (the paper's) or nearest (resize + 3x3 conv); auto: see resize_conv
    d_norm: str = "auto"  # dcgan D: batch (BatchNorm, the paper's), spectral (SN, no BN), group or none; auto: see resolved()
    d_mbstd: str = "auto"  # dcgan D's minibatch-stddev channel: on or off; auto: off unconditional (docs/gans.md)
    # game
    loss: str = "non-saturating"
    r1_gamma: float = -1.0  # <0: the architecture's own (0; stylegan2: 0.0002 x resolution^2 / batch size)
    gp_weight: float = 10.0  # WGAN-GP only
    label_smoothing: float = 0.0  # one-sided: real target 1 - s
    n_critic: int = 0  # D steps per G step; 0: auto (1; a DP run: train.dp.DP_D_STEPS)
    mode_seeking: float | None = None  # MSGAN weight; None: 1 for conditional runs, 0 otherwise
    r1_every: int = 0  # lazy R1 (--text: MA-GP): every N steps with gamma x N; 0: 16 stylegan2, 4 dfgan, else 1
    style_mixing: float = 0.9  # stylegan2 only: probability of two latents with a crossover in W
    pl_weight: float = 2.0  # stylegan2 only: path-length regularisation weight (0: off)
    pl_every: int = 4  # stylegan2 only: path-length regularisation every N steps (weight x N)
    text: bool = False  # text-to-image: captions condition G and D (train/textgan.py; --arch dfgan or stylegan2)
    text_encoder: str = "builtin"  # --text: builtin (trained on the captions first, then frozen) or clip
    text_encoder_steps: int = 0  # --text builtin: the encoder's training steps (0: auto)
    ma_gp: float = -1.0  # --text: matching-aware gradient penalty weight (DF-GAN: 2, power 6); 0: off; <0 auto
    damsm: float = -1.0  # --text: DAMSM sentence loss weight on G (AttnGAN); <0 auto: 5 builtin encoder, 0 clip
    hard_negatives: int = 1  # --text: D's mismatched caption is the most similar of this many drawn (1: random)
    grow_steps: int = 0  # progan only: steps of each fade-in and of each stable phase; 0: --steps / (2 x levels - 1)
    # optimisation
    lr_g: float = 0.0  # 0: the architecture's own (ARCH_OPTIMIZERS)
    lr_d: float = 0.0
    beta1: float = -1.0  # <0: the architecture's own
    beta2: float = -1.0
    ema: float = 0.999  # EMA decay of G's weights when --ema-kimg is 0 (fixed decay); 0 disables the EMA
    ema_kimg: float = -1.0  # EMA half-life in thousands of images; <0 auto (batch x 10/32, StyleGAN2-ADA); 0: fixed --ema
    ema_rampup: float = 0.05  # the half-life is at most this x the images seen so far (0: no ramp-up)
    watchdog: str = "auto"  # lost-game watchdog: off, warn or act; auto: act
    augment: str = ""  # comma list of color,translation,cutout
    augment_p: float = 0.0
    ada_target: float | None = None  # e.g. 0.6 enables adaptive p
    channels_last: bool = True  # NHWC activations: oneDNN/cuDNN convs run faster (fp32 CPU: ~1.1-2x per conv)
    compile: bool = False
    # differential privacy (train/dp.py): DP-SGD on D, the noise set for the planned D steps
    dp_epsilon: float = 0.0  # the budget; 0: no differential privacy
    dp_delta: float = 1e-5
    dp_max_grad_norm: float = 1.0  # per-example clipping norm C
    dp_accountant: str = "rdp"  # rdp or prv (Opacus' accountants)
    # fingerprinted training (ganforge.fingerprint): this code is written into every training image
    fingerprint: str = ""  # bits (1011...) or hex (0x...); "": none
    fingerprint_steps: int = 0  # the encoder/decoder pair's training steps (0: auto)
    fingerprint_strength: float = 0.04  # the largest change per pixel, in [-1, 1] units (docs/provenance.md)
    # loop (the rest: train/options.py)
    steps: int = 1000
    batch_size: int = 64
    eval_every: int = 0
    eval_metric: str = "fid"
    eval_n: int = 2048

    # Options that may differ between a run and its resumption (they do not change the maths).
    RESUMABLE_CHANGES = LoopOptions.RESUMABLE_CHANGES + ("eval_every", "eval_n", "eval_metric", "channels_last")

    def validate(self) -> None:
        from .augment import POLICIES
        from .losses import LOSSES
        from .nets import ARCHITECTURES, load_builtin_architectures

        load_builtin_architectures()
        LOSSES.get(self.loss)
        if self.arch == "stylegan2-official":  # not built from a spec: only from a published network
            if not self.init:
                raise GanforgeError("--arch stylegan2-official is the published networks' architecture: "
                                    "give --init FILE_OR_NAME (an official .pkl, a rosinality .pt or a name)")
        else:
            ARCHITECTURES.get(self.arch)
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise GanforgeError(f"--resolution must be a power of two (32..256), got {self.resolution}")
        if self.channels not in (None, 1, 3):
            raise GanforgeError(f"--channels must be 1 or 3, got {self.channels}")
        for op in self.augment_ops:
            if op not in POLICIES:
                raise GanforgeError(f"unknown augmentation {op!r}; choose from {', '.join(POLICIES)}")
        if not 0 <= self.ema < 1:
            raise GanforgeError(f"--ema must be in [0, 1), got {self.ema}")
        if self.n_critic < 0:
            raise GanforgeError("--n-critic must be at least 1 (0: auto)")
        from .train.dp import check_options

        check_options(self)
        if self.fingerprint:
            from .fingerprint import parse_code

            parse_code(self.fingerprint)
            if self.dp_epsilon > 0:
                raise GanforgeError("--fingerprint would break the differential-privacy guarantee: its encoder is "
                                    "trained on the private images without noise")
            if self.text:
                raise GanforgeError("--fingerprint applies to image runs (unconditional or --conditional), not --text yet")
        if self.fingerprint_steps < 0:
            raise GanforgeError("--fingerprint-steps must be >= 0 (0: auto)")
        if not 0 < self.fingerprint_strength <= 0.5:
            raise GanforgeError(f"--fingerprint-strength must be in (0, 0.5], got {self.fingerprint_strength}")
        if self.r1_every < 0 or self.pl_every < 1:
            raise GanforgeError("--r1-every must be >= 0 (0: auto) and --pl-every >= 1")
        if not 0 <= self.style_mixing <= 1 or self.pl_weight < 0:
            raise GanforgeError("--style-mixing must be in [0, 1] and --pl-weight >= 0")
        if self.grow_steps < 0:
            raise GanforgeError("--grow-steps must be >= 0 (0: spread the growth over --steps)")
        if self.weight_init not in ("auto", "dcgan", "default"):
            raise GanforgeError("--weight-init must be auto, dcgan or default")
        if self.g_upsample not in G_UPSAMPLES:
            raise GanforgeError(f"--g-upsample must be one of {', '.join(G_UPSAMPLES)}, got {self.g_upsample!r}")
        if self.g_upsample == "nearest" and self.arch != "dcgan":
            raise GanforgeError(f"--g-upsample applies to --arch dcgan, not {self.arch}")
        if self.d_norm not in D_NORMS:
            raise GanforgeError(f"--d-norm must be one of {', '.join(D_NORMS)}, got {self.d_norm!r}")
        if self.d_mbstd not in D_MBSTD:
            raise GanforgeError(f"--d-mbstd must be one of {', '.join(D_MBSTD)}, got {self.d_mbstd!r}")
        if self.d_mbstd != "auto" and self.arch != "dcgan":
            raise GanforgeError(f"--d-mbstd applies to --arch dcgan, not {self.arch}")
        if self.watchdog not in WATCHDOG_POLICIES:
            raise GanforgeError(f"--watchdog must be one of {', '.join(WATCHDOG_POLICIES)}, got {self.watchdog!r}")
        if self.ema_rampup < 0:
            raise GanforgeError(f"--ema-rampup must be >= 0 (0: no ramp-up), got {self.ema_rampup}")
        if self.text:
            if self.arch not in TEXT_ARCHS:
                raise GanforgeError(f"--text trains --arch {' or '.join(TEXT_ARCHS)}, not {self.arch}")
            if self.text_encoder not in TEXT_ENCODERS:
                raise GanforgeError(f"--text-encoder must be one of {', '.join(TEXT_ENCODERS)}, got {self.text_encoder!r}")
            if self.conditional:
                raise GanforgeError("--text and --conditional are two kinds of condition: give one")
            if self.text_encoder_steps < 0 or self.hard_negatives < 1:
                raise GanforgeError("--text-encoder-steps must be >= 0 and --hard-negatives >= 1")
        elif self.arch == "dfgan":
            raise GanforgeError("--arch dfgan is text-to-image: add --text (and a captioned --data folder)")
        self.loop_config().validate()

    def resolved(self) -> "GanConfig":
        """A copy with the "auto" optimiser settings replaced by the architecture's own
        (:data:`ARCH_OPTIMIZERS`; an architecture registered elsewhere gets DCGAN's). A resume
        compares resolved options, so an explicit value equal to the automatic one is the same run."""
        d = ARCH_OPTIMIZERS.get(self.arch, ARCH_OPTIMIZERS["dcgan"])
        out = replace(self)
        private = self.dp_epsilon > 0  # DP: a per-example D, more D steps, no watchdog (train/dp.py)
        conditional_dcgan = self.arch == "dcgan" and self.conditional and not self.text and not private
        lr = (conditional_dcgan_lr(self.width),) * 2 if conditional_dcgan else (d["lr_g"], d["lr_d"])
        out.lr_g, out.lr_d = self.lr_g or lr[0], self.lr_d or lr[1]
        betas = CONDITIONAL_DCGAN_BETAS if conditional_dcgan else (d["beta1"], d["beta2"])
        out.beta1 = betas[0] if self.beta1 < 0 else self.beta1
        out.beta2 = betas[1] if self.beta2 < 0 else self.beta2
        if conditional_dcgan and not self.r1_every:
            out.r1_every = CONDITIONAL_DCGAN_R1[1]
        if self.r1_gamma < 0 and conditional_dcgan:
            out.r1_gamma = CONDITIONAL_DCGAN_R1[0]
        elif self.r1_gamma < 0:
            gamma = d["r1_gamma"]
            out.r1_gamma = 0.0002 * self.resolution ** 2 / self.batch_size if gamma < 0 else gamma
        if self.d_norm == "auto":  # only dcgan's D has the choice (docs/gans.md: spectral norm measured slower)
            from .train.dp import DP_D_NORM

            out.d_norm = DP_D_NORM if private else "batch"
        if self.d_mbstd == "auto" and self.arch == "dcgan":  # other architectures: their own D (auto)
            out.d_mbstd = "off" if private or not (self.conditional or self.text) else "on"
        if private:  # Opacus' per-sample conv gradients are wrong on channels-last tensors (tests/test_dp.py)
            out.channels_last = False
        if self.n_critic == 0:
            from .train.dp import DP_D_STEPS

            out.n_critic = DP_D_STEPS if private else 1
        out.g_upsample = "nearest" if self.resize_conv else "transposed"
        if self.ema_kimg < 0:  # StyleGAN2-ADA's auto config: a half-life of 10 images per 32 of batch
            out.ema_kimg = self.batch_size * 10 / 32
        if self.watchdog == "auto":
            out.watchdog = "off" if private else "act"
        if self.ma_gp < 0:  # MA-GP's 6th power through a BatchNorm D blows up (dcgan's text D keeps BatchNorm)
            out.ma_gp = 0.0 if self.arch == "dcgan" else 2.0
        if self.damsm < 0:  # needs the encoder's image tower: builtin's is small; CLIP's would cost more than G
            out.damsm = TEXT_DAMSM if self.text_encoder == "builtin" else 0.0
        return out

    def with_text_defaults(self, stored: "GanConfig | None" = None) -> "GanConfig":
        """A ``--text`` run's defaults where the options are at the GAN's: width 48 for dcgan (at 32,
        the conditional recipe's, seeds drew the requested digit 96.7-99.1 % of the time; docs/text.md),
        or ``stored``'s width when resuming a text dcgan run (``stored``: its options); for ``--arch
        dfgan`` DF-GAN's hinge loss, width 16 and batch 24 (the CLI cannot tell a default from the
        same value given: ask for another value than these to change them)."""
        if not self.text:
            return self
        out = replace(self)
        if self.arch == "dcgan" and self.width == GanConfig.width:  # a resumed text dcgan keeps its width
            resumed = stored is not None and stored.text and stored.arch == "dcgan"
            out.width = stored.width if resumed else TEXT_DCGAN_WIDTH
        if self.arch == "dfgan":
            if self.loss == GanConfig.loss:
                out.loss = "hinge"
            if self.width == GanConfig.width:
                out.width = TEXT_DFGAN_WIDTH
            if self.batch_size == GanConfig.batch_size:
                out.batch_size = TEXT_DFGAN_BATCH
        return out

    def adopt_stored(self, stored: "GanConfig", given: set[str] | frozenset[str] = frozenset()) -> "GanConfig":
        """A copy that keeps ``stored``'s values (a run being resumed) for the options added since
        it was made (:data:`LEGACY_VALUES`) and for the "auto" options whose meaning it keeps
        (:data:`KEPT_AUTOS`), unless ``given`` names them: an old run goes on with the behaviour it
        was trained with, whatever today's defaults are."""
        out = replace(self)
        for name in KEPT_AUTOS:
            if name not in given and getattr(self, name) == getattr(GanConfig, name):
                setattr(out, name, getattr(stored, name))
        return out

    @property
    def resize_conv(self) -> int:
        """1 where dcgan's G upsamples by nearest-neighbour resizing and a 3x3 conv (Odena et al.
        2016) instead of stride-2 transposed convs: ``--g-upsample nearest``, and auto for ``--text``
        (the transposed convs' per-pixel colour speckle read as noise strokes; docs/text.md) and for
        unconditional runs (their checkerboard let D win at 64²; docs/gans.md)."""
        if self.g_upsample == "auto":  # unconditional: the transposed convs' checkerboard lost the game at 64²
            return int(self.arch == "dcgan" and (self.text or not (self.conditional or self.dp_epsilon > 0)))
        return int(self.g_upsample == "nearest")

    @property
    def mode_seeking_weight(self) -> float:
        if self.mode_seeking is not None:
            return self.mode_seeking
        return 1.0 if self.conditional or (self.text and self.arch == "dcgan") else 0.0

    @property
    def r1_interval(self) -> int:
        if self.r1_every:
            return self.r1_every
        return 16 if self.arch in STYLE_ARCHS else 4 if self.arch == "dfgan" else 1  # dfgan: lazy MA-GP

    @property
    def grow_interval(self) -> int:
        """progan: steps per fade-in and per stable phase. Auto: the run's --steps split evenly into
        the first level's phase and a fade-in + stable phase per further level."""
        if self.grow_steps:
            return self.grow_steps
        from .nets.progan import num_levels

        return max(1, self.steps // (2 * num_levels(self.resolution) - 1))

    def steps_dependent(self) -> list[str]:
        """Why --steps may not change on resume (run_task's check): the maths that follows it."""
        out = []
        if self.arch == "progan" and not self.grow_steps:
            out.append("steps (progressive growing's phases follow --steps: set --grow-steps to change it)")
        if self.dp_epsilon > 0:
            out.append("steps (a private run's noise is set for its planned steps)")
        return out

    @property
    def augment_ops(self) -> tuple[str, ...]:
        return tuple(op.strip() for op in self.augment.split(",") if op.strip())

    def loop_config(self) -> LoopConfig:
        names = {f.name for f in fields(LoopConfig)}
        out = LoopConfig(**{k: v for k, v in asdict(self).items() if k in names})
        if self.dp_epsilon > 0 and out.precision == "auto":  # per-sample gradients in fp32
            out.precision = "fp32"
        return out

    def to_json(self) -> dict[str, Any]:
        defaults = GanConfig()
        options = asdict(self)
        return {"options": options,
                "non_defaults": sorted(k for k, v in options.items() if v != getattr(defaults, k))}

    def save(self, path: Path) -> None:
        from .train.checkpoint import write_text_atomic

        write_text_atomic(Path(path), json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "GanConfig":
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read run config {path} (missing, truncated or corrupt): {exc}") from exc
        if not isinstance(raw, dict):
            raise CheckpointError(f"cannot read run config {path}: not a JSON object")
        known = {f.name for f in fields(cls)}
        options = {k: v for k, v in raw.get("options", raw).items() if k in known}
        legacy = {k: v for k, v in LEGACY_VALUES.items() if k not in options}  # an older run's behaviour
        return cls(**{**legacy, **options, **cls._resolved_then(Path(path).with_name("run.json"), options)})

    @classmethod
    def _resolved_then(cls, run_json: Path, options: dict[str, Any]) -> dict[str, Any]:
        """The values the run's "auto" options had when it was made (``run.json``'s ``resolved``),
        for the options it left at auto: an "auto" whose meaning changed since (a new default)
        keeps its old meaning for that run, so it resumes, loads and audits with the networks it
        has. Empty when there is no readable run.json."""
        try:
            info = json.loads(run_json.read_text())
            optimizer, resolved = info.get("optimizer", {}), info.get("resolved", {})
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            return {}
        if not isinstance(resolved, dict) or not isinstance(optimizer, dict):
            return {}
        then = {**{k: optimizer[k] for k in OPTIMIZER_AUTOS if k in optimizer}, **resolved}
        if "r1_every" not in optimizer and options.get("arch", "dcgan") == "dcgan":
            then["r1_every"] = 1  # recorded since session 14; a dcgan's auto interval was 1 before
        if "n_critic" not in resolved and options.get("dp_epsilon", 0.0) > 0:
            from .train.dp import DP_D_STEPS_BEFORE

            then["n_critic"] = DP_D_STEPS_BEFORE  # recorded since session 15
        return {k: v for k, v in then.items()
                if k in options and k in KEPT_AUTOS and options[k] == getattr(cls, k)}

    def differences(self, other: "GanConfig") -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]
