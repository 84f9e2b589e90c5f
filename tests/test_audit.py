"""The membership-inference audit (``ganforge audit``): GAN-Leaks finds members when the generator
outputs them (by construction) and scores chance when it never saw either set; LOGAN reads a run's
own discriminator; the CLI writes the JSON, the ROC plot and the run page's audit section; bad
input is one line. On scikit-learn's digits (always available), tiny networks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge.cli import main
from ganforge.errors import GanforgeError
from ganforge.metrics.membership import audit, load_queries, parse_source, roc


class ReplayGenerator:
    """A stand-in generator that returns given images (cycling; of the asked class when it is given
    their labels), as a generator that memorised them would."""

    resolution, channels, step = 8, 1, 0

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        self.images, self.image_labels = images.float() / 255.0, labels
        self.num_classes = 0 if labels is None else 10

    def sample(self, n, labels=None, seed=0):
        if labels is None:
            return self.images[(torch.arange(n) + seed) % len(self.images)]
        out = []
        for i, c in enumerate(labels.tolist()):
            pool = self.images[self.image_labels == c]
            out.append(pool[(seed + i) % len(pool)])
        return torch.stack(out)


@pytest.fixture(scope="module")
def digits():
    from ganforge.data import load_dataset

    return load_dataset("digits:train", resolution=8, progress=False)


def test_generator_that_outputs_the_members_leaks_them(digits):
    gen = ReplayGenerator(torch.cat([digits.images[:300], digits.images[600:900]]))  # unconditional
    r = audit(None, "digits:train[:300]", "digits:train[300:600]", k=600, reference="digits:train[1000:1400]",
              generator=gen, device="cpu")
    a = r["attacks"]
    assert "logan" not in a  # no run directory and no discriminator: the white-box attack is skipped
    assert a["ganleaks"]["auc"] > 0.97 and a["ganleaks"]["tpr_at_1pct_fpr"] > 0.9
    assert a["ganleaks_calibrated"]["auc"] > 0.95
    assert a["ganleaks"]["median_distance"]["members"] == 0.0 < a["ganleaks"]["median_distance"]["non_members"]
    assert r["protocol"]["members"]["n"] == 300 and r["protocol"]["members"]["slice"] == [0, 300]


def test_generator_that_saw_neither_set_is_at_chance(digits):
    from ganforge.nets import GanNetSpec, build_gan

    # same distribution, disjoint from both query sets; conditional, so GAN-Leaks compares within a class
    gen = ReplayGenerator(digits.images[600:1400], digits.labels[600:1400])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        _, D = build_gan("dcgan", GanNetSpec(resolution=8, channels=1, num_classes=10, width=8))
    r = audit(None, "digits:train[:300]", "digits:train[300:600]", k=800, generator=gen, discriminator=D.eval(),
              device="cpu")
    for name in ("ganleaks", "logan"):  # an untrained D never saw either set
        assert abs(r["attacks"][name]["auc"] - 0.5) < 0.1, (name, r["attacks"][name]["auc"])
    assert r["protocol"]["ganleaks"].endswith("same class only")


def test_roc_on_known_scores():
    perfect = roc(np.array([3.0, 4.0, 5.0]), np.array([0.0, 1.0, 2.0]))
    assert perfect["auc"] == 1.0 and perfect["tpr_at_1pct_fpr"] == 1.0
    backwards = roc(np.array([0.0, 1.0]), np.array([3.0, 4.0]))
    assert backwards["auc"] == 0.0 and backwards["tpr_at_1pct_fpr"] == 0.0
    assert perfect["fpr"][0] == 0.0 and perfect["tpr"][-1] == 1.0


def test_source_slices():
    assert parse_source("mnist:train[:500]") == ("mnist:train", 0, 500)
    assert parse_source("some/dir[100:]") == ("some/dir", 100, None)
    assert parse_source("digits") == ("digits", 0, None)
    with pytest.raises(GanforgeError, match="empty slice"):
        parse_source("digits[5:5]")
    q = load_queries("digits:train[10:20]", resolution=8, channels=1)
    from ganforge.data import load_dataset

    ds = load_dataset("digits:train", resolution=8, max_images=20, progress=False)
    assert torch.equal(q.images, ds.images[10:20]) and torch.equal(q.labels, ds.labels[10:20])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit-run") / "run"
    ganforge.train_gan(ganforge.GanConfig(data="digits", max_images=64, resolution=16, width=8, batch_size=16,
                                          steps=6, conditional=True, sample_every=3, ckpt_every=0, log_every=3,
                                          progress=False, tensorboard=False, precision="fp32"), out=out)
    return out


def test_cli_audit_writes_json_plot_and_run_page(run, tmp_path, capsys):
    out_json, out_png = tmp_path / "audit.json", tmp_path / "roc.png"
    assert main(["audit", str(run), "--members", "digits:train[:64]", "--non-members", "digits:test[:64]",
                 "--reference", "digits:train[64:264]", "--k", "200", "--json", str(out_json),
                 "--out", str(out_png), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "logan" in printed and "ganleaks_calibrated" in printed
    doc = json.loads(out_json.read_text())
    assert set(doc) == {"attacks", "protocol", "seconds"}
    assert set(doc["attacks"]) == {"logan", "ganleaks", "ganleaks_calibrated"}
    for r in doc["attacks"].values():
        assert 0.0 <= r["auc"] <= 1.0 and 0.0 <= r["tpr_at_1pct_fpr"] <= 1.0
        assert len(r["fpr"]) == len(r["tpr"]) >= 2 and r["fpr"] == sorted(r["fpr"])
    p = doc["protocol"]
    assert p["members"]["n"] == 64 and p["non_members"]["n"] == 64 and p["step"] == 6 and p["num_classes"] == 10
    assert "reference image set digits:train[64:264]" in p["ganleaks_calibrated"]
    for png in (out_png, run / "audit" / "roc.png"):
        with Image.open(png) as img:
            img.load()
            assert img.size[0] > 200 and img.size[1] > 200
    assert json.loads((run / "audit" / "audit.json").read_text())["attacks"] == doc["attacks"]
    page = (run / "samples" / "index.html").read_text()
    assert "Membership-inference audit" in page and "../audit/roc.png" in page
    assert f"{doc['attacks']['logan']['auc']:.4f}" in page


def test_a_run_used_as_reference_model(run, tmp_path):
    r = audit(run, "digits:train[:32]", "digits:test[:32]", k=100, reference=str(run), device="cpu")
    assert "reference generator" in r["protocol"]["ganleaks_calibrated"]
    assert 0.0 <= r["attacks"]["ganleaks_calibrated"]["auc"] <= 1.0 and r["protocol"]["members"]["n"] == 32


@pytest.mark.parametrize("argv, needle", [
    (["{run}", "--members", "no/such/dir", "--non-members", "digits:test"], "no/such/dir"),
    (["{run}", "--members", "digits:train[9:3]", "--non-members", "digits:test"], "empty slice"),
    (["{tmp}", "--members", "digits:train", "--non-members", "digits:test"], "run"),
    (["{run}", "--members", "digits:train[:20]", "--non-members", "digits:test", "--k", "0"], "--k"),
])
def test_cli_errors_are_one_line(run, tmp_path, capsys, argv, needle):
    argv = [a.format(run=run, tmp=tmp_path) for a in argv]
    assert main(["audit", *argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganforge: error:") and needle in err and "\n" not in err


def test_missing_required_sources_is_a_usage_error(run, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["audit", str(run), "--members", "digits:train"])
    assert exc.value.code == 2 and "--non-members" in capsys.readouterr().err
