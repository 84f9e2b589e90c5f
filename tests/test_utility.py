"""The downstream-utility metric ("train on synthetic, test on real", ``ganforge eval RUN --utility
REF``): a fixed classifier trained on a generator's labelled samples, tested on a real split. On
scikit-learn's digits (always available): a stand-in generator that returns real labelled images
must score far above one that returns noise; the protocol is recorded; bad input is one line."""

from __future__ import annotations

import json

import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.errors import GanforgeError
from ganforge.metrics.utility import PROTOCOL, generator_utility, tstr_accuracy


@pytest.fixture(scope="module")
def digits_train():
    from ganforge.data import load_dataset

    return load_dataset("digits:train", resolution=8, progress=False)


class RealImages:
    """A 'perfect' conditional generator: for class c it returns real training images of class c."""

    num_classes = 10

    def __init__(self, ds) -> None:
        self.by_class = [ds.images[ds.labels == c] for c in range(10)]

    def sample(self, n, labels=None, seed=0):
        g = torch.Generator().manual_seed(seed)
        out = [self.by_class[int(c)][torch.randint(len(self.by_class[int(c)]), (1,), generator=g)] for c in labels]
        return torch.cat(out).float() / 255.0


class Noise:
    """A useless conditional generator: uniform noise whatever the class."""

    num_classes = 10

    def sample(self, n, labels=None, seed=0):
        return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_real_images_score_far_above_noise_and_the_protocol_is_recorded(digits_train):
    good = generator_utility(RealImages(digits_train), "digits:test", n=600, seed=1)
    bad = generator_utility(Noise(), "digits:test", n=600, seed=1)
    assert good["value"] > 0.85, good["value"]
    assert bad["value"] < 0.3, bad["value"]
    p = good["protocol"]
    for key in ("classifier", "optimizer", "epochs", "batch_size", "seed", "input"):
        assert p[key] == PROTOCOL[key]
    assert p["n_train"] == 600 and p["n_test"] == 360 and p["reference"] == "digits:test"
    assert p["classes"] == [str(i) for i in range(10)]
    assert sum(good["per_class_accuracy"].values()) / 10 == pytest.approx(good["value"], abs=0.05)


def test_the_protocol_is_deterministic_and_leaves_the_global_rng_alone(digits_train):
    x, y = digits_train.images[:300], digits_train.labels[:300]
    state = torch.random.get_rng_state()
    a = tstr_accuracy(x, y, x[:100], y[:100], 10)
    assert torch.equal(state, torch.random.get_rng_state())
    b = tstr_accuracy(x, y, x[:100], y[:100], 10)
    assert a["accuracy"] == b["accuracy"] and a["train_accuracy"] == b["train_accuracy"]


def test_unconditional_and_mismatched_generators_are_refused():
    class Uncond:
        num_classes = 0

    with pytest.raises(GanforgeError, match="conditional"):
        generator_utility(Uncond(), "digits:test", n=10)

    class Three(Noise):
        num_classes = 3

    with pytest.raises(GanforgeError, match="3") as err:
        generator_utility(Three(), "digits:test", n=10)
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("utility-runs")
    common = dict(data="digits", max_images=128, resolution=16, width=8, batch_size=16, steps=4, sample_every=0,
                  ckpt_every=0, log_every=2, progress=False, tensorboard=False, precision="fp32")
    ganforge.train_gan(ganforge.GanConfig(**common, conditional=True), out=root / "cond")
    ganforge.train_gan(ganforge.GanConfig(**common), out=root / "uncond")
    return root


def test_cli_utility_alone(runs, tmp_path, capsys):
    out = tmp_path / "u.json"
    assert main(["eval", str(runs / "cond"), "--utility", "digits:test", "--utility-n", "200", "--json", str(out),
                 "--quiet"]) == 0
    doc = json.loads(out.read_text())
    u = doc["utility"]
    assert u["metric"] == "utility_accuracy" and 0.0 <= u["value"] <= 1.0
    assert u["protocol"]["n_train"] == 200 and u["protocol"]["run"] == str(runs / "cond")
    assert u["protocol"]["generator"] == "EMA" and u["protocol"]["step"] == 4
    assert "utility" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["{uncond}", "--utility", "digits:test"], "conditional"),
    (["{cond}", "--utility", "no/such/split"], "no/such/split"),
    (["digits:test", "--utility", "digits:test"], "run directory"),
    (["{cond}"], "reference set B"),
])
def test_cli_errors_are_one_line(runs, capsys, argv, needle):
    argv = [a.format(cond=runs / "cond", uncond=runs / "uncond") for a in argv]
    assert main(["eval", *argv, "--utility-n", "20", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganforge: error:") and needle in err and "\n" not in err
