"""Differentially private training (``train --dp-epsilon``, ganforge.train.dp): the accountant is
Opacus', the noise spends the budget, per-example clipping really bounds each example's share,
refusals are one line, resume is exact (weights and epsilon), and the run's files carry the dp block."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import ganforge
from ganforge.cli import main
from ganforge.config import GanConfig
from ganforge.errors import GanforgeError
from ganforge.nets import GanNetSpec
from ganforge.train import checkpoint, dp
from ganforge.train.gan import GanTask

pytest.importorskip("opacus")

TINY = dict(data="digits", max_images=256, resolution=16, width=8, batch_size=16, conditional=True, dp_epsilon=8.0,
            n_critic=2, log_every=1, sample_every=0, progress=False, tensorboard=False)


def test_epsilon_is_opacus_accountants_and_the_plan_spends_the_budget():
    from opacus.accountants import PRVAccountant, RDPAccountant
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    sigma, q, steps, delta = 1.1, 256 / 60000, 3000, 1e-5
    acc = dp.make_accountant("rdp")
    for _ in range(steps):
        acc.step(noise_multiplier=sigma, sample_rate=q)
    assert acc.history == [(sigma, q, steps)]
    ours = dp.epsilon_of(acc, delta)
    reference = RDPAccountant()
    reference.history = [(sigma, q, steps)]
    assert ours == reference.get_epsilon(delta)
    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))  # Opacus' default orders
    eps, _ = get_privacy_spent(orders=orders, rdp=compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders),
                               delta=delta)
    assert ours == pytest.approx(eps, rel=1e-9)
    assert 0.5 < ours < 3  # the range Abadi et al.'s moments accountant gives for this setting
    prv = dp.make_accountant("prv")
    prv.history = [(sigma, q, steps)]
    reference = PRVAccountant()
    reference.history = [(sigma, q, steps)]
    assert dp.epsilon_of(prv, delta) == reference.get_epsilon(delta) < ours  # PRV: tighter than RDP
    # the plan: sigma for a target epsilon over the planned D steps spends at most the target, within 0.01
    cfg = SimpleNamespace(batch_size=256, steps=300, n_critic=10, dp_epsilon=10.0, dp_delta=1e-5,
                          dp_max_grad_norm=1.0, dp_accountant="rdp")
    plan = dp.plan(cfg, 60000)
    assert plan.d_steps == 3000 and plan.sample_rate == 256 / 60000
    check = RDPAccountant()
    check.history = [(plan.noise_multiplier, plan.sample_rate, plan.d_steps)]
    assert 10.0 - 0.01 <= check.get_epsilon(1e-5) <= 10.0
    check.history = [(plan.noise_multiplier * 0.97, plan.sample_rate, plan.d_steps)]
    assert check.get_epsilon(1e-5) > 10.0  # less noise would overspend: sigma is (nearly) the smallest


def test_poisson_batches_are_a_function_of_seed_and_step():
    images = torch.arange(1000, dtype=torch.uint8).repeat_interleave(4).reshape(1000, 1, 2, 2)
    labels = torch.arange(1000) % 10
    a = dp.PoissonBatches(images, labels, 0.05, seed=3)
    b = dp.PoissonBatches(images, labels, 0.05, seed=3)
    g = torch.Generator()
    sizes = []
    for k in (0, 7, 7, 123):
        x, y = a.get(k, 0, 1, g, torch.device("cpu")), b.get(k, 0, 1, g, torch.device("cpu"))
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])
        sizes.append(len(x["label"]))
    assert len(set(sizes[:2] + sizes[3:])) > 1  # the size varies (Poisson), ~50 on average
    sizes = [len(a.indices(k)) for k in range(200)]
    assert abs(sum(sizes) / 200 - 50) < 3
    assert not torch.equal(a.indices(1), dp.PoissonBatches(images, labels, 0.05, seed=4).indices(1))

    class Store:  # a prepared dataset's interface: len() and read(sorted indices) -> uint8 numpy
        def __len__(self):
            return len(images)

        def read(self, idx):
            return images.numpy()[idx]

    streamed = dp.PoissonBatches(Store(), labels, 0.05, seed=3)
    assert torch.equal(streamed.get(7, 0, 1, g, torch.device("cpu"))["image"], a.get(7, 0, 1, g, torch.device("cpu"))["image"])
    empty = dp.PoissonBatches(Store(), labels, 0.0, seed=3).get(0, 0, 1, g, torch.device("cpu"))
    assert empty["image"].shape == (0, 1, 2, 2) and len(empty["label"]) == 0


def _task(sigma: float = 0.0, C: float = 0.05, fakes: str = "paired", d_norm: str = "auto"):
    cfg = GanConfig(**{**TINY, "data": "digits", "d_norm": d_norm})
    spec = GanNetSpec(resolution=16, channels=1, z_dim=16, num_classes=10, width=8)
    plan = dp.DPPlan(8.0, 1e-5, C, sigma, 0.1, 16, 160, 100, "rdp", fakes=fakes)
    return GanTask(cfg, spec, torch.device("cpu"), dp_plan=plan)


def _plain_copy(D, d_norm: str = "auto"):
    plain = GanTask(GanConfig(**TINY, d_norm=d_norm), GanNetSpec(resolution=16, channels=1, z_dim=16, num_classes=10, width=8),
                    torch.device("cpu")).D
    plain.load_state_dict(D.state_dict())
    return plain


def test_per_example_gradients_are_clipped_and_match_torch_func():
    task = _task()  # the fake paired with real image i, in example i's term (runs planned before "own")
    D, priv = task.D, task.private
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules()) and not D.minibatch_std
    torch.manual_seed(0)
    real, fake = torch.randn(6, 1, 16, 16), torch.randn(6, 1, 16, 16)
    y = torch.randint(0, 10, (6,))

    def loss_sum():
        return task.loss.d_loss(D(real, y).float(), D(fake, y).float(), 1.0) * 6

    grads = priv.per_sample_grads(loss_sum, 6)
    # the same per-example gradients, one example at a time on a hook-free copy: D is really per-example
    plain = _plain_copy(D)
    for i in range(6):
        loss = task.loss.d_loss(plain(real[i:i + 1], y[i:i + 1]), plain(fake[i:i + 1], y[i:i + 1]), 1.0)
        reference = torch.autograd.grad(loss, list(plain.parameters()))
        for g, r in zip(grads, reference):
            torch.testing.assert_close(g[i], r, rtol=1e-4, atol=1e-6)
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads], 1).norm(dim=1)
    assert (norms > 0.05).all()  # every example is clipped at C = 0.05
    summed = priv.private_gradient(grads, torch.Generator())  # sigma 0: the clipped mean
    total = torch.cat([s.flatten() for s in summed]).norm() * 16
    assert total <= 6 * 0.05 + 1e-5
    expected = sum(g * (0.05 / n) for g, n in zip(grads[0], norms)) / 16
    torch.testing.assert_close(summed[0], expected, rtol=1e-4, atol=1e-7)
    assert priv.accountant.history == [(0.0, 0.1, 1)]
    # one example's whole influence on the update is at most C / expected batch, whatever its loss
    one_removed = priv.private_gradient([g[1:] for g in grads], torch.Generator())
    diff = torch.cat([(a - b).flatten() for a, b in zip(summed, one_removed)]).norm()
    assert diff <= 0.05 / 16 + 1e-6


def _step_ctx(seed: int) -> SimpleNamespace:
    g = torch.Generator().manual_seed(seed)
    return SimpleNamespace(generator=g, device=torch.device("cpu"), randn=lambda *shape: torch.randn(*shape, generator=g))


@pytest.mark.parametrize("d_norm", ["group", "none"])
def test_own_fakes_are_examples_of_their_own_drawn_from_nothing_private(d_norm):
    task = _task(C=0.05, fakes="own", d_norm=d_norm)
    D, priv = task.D, task.private
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules()) and not D.minibatch_std
    assert any(isinstance(m, torch.nn.GroupNorm) for m in D.modules()) == (d_norm == "group")
    torch.manual_seed(1)
    real, y = torch.randn(5, 1, 16, 16), torch.randint(0, 10, (5,))
    loss_sum, count, out = dp._d_step_terms(task, _step_ctx(7), real, y)
    assert count == 5 + 16  # the fakes: the expected batch of them, whatever the Poisson batch's size
    grads = priv.per_sample_grads(loss_sum, count)
    fakes, y_fake = out["fake"], out["fake_labels"]
    # the fakes and their labels do not depend on the private batch: none, or other images and labels
    for other_real, other_y in ((real[:0], y[:0]), (torch.randn(9, 1, 16, 16), torch.randint(0, 10, (9,)))):
        other_sum, other_count, other_out = dp._d_step_terms(task, _step_ctx(7), other_real, other_y)
        other_sum()  # its forward fills the dict
        assert other_count == len(other_real) + 16
        assert torch.equal(other_out["fake"], fakes) and torch.equal(other_out["fake_labels"], y_fake)
    # row i: real image i's own loss alone; row 5 + j: fake j's alone (non-saturating: softplus(-d), softplus(d))
    plain = _plain_copy(D, d_norm)
    for i, (x, label, sign) in enumerate([*((real[i], y[i], -1.0) for i in range(5)),
                                          *((fakes[j], y_fake[j], 1.0) for j in range(16))]):
        loss = torch.nn.functional.softplus(sign * plain(x[None], label[None])).sum()
        reference = torch.autograd.grad(loss, list(plain.parameters()))
        for g, r in zip(grads, reference):
            torch.testing.assert_close(g[i], r, rtol=1e-4, atol=1e-6)
    # clipped one by one; the sum is divided by real + fake expected (2 x 16); one real image's share <= C / 32
    summed = priv.private_gradient(grads, torch.Generator())
    without_one = priv.private_gradient([g[1:] for g in grads], torch.Generator())
    diff = torch.cat([(a - b).flatten() for a, b in zip(summed, without_one)]).norm()
    assert 0 < diff <= 0.05 / 32 + 1e-6
    # a run planned before "own" resumes with the fakes it began with
    state = priv.state_dict()
    state["plan"].pop("fakes")
    priv.load_state_dict(state)
    assert priv.plan.fakes == "paired" and dp.report(task)["fakes"] == "paired"


def _train(run: Path, **kw) -> dict:
    return ganforge.train_gan(GanConfig(**{**TINY, **kw}), out=run)


def test_dp_run_resumes_exactly_and_reports_epsilon(tmp_path, capsys):
    full = _train(tmp_path / "full", steps=4, ckpt_every=2)
    dp_block = full["dp"]
    assert set(dp_block) >= {"epsilon", "delta", "noise_multiplier", "max_grad_norm"}
    assert dp_block["d_steps_done"] == dp_block["d_steps_planned"] == 8
    assert 7.9 <= dp_block["epsilon"] <= 8.0 and dp_block["delta"] == 1e-5 and dp_block["max_grad_norm"] == 1.0
    on_disk = json.loads((tmp_path / "full" / "summary.json").read_text())["dp"]
    assert on_disk == dp_block
    assert json.loads((tmp_path / "full" / "run.json").read_text())["dp"]["epsilon"] == dp_block["epsilon"]
    logged = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    eps = [r["dp_epsilon"] for r in logged]
    assert eps == sorted(eps) and eps[-1] == dp_block["epsilon"] and eps[0] < eps[-1]
    # interrupted after step 2: drop the last checkpoint, run the same command again
    shutil.copytree(tmp_path / "full", tmp_path / "split")
    last = checkpoint.list_checkpoints(tmp_path / "split" / "checkpoints")[-1]
    assert last.name == "step-0000004"
    shutil.rmtree(last)
    resumed = _train(tmp_path / "split", steps=4, ckpt_every=2)
    assert resumed["resumed_from"] == 2 and resumed["dp"] == dp_block
    a = load_file(str(checkpoint.list_checkpoints(tmp_path / "full" / "checkpoints")[-1] / "weights.safetensors"))
    b = load_file(str(checkpoint.list_checkpoints(tmp_path / "split" / "checkpoints")[-1] / "weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the budget is the planned steps: more steps on resume are refused
    with pytest.raises(GanforgeError, match="planned steps"):
        _train(tmp_path / "split", steps=6, ckpt_every=2)
    # a nearest-neighbour report would show the private training images: refused in one line
    assert main(["eval", str(tmp_path / "full"), "digits", "--nearest", "3", "--n", "16"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ganforge")]
    assert len(err) == 1 and "private training images" in err[0]
    # a DP run's per-example D is a valid --init for a (non-private) fine-tuning run
    tuned = ganforge.train_gan(GanConfig(data="digits", max_images=256, init=str(tmp_path / "full"), steps=1,
                                         batch_size=16, sample_every=0, progress=False, tensorboard=False),
                               out=tmp_path / "tuned")
    assert tuned["steps"] == 1 and "dp" not in tuned


@pytest.mark.parametrize("flags, words", [
    (["--d-norm", "spectral"], "spectral norm"),
    (["--d-norm", "batch"], "BatchNorm mixes"),
    (["--eval-every", "10"], "in-training evaluation"),
    (["--ada-target", "0.6", "--augment", "color"], "ADA"),
    (["--watchdog", "act"], "--watchdog act"),
    (["--arch", "resnet"], "--arch dcgan"),
    (["--loss", "wgan-gp"], "gradient penalties"),
    (["--nan-policy", "reload"], "accountant"),
    (["--dp-delta", "2"], "--dp-delta"),
    (["--dp-epsilon", "-1"], "--dp-epsilon must be > 0"),
])
def test_refusals_are_one_line(tmp_path, capsys, flags, words):
    argv = ["train", "--data", "digits", "--out", str(tmp_path / "r"), "--dp-epsilon", "5", *flags]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("ganforge: error:") and words in err[0], err
    assert not (tmp_path / "r").exists()  # nothing written


def test_more_than_one_process_is_refused():
    from ganforge.api import _private_training

    cfg = GanConfig(**TINY)
    with pytest.raises(GanforgeError, match="one process"):
        _private_training(cfg, SimpleNamespace(num_processes=2, is_main_process=True), None)


def test_reroutes_say_why_and_the_budget_too_small_is_one_line(tmp_path, capsys):
    cfg = GanConfig(data="digits", dp_epsilon=3.0)
    notes = dp.reroutes(cfg)
    assert any("--d-norm auto -> none" in n for n in notes) and any("watchdog auto -> off" in n for n in notes)
    r = cfg.resolved()
    assert (r.d_norm, r.watchdog, r.n_critic, cfg.loop_config().precision) == ("none", "off", 2, "fp32")
    assert GanConfig(data="digits").resolved().n_critic == 1  # non-private runs keep one D step
    assert main(["train", "--data", "digits", "--max-images", "1024", "--out", str(tmp_path / "r"), "--dp-epsilon",
                 "0.001", "--steps", "1000", "--batch-size", "16", "--resolution", "16", "--quiet"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ganforge")]
    assert len(err) == 1 and "too small" in err[0]
    # a run through the CLI: the reroutes in one line, epsilon spent in the one-line summary
    assert main(["train", "--data", "digits", "--max-images", "128", "--resolution", "16", "--width", "8",
                 "--batch-size", "16", "--steps", "1", "--n-critic", "1", "--dp-epsilon", "8", "--conditional",
                 "--sample-every", "0", "--no-tensorboard", "--quiet", "--out", str(tmp_path / "ok")]) == 0
    captured = capsys.readouterr()
    assert [line for line in captured.err.splitlines() if line.startswith("differential privacy:")] == [
        "differential privacy: " + "; ".join(dp.reroutes(GanConfig(data="digits", dp_epsilon=8, n_critic=1)))]
    printed = json.loads(captured.out.strip().splitlines()[-1])
    assert printed["steps"] == 1 and 0 < printed["dp"]["epsilon"] <= 8


def test_a_stored_discriminator_says_which_normalisation_it_was_built_with(tmp_path):
    from ganforge.nets.dcgan import stored_d_norm

    spec = GanNetSpec(resolution=16, channels=1, z_dim=16, num_classes=10, width=8)
    for d_norm in ("batch", "spectral", "group", "none"):
        D = GanTask(GanConfig(**{**TINY, "dp_epsilon": 0.0, "d_norm": d_norm}), spec, torch.device("cpu")).D
        assert stored_d_norm(D.state_dict()) == d_norm
    # a finished DP run with the bias-only D is a valid --init: its D is rebuilt in the same layout
    run = tmp_path / "none"
    _train(run, steps=1, d_norm="none")
    tuned = ganforge.train_gan(GanConfig(data="digits", max_images=256, init=str(run), steps=1, batch_size=16,
                                         sample_every=0, progress=False, tensorboard=False), out=tmp_path / "tuned")
    assert tuned["steps"] == 1


def test_a_private_run_made_before_keeps_its_groupnorm_d_and_10_d_steps(tmp_path):
    """Session 15 made a DP run's auto D `none` with 2 D steps per G step; a run made while auto meant
    GroupNorm and 10 D steps resumes with those (its noise was planned for them)."""
    run = tmp_path / "old"
    _train(run, steps=2, ckpt_every=1, n_critic=10, d_norm="group")
    shutil.rmtree(checkpoint.list_checkpoints(run / "checkpoints")[-1])  # interrupted after step 1
    raw = json.loads((run / "config.json").read_text())
    raw["options"].update(n_critic=0, d_norm="auto")  # as that version wrote it
    (run / "config.json").write_text(json.dumps(raw))
    info = json.loads((run / "run.json").read_text())
    del info["resolved"]["n_critic"]  # recorded since session 15
    (run / "run.json").write_text(json.dumps(info))
    loaded = GanConfig.load(run / "config.json").resolved()
    assert (loaded.d_norm, loaded.n_critic) == ("group", dp.DP_D_STEPS_BEFORE)
    resumed = _train(run, steps=2, ckpt_every=1, n_critic=0)  # today's command, autos left alone
    assert resumed["resumed_from"] == 1 and resumed["dp"]["d_steps_done"] == 20
    assert resumed["dp"]["d_steps_per_g_step"] == 10
    new = _train(tmp_path / "new", steps=1, n_critic=0)
    stored = json.loads((tmp_path / "new" / "run.json").read_text())["resolved"]
    assert (stored["d_norm"], stored["n_critic"]) == ("none", 2) and new["dp"]["d_steps_done"] == 2
