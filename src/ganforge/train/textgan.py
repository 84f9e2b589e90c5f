"""Text-to-image GAN training (``ganforge train --data DIR --text``): the GAN task with captions.

- **Captions**: every image of the folder keeps its captions (``ganforge.text.captions``); the
  distinct caption texts are encoded once by the run's frozen text encoder into a table, and each
  image holds the ids of its own captions (:class:`CaptionTable`). A batch's ``label`` is the
  image's index; the task draws one of the image's captions per step from the run's generator.
- **The encoder**: ``builtin`` is trained first on the dataset's captions (DAMSM-style matching,
  ``ganforge.text.builtin``), then frozen and written into the run (``text_encoder.json`` +
  ``text_encoder.safetensors``), so ``ganforge sample RUN --prompt ...`` needs nothing else; a
  resumed run loads it instead of training it again. ``clip`` is loaded by name.
- **The game** (DF-GAN, Tao et al. 2022): D's loss is the run's adversarial loss on (real, matching
  text) vs the mean of (fake, text) and (real, *mismatched* text) — a caption of another image whose
  text differs from every caption of this one (:meth:`CaptionTable.mismatched`; the hardest of K
  with ``--hard-negatives K``, :func:`mismatched_embeddings`) — plus, for dfgan and stylegan2, the
  matching-aware gradient penalty ``ma_gp x mean(|grad_(x, s) D(x, s)|^6)`` on real images with
  their matching text. G's loss: the adversarial one on (fake, text), + AttnGAN's DAMSM sentence
  loss through the builtin encoder's frozen image tower (``--damsm``, :func:`damsm_loss`), + the
  mode-seeking term for the default dcgan. ``--arch stylegan2`` uses its own lazy R1 instead of
  MA-GP when ``--ma-gp 0``.

Sentence embeddings enter G and D where class generators take labels (``G(z, s)``, ``D(x, s)``),
scaled to unit variance per element (:func:`ganforge.generator.sentence_embeddings`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import make_grid

from ..config import GanConfig
from ..errors import DataError, GanforgeError
from ..generator import sentence_embeddings
from ..nets import GanNetSpec
from ..nets.gradfix import double_backward_convs
from .gan import GanTask, mode_seeking_penalty
from .task import StepContext
from .textfiles import encoder_files, load_run_encoder, save_captions, save_encoder

SNAPSHOT_PROMPTS = 8


class CaptionTable:
    """The captions of N images as ids into ``texts`` (the distinct caption strings, sorted):
    ``ids`` N x K (-1 pads), ``counts`` N. Draws are from the caller's generator (the run's), so a
    resumed run draws the same captions."""

    def __init__(self, captions: list[list[str]]) -> None:
        cleaned = [[c.strip() for c in caps if c and c.strip()] for caps in captions]
        missing = [i for i, caps in enumerate(cleaned) if not caps]
        if missing:
            raise DataError(f"{len(missing)} of {len(cleaned)} images have no caption (e.g. image #{missing[0]}); "
                            f"give every image at least one (ganforge data check lists them)")
        self.texts = sorted({c for caps in cleaned for c in caps})
        if len(self.texts) < 2:
            raise DataError("--text needs at least two different captions (mismatched captions are D's negatives)")
        pos = {t: i for i, t in enumerate(self.texts)}
        k = max(len(caps) for caps in cleaned)
        self.ids = torch.full((len(cleaned), k), -1, dtype=torch.long)
        for i, caps in enumerate(cleaned):
            row = sorted({pos[c] for c in caps})
            self.ids[i, :len(row)] = torch.tensor(row)
        self.counts = (self.ids >= 0).sum(dim=1)

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device) -> "CaptionTable":
        self.ids, self.counts = self.ids.to(device), self.counts.to(device)
        return self

    def matching(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One caption id of each image ``index``, uniformly among its own captions."""
        counts = self.counts[index]
        u = torch.rand(len(index), device=counts.device, generator=generator)
        k = (u * counts).long().clamp(max=self.ids.shape[1] - 1)
        return self.ids[index, k]

    def mismatched(self, index: torch.Tensor, generator: torch.Generator, rounds: int = 8) -> torch.Tensor:
        """A caption id for each image ``index`` whose text is none of that image's captions: a
        caption of a random other image (so common captions are drawn as often as they occur),
        redrawn while it matches; what still matches after ``rounds`` moves to the next text id
        that does not (there is one: no image holds every text, as there are >= 2 distinct ones
        ... unless one image holds them all, which is refused)."""
        n, device = len(index), self.ids.device
        own = self.ids[index]
        out = torch.empty(n, dtype=torch.long, device=device)
        todo = torch.ones(n, dtype=torch.bool, device=device)
        for _ in range(rounds):
            other = torch.randint(0, len(self), (n,), device=device, generator=generator)
            cand = self.matching(other, generator)
            ok = todo & ~(own == cand[:, None]).any(dim=1)
            out = torch.where(ok, cand, out)
            todo = todo & ~ok
            if not bool(todo.any()):
                return out
        for i in todo.nonzero().flatten().tolist():  # rare: step through the texts from the last draw
            taken = set(own[i].tolist())
            if len(taken - {-1}) >= len(self.texts):
                raise DataError("an image holds every distinct caption: no mismatched caption exists for it")
            j = int(cand[i])
            while j in taken:
                j = (j + 1) % len(self.texts)
            out[i] = j
        return out


def mismatched_embeddings(table: CaptionTable, embeddings: torch.Tensor, index: torch.Tensor, text: torch.Tensor,
                          generator: torch.Generator, k: int = 1) -> torch.Tensor:
    """Sentence embeddings of mismatched captions for images ``index`` (whose matching captions'
    embeddings are ``text``): one drawn at random (k = 1, DF-GAN), or the most similar to the
    matching caption of ``k`` drawn (``--hard-negatives``, VSE++'s hardest negative), so D must
    tell apart captions that differ in one word, not only the easy ones."""
    cand = torch.stack([table.mismatched(index, generator) for _ in range(k)])  # k x N caption ids
    emb = embeddings[cand]
    if k == 1:
        return emb[0]
    pick = (emb * text[None]).sum(-1).argmax(0)
    return emb[pick, torch.arange(len(index), device=emb.device)]


def image_captions(dataset: Any) -> list[list[str]]:
    """The captions of each image of a prepared dataset, in the dataset's order: read from the
    source folder while it is there (its captions as they are now), else the ones the prepared
    dataset kept."""
    from ..data.prepared_dataset import read_index
    from ..text.captions import captions_for, has_captions, load_captions

    source = read_index(dataset.path)["source"]
    paths = list(source.get("paths") or [])[:len(dataset)]
    root = Path(source.get("root", ""))
    where = root if source.get("kind") == "folder" and has_captions(root) else dataset.path
    return captions_for(load_captions(where), paths)


def run_encoder(cfg: GanConfig, run_dir: Path, resuming: bool, images_fn, captions: list[list[str]],
                device: torch.device, progress: bool, is_main: bool):
    """The run's text encoder: the stored one when resuming, else built (builtin: trained on the
    captions now) and stored in the run directory by the main process."""
    if resuming and all(p.is_file() for p in encoder_files(run_dir)):
        return load_run_encoder(run_dir)
    if cfg.text_encoder == "builtin":
        from ..text.builtin import train_builtin_encoder

        kw = {"steps": cfg.text_encoder_steps} if cfg.text_encoder_steps else {}
        encoder = train_builtin_encoder(images_fn(), captions, seed=cfg.seed, device=device, progress=progress, **kw)
    else:
        from ..text.encoder import build_text_encoder

        encoder = build_text_encoder(cfg.text_encoder)
    encoder = encoder.eval().requires_grad_(False)
    if is_main:
        save_encoder(encoder, run_dir)
    return encoder


def damsm_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """AttnGAN's DAMSM sentence loss on generated images: the symmetric softmax over the batch's
    cosine similarities between the frozen image encoder's embeddings of the fakes and their
    captions' embeddings, x the encoder's learned temperature. (Fakes of one caption — the
    mode-seeking pairs — have equal text columns: their gradients cancel, nothing pushes them apart.)"""
    import torch.nn.functional as F

    logits = logit_scale * F.normalize(image_emb.float(), dim=1) @ F.normalize(text_emb.float(), dim=1).T
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def matching_aware_gp(D, real: torch.Tensor, text: torch.Tensor, text_mis: torch.Tensor,
                      gradfix: bool | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(D(real, text), D(real, text_mis), MA-GP) in fp32 outside autocast: DF-GAN's
    ``mean(|grad_(x, s) D(x, s)|^6)`` with the gradient taken w.r.t. the real image *and* its
    matching sentence embedding together. D's image features are computed once for both texts
    when D has ``features``/``logits`` (dfgan)."""
    with torch.autocast(real.device.type, enabled=False), double_backward_convs(real.device, gradfix):
        x = real.detach().float().requires_grad_(True)
        s = text.detach().float().requires_grad_(True)
        if hasattr(D, "features"):
            h = D.features(x)
            d_real, d_mis = D.logits(h, s).float(), D.logits(h, text_mis.float()).float()
        else:
            d_real, d_mis = D(x, s).float(), D(x, text_mis.float()).float()
        g_x, g_s = torch.autograd.grad(d_real.sum(), (x, s), create_graph=True)
        norm = (g_x.flatten(1).square().sum(dim=1) + g_s.square().sum(dim=1)).sqrt()
        return d_real, d_mis, norm.pow(6).mean()


class TextGanTask(GanTask):
    """The GAN task conditioned on captions (see the module docstring)."""

    def __init__(self, cfg: GanConfig, spec: GanNetSpec, device: torch.device, table: CaptionTable,
                 embeddings: torch.Tensor) -> None:
        super().__init__(cfg, spec, device)
        self.table = table.to(device)
        self.embeddings = embeddings.to(device)  # one row per distinct caption text (table.texts)
        self.image_encoder, self.logit_scale = None, 10.0
        # snapshots: one row per fixed caption (spread over the sorted texts), the same z in each column
        picks = torch.linspace(0, len(table.texts) - 1, min(SNAPSHOT_PROMPTS, len(table.texts))).round().long()
        self.snapshot_prompts = [table.texts[int(i)] for i in picks]
        self.snapshot_rows = self.snapshot_prompts
        z = self.fixed_z[:self.per_row]
        self.fixed_z = z.repeat(len(picks), 1)
        self.fixed_text = self.embeddings[picks.to(device)].repeat_interleave(self.per_row, dim=0)
        self.fixed_labels = None

    def step(self, ctx: StepContext) -> dict[str, Any]:
        cfg, D = self.cfg, self.D_fwd
        real_target = 1.0 - cfg.label_smoothing
        fake = None
        for i in range(cfg.n_critic):
            batch = ctx.next_batch()
            real, index = batch["image"], batch["label"]
            if cfg.channels_last:
                real = real.contiguous(memory_format=torch.channels_last)
            text_real = text = self.embeddings[self.table.matching(index, ctx.generator)]
            text_mis = self._negatives(index, text, ctx.generator)
            z = ctx.randn(real.shape[0], self.spec.z_dim)
            if self.mode_seeking > 0:  # fakes in pairs (z1, s), (z2, s) for the mode-seeking term
                half = text.shape[0] // 2
                text = torch.cat([text[:half], text[:half], text[2 * half:]])
            last = i == cfg.n_critic - 1
            r1_now = cfg.ma_gp <= 0 and cfg.r1_gamma > 0 and ctx.step % cfg.r1_interval == 0
            with ctx.autocast():
                if last:
                    fake = self._generate(z, text, ctx, last)
                    fake_d = fake.detach()
                else:
                    with torch.no_grad():
                        fake_d = self._generate(z, text, ctx, last)
                real_in = self._aug(real, ctx)
                penalty = None
                if cfg.ma_gp > 0 and ctx.step % cfg.r1_interval == 0:  # lazy: every r1_interval steps, weight x N
                    d_real, d_mis, penalty = matching_aware_gp(self.D, real_in, text_real, text_mis, self.gradfix)
                elif r1_now:
                    from ..losses import d_real_and_r1

                    d_real, penalty = d_real_and_r1(D, real_in, text_real, self.gradfix)
                    d_mis = D(real_in, text_mis).float()
                elif hasattr(self.D, "features"):  # dfgan: one pass over the reals for both texts
                    h = self.D.features(real_in)
                    d_real, d_mis = self.D.logits(h, text_real).float(), self.D.logits(h, text_mis).float()
                else:
                    d_real, d_mis = D(real_in, text_real).float(), D(real_in, text_mis).float()
                d_fake = D(self._aug(fake_d, ctx), text).float()
                loss_d = 0.5 * (self.loss.d_loss(d_real, d_fake, real_target) + self.loss.d_loss(d_real, d_mis, real_target))
                if penalty is not None:
                    weight = (cfg.ma_gp if cfg.ma_gp > 0 else 0.5 * cfg.r1_gamma) * cfg.r1_interval
                    loss_d = loss_d + weight * penalty
            self.ada.observe(d_real, getattr(ctx, "all_reduce_sum", None))
            ctx.optimize(loss_d, "D", [self.D])
        terms: dict[str, torch.Tensor] = {}

        def g_loss() -> torch.Tensor:
            with ctx.autocast():
                loss_g = terms["adversarial"] = self.loss.g_loss(D(self._aug(fake, ctx), text).float())
                if cfg.damsm > 0 and self.image_encoder is not None:
                    loss_g = loss_g + cfg.damsm * damsm_loss(self.image_encoder(fake.float()), text, self.logit_scale)
                if self.mode_seeking > 0:
                    loss_g = loss_g + self.mode_seeking * mode_seeking_penalty(fake, z)
            if self.style_based and cfg.pl_weight > 0 and ctx.step % cfg.pl_every == 0:
                terms["pl"] = self._path_length_penalty(ctx, z.shape[0], text)
                loss_g = loss_g + cfg.pl_weight * cfg.pl_every * terms["pl"]
            return loss_g

        self._generator_step(ctx, g_loss)
        self.ada.update(ctx.step, real.shape[0])
        show = (lambda t: torch.sigmoid(t).mean()) if self.loss.name in ("minimax", "non-saturating") else (lambda t: t.mean())
        scalars = {"loss_G": terms["adversarial"].detach(), "loss_D": loss_d.detach(), "D_real": show(d_real.detach()),
                   "D_fake": show(d_fake.detach()), "D_mismatch": show(d_mis.detach()), "augment_p": self.ada.p}
        if penalty is not None:
            scalars["gradient_penalty"] = penalty.detach()
        if "pl" in terms:
            scalars["pl_penalty"] = terms["pl"].detach()
        return scalars

    def _negatives(self, index: torch.Tensor, text: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return mismatched_embeddings(self.table, self.embeddings, index, text, generator, self.cfg.hard_negatives)

    def eval_condition(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Sentence embeddings of ``n`` captions, each of a random training image (in-training FID)."""
        index = torch.randint(0, len(self.table), (n,), generator=generator).to(self.table.ids.device)
        k = (torch.rand(n, generator=generator).to(index.device) * self.table.counts[index]).long()
        return self.embeddings[self.table.ids[index, k]]

    @torch.no_grad()
    def snapshot(self, ctx: StepContext) -> torch.Tensor:
        self.settle()
        images = self.G_ema(self.fixed_z, self.fixed_text).float()
        return make_grid(images.add(1).div(2).clamp(0, 1).cpu(), nrow=self.per_row, padding=2, pad_value=1.0)


def _images_of(dataset) -> torch.Tensor:
    return torch.from_numpy(dataset.read(range(len(dataset))).copy())


def prepare_text_run(cfg: GanConfig, accelerator, run_dir: Path, resuming: bool, make_eval_fn):
    """``prepare`` of a ``--text`` run (:func:`ganforge.api.train_gan` hands over to it;
    ``make_eval_fn(cfg, task, spec)``: its in-training evaluation, which draws conditions with
    :meth:`TextGanTask.eval_condition`)."""
    import time

    from ..data.prepared import cached_prepared, open_training_data
    from ..data.prepared_dataset import open_prepared
    from .batches import MemmapBatches
    from .run import Prepared

    t0 = time.perf_counter()
    progress = cfg.progress and accelerator.is_local_main_process
    first = accelerator.local_main_process_first if accelerator.num_processes > 1 else None
    dataset = open_training_data(cfg.data, resolution=cfg.resolution, channels=cfg.channels,
                                 max_images=cfg.max_images, progress=progress, first=first)
    if dataset is None:
        if not Path(cfg.data).is_dir():
            raise GanforgeError(f"--text needs a captioned image folder or a dataset prepared from one, not {cfg.data!r}")
        dataset = open_prepared(cached_prepared(cfg.data, resolution=cfg.resolution, channels=cfg.channels,
                                                max_images=cfg.max_images, progress=progress))
    captions = image_captions(dataset)
    table = CaptionTable(captions)
    if accelerator.is_main_process:  # what `ganforge eval RUN` draws its prompts from
        held = torch.bincount(table.ids[table.ids >= 0], minlength=len(table.texts))
        save_captions(run_dir, table.texts, held.tolist(), dataset.source)
    device = accelerator.device
    encoder = run_encoder(cfg, run_dir, resuming, lambda: _images_of(dataset), captions, device, progress,
                          accelerator.is_main_process).to(device, "fp32")
    embeddings = torch.cat([sentence_embeddings(encoder, table.texts[i:i + 512])
                            for i in range(0, len(table.texts), 512)])
    spec = GanNetSpec(resolution=cfg.resolution, channels=dataset.channels, z_dim=cfg.z_dim, num_classes=0,
                      width=cfg.width, text_dim=int(embeddings.shape[1]), resize_conv=cfg.resize_conv)
    task = TextGanTask(cfg, spec, device, table, embeddings)
    if hasattr(encoder, "image_encoder") and hasattr(encoder, "logit_scale"):  # builtin: --damsm's image tower
        task.image_encoder = encoder.image_encoder
        task.logit_scale = float(encoder.logit_scale.clamp(max=math.log(100.0)).exp())
    batches = MemmapBatches(dataset, torch.arange(len(dataset)), cfg.batch_size, cfg.seed, cfg.hflip)
    t_data = time.perf_counter() - t0
    return Prepared(
        task=task, batches=batches, loop_config=cfg.loop_config(),
        eval_fn=make_eval_fn(cfg, task, spec) if cfg.eval_every else None,
        curve_groups={"losses": ["loss_G", "loss_D", "gradient_penalty"],
                      "D outputs": ["D_real", "D_fake", "D_mismatch"], "augment p": ["augment_p"], "eval": ["eval"]},
        run_info={"arch": cfg.arch, "spec": spec.__dict__, "class_names": [],
                  "text": {"encoder": encoder.name, "dim": int(encoder.dim), "captions": len(table.texts),
                           "snapshot_prompts": task.snapshot_prompts},
                  "optimizer": {**{k: getattr(task.cfg, k) for k in ("lr_g", "lr_d", "beta1", "beta2", "r1_gamma")},
                                "r1_every": task.cfg.r1_interval},
                  "data_source": dataset.source, "skipped_files": len(dataset.skipped)},
        summary={"data_seconds": t_data, "data_source": dataset.source},
    )
