"""run_task (one path for every task: resume check, run files, summary) and the run registry
(load_run dispatches on run.json's task; a GAN command on another run is a one-line error)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.errors import CheckpointError, GanforgeError
from ganforge.runs import RUN_TASKS, DecoderRun, load_run
from ganforge.train import checkpoint
from ganforge.train.batches import PairedBatches
from ganforge.train.loop import LoopConfig
from ganforge.train.run import Prepared, run_task


@dataclass
class ToyOptions:
    steps: int = 4
    lr: float = 0.05
    batch_size: int = 4
    seed: int = 0
    ckpt_every: int = 2


class _PairTask:
    """A 1×1 conv translating A to B: the smallest image-to-image task on paired batches."""

    name = "toy-translator"

    def __init__(self, opts: ToyOptions) -> None:
        torch.manual_seed(opts.seed)
        self.net = torch.nn.Conv2d(3, 3, 1)
        self.opt = {"net": torch.optim.SGD(self.net.parameters(), lr=opts.lr)}

    def modules(self):
        return {"net": self.net}

    def optimizers(self):
        return self.opt

    def step(self, ctx):
        batch = ctx.next_batch()
        with ctx.autocast():
            loss = (self.net(batch["A"]) - batch["B"]).square().mean()
        ctx.optimize(loss, "net", [self.net])
        return {"loss": float(loss.detach())}

    def snapshot(self, ctx):
        return torch.zeros(3, 2, 2)

    def extra_state(self):
        return {}

    def load_extra_state(self, state):
        pass


def _toy_run(out: Path, opts: ToyOptions, **kw) -> dict:
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (32, 3, 8, 8), generator=g, dtype=torch.uint8)
    b = 255 - a

    def prepare(accelerator) -> Prepared:
        return Prepared(task=_PairTask(opts),
                        batches=PairedBatches(a, b, opts.batch_size, opts.seed, crop=6, hflip=True),
                        loop_config=LoopConfig(steps=opts.steps, batch_size=opts.batch_size, seed=opts.seed,
                                               precision="fp32", ckpt_every=opts.ckpt_every, sample_every=0,
                                               progress=False, tensorboard=False),
                        run_info={"kind": "toy"}, summary={"extra": 1})

    return run_task("toy", opts, out, prepare, resumable=("steps", "ckpt_every"), device="cpu", **kw)


def test_run_task_writes_run_files_and_resumes_bit_exactly(tmp_path):
    summary = _toy_run(tmp_path / "split", ToyOptions(steps=2))
    assert summary["task"] == "toy" and summary["resumed_from"] == 0 and summary["extra"] == 1
    run = tmp_path / "split"
    meta = json.loads((run / "run.json").read_text())
    assert meta["task"] == "toy" and meta["kind"] == "toy" and "ganforge_version" in meta
    config = json.loads((run / "config.json").read_text())
    assert config["options"]["steps"] == 2 and config["non_defaults"] == ["steps"]
    assert json.loads((run / "summary.json").read_text())["steps"] == 2
    resumed = _toy_run(run, ToyOptions(steps=4))  # steps is resumable
    assert resumed["resumed_from"] == 2 and resumed["steps"] == 4
    assert resumed["images_per_s"] > 0
    _toy_run(tmp_path / "straight", ToyOptions(steps=4))
    last = lambda r: checkpoint.load(checkpoint.list_checkpoints(r / "checkpoints")[-1])[0]  # noqa: E731
    a, b = last(run), last(tmp_path / "straight")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_task_refuses_changed_options_and_resume_never(tmp_path):
    _toy_run(tmp_path / "run", ToyOptions(steps=2))
    with pytest.raises(CheckpointError, match=r"options differ from the saved run \(lr\)") as info:
        _toy_run(tmp_path / "run", ToyOptions(steps=4, lr=0.1))
    assert "\n" not in str(info.value)
    with pytest.raises(GanforgeError, match="already holds a run"):
        _toy_run(tmp_path / "run", ToyOptions(steps=4), resume="never")
    with pytest.raises(GanforgeError, match="auto or never"):
        _toy_run(tmp_path / "other", ToyOptions(), resume="sometimes")


def test_images_seen_counts_the_declared_tensor(tmp_path):
    from ganforge.train.loop import RunContext, TrainingLoop, make_accelerator

    a = torch.zeros(16, 3, 4, 4, dtype=torch.uint8)
    src = PairedBatches(a, a, batch_size=4, seed=0, keys=("photo", "sketch"))
    loop = TrainingLoop(_PairTask(ToyOptions()), src, LoopConfig(steps=1, batch_size=4, progress=False),
                        tmp_path, make_accelerator(cpu=True))
    batch = RunContext(loop).next_batch()
    assert set(batch) == {"photo", "sketch"} and loop.images_seen == 4 and loop.batch_index == 1


# --- the run registry ------------------------------------------------------------------------------

def _fake_decoder_run(root: Path) -> Path:
    """A style-decoder run directory as train_decoder leaves it (no VGG weights needed)."""
    from ganforge.nets.adain_decoder import AdaINDecoder

    run = root / "dec"
    run.mkdir()
    torch.manual_seed(0)
    decoder = AdaINDecoder("relu2_1")
    checkpoint.save(run / "checkpoints", 3, {"decoder": decoder}, {})
    checkpoint.write_text_atomic(run / "run.json", json.dumps(
        {"task": "style-decoder", "encoder": "vgg19-caffe", "layer": "relu2_1", "decoder": "decoder.safetensors"}))
    return run


def test_registry_knows_gan_and_style_decoder():
    assert {"gan", "style-decoder"} <= set(RUN_TASKS.names())


def test_style_decoder_run_loads_through_the_registry(tmp_path):
    run = _fake_decoder_run(tmp_path)
    loaded = load_run(run)
    assert isinstance(loaded, DecoderRun)
    assert (loaded.layer, loaded.encoder, loaded.step) == ("relu2_1", "vgg19-caffe", 3)
    tensors = checkpoint.load(run / "checkpoints" / "step-0000003")[0]
    state = loaded.decoder.state_dict()
    assert all(torch.equal(state[k], tensors[f"decoder.{k}"]) for k in state)


def test_gan_commands_on_a_decoder_run_are_one_line_errors(tmp_path, capsys):
    from ganforge.cli import main

    run = _fake_decoder_run(tmp_path)
    with pytest.raises(CheckpointError, match="'style-decoder' run") as info:
        ganforge.load_generator(run)
    message = str(info.value)
    assert "\n" not in message and "ganforge stylize" in message and str(run) in message
    assert main(["sample", str(run), "--n", "1", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'style-decoder' run" in err[0]


def test_unknown_or_missing_task_is_a_one_line_error(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"task": "hologram"}))
    with pytest.raises(CheckpointError, match="'hologram'.*known: .*gan") as info:
        load_run(tmp_path)
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="not a ganforge run"):
        load_run(tmp_path / "nothing")


def test_gan_run_loads_through_the_registry(tmp_path):
    ganforge.train_gan(ganforge.GanConfig(data="digits", max_images=64, resolution=16, width=8, batch_size=16,
                                          steps=1, sample_every=0, progress=False, tensorboard=False), out=tmp_path / "g")
    gen = load_run(tmp_path / "g")
    assert isinstance(gen, ganforge.sample.Generator) and gen.step == 1
    assert gen.sample(2).shape == (2, 1, 16, 16)


def test_train_style_gets_the_resume_guards(tmp_path):
    """train_decoder goes through run_task: changed options and --resume never are refused before
    any weights or images are loaded (so no VGG is needed here), also for runs that only have the
    older train_style.json."""
    from dataclasses import asdict

    from ganforge.style.train import DecoderTrainConfig, train_decoder

    run = _fake_decoder_run(tmp_path)
    cfg = DecoderTrainConfig(content="c", style="s", steps=3, lr_decay_steps=3)
    (run / "train_style.json").write_text(json.dumps(asdict(cfg)))  # a run from before config.json
    changed = DecoderTrainConfig(content="c", style="s", steps=3, lr_decay_steps=3, style_weight=5.0)
    with pytest.raises(CheckpointError, match=r"options differ from the saved run \(style_weight\)"):
        train_decoder(changed, run, device="cpu")
    with pytest.raises(GanforgeError, match="already holds a run"):
        train_decoder(cfg, run, resume="never", device="cpu")
    with pytest.warns(DeprecationWarning, match="resume='auto' or 'never'"), \
            pytest.raises(GanforgeError, match="already holds a run"):
        train_decoder(cfg, run, resume=False, device="cpu")  # the old bool still works, with a warning
    longer = DecoderTrainConfig(content="c", style="s", steps=5)  # linear schedule follows --steps
    with pytest.raises(CheckpointError, match="lr-decay-steps"):
        train_decoder(longer, run, device="cpu")
