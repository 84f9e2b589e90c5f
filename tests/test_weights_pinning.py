"""`ganforge weights fetch` offline makes no network attempt, and files whose upstream publishes no
checksum (the pix2pix/CycleGAN zoo, Real-ESRGAN) are pinned on first download: a later file with
another sha256 is refused in one line until the pin is removed. URLs are file:// URLs to files the
tests write in the official layout."""

from __future__ import annotations

import dataclasses
import hashlib
import urllib.request

import pytest
import torch

from ganforge import weights
from ganforge.cli import main
from ganforge.errors import WeightsError
from ganforge.nets.translators import ResnetGenerator

NAME = "cyclegan-horse2zebra"


def _publish(monkeypatch, tmp_path, seed: int) -> bytes:
    """Random weights in upstream's ResnetGenerator layout at a file:// URL for NAME; returns the bytes."""
    torch.manual_seed(seed)
    net = ResnetGenerator(3, 3, ngf=4, norm="instance", n_blocks=1)  # small: only the bytes matter here
    served = tmp_path / "upstream" / "horse2zebra.pth"
    served.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), served)
    entry = weights.WEIGHTS.get(NAME)
    monkeypatch.setitem(weights.WEIGHTS._items, NAME, dataclasses.replace(entry, url=served.as_uri()))
    return served.read_bytes()


def test_every_download_url_is_https():
    for name in weights.WEIGHTS.names():
        entry = weights.WEIGHTS.get(name)
        assert entry.url is None or entry.url.startswith("https://"), name


def test_offline_fetch_makes_no_network_attempt_and_says_so_in_one_line(fresh_home, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(tmp_path / "mine"))

    def no_network(*args, **kwargs):
        raise AssertionError("a network attempt was made offline")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert main(["weights", "fetch", "vgg19-torchvision", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganforge: error:") and "\n" not in err
    assert "GANFORGE_OFFLINE=1: nothing is downloaded" in err and "could not download" not in err
    entry = weights.WEIGHTS.get("vgg19-torchvision")
    assert entry.filename in err and entry.url in err and "GANFORGE_WEIGHTS_DIR" in err and str(tmp_path / "mine") in err


def test_first_fetch_pins_a_changed_file_is_refused_and_unpin_repins(fresh_home, tmp_path, monkeypatch, capsys):
    first = _publish(monkeypatch, tmp_path, seed=0)
    assert main(["weights", "fetch", NAME, "--quiet"]) == 0
    cached = fresh_home / "weights" / weights.WEIGHTS.get(NAME).filename
    assert cached.read_bytes() == first
    pin = hashlib.sha256(first).hexdigest()
    assert weights.pinned(weights.WEIGHTS.get(NAME)) == pin
    capsys.readouterr()

    # the pin shows in list and verify, and loading checks against it (no "unverifiable" warning)
    assert main(["weights", "list"]) == 0
    assert f"pinned {pin}" in capsys.readouterr().out
    assert main(["weights", "verify", NAME]) == 0
    assert f"matches the pin {pin[:16]}" in capsys.readouterr().out
    assert set(weights.load_state_dict(NAME)) == set(torch.load(cached, weights_only=True))

    # upstream (or an attacker) changes the file: a new download is refused and nothing is replaced
    _publish(monkeypatch, tmp_path, seed=1)
    assert main(["weights", "fetch", NAME, "--force", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pinned to" in err and f"ganforge weights unpin {NAME}" in err and "nothing was saved" in err
    assert cached.read_bytes() == first

    # a cached file swapped behind ganforge's back is refused when loaded, in one line
    cached.write_bytes(_publish(monkeypatch, tmp_path, seed=1))
    with pytest.raises(WeightsError, match="pinned to") as exc:
        weights.load_state_dict(NAME)
    assert "\n" not in str(exc.value)
    assert main(["weights", "verify", NAME]) == 1
    capsys.readouterr()

    # removing the pin accepts the new file and pins it
    assert main(["weights", "unpin", NAME]) == 0
    assert "pin removed" in capsys.readouterr().out
    second = _publish(monkeypatch, tmp_path, seed=1)
    assert main(["weights", "fetch", NAME, "--force", "--quiet"]) == 0
    assert weights.pinned(weights.WEIGHTS.get(NAME)) == hashlib.sha256(second).hexdigest()
    assert cached.read_bytes() == second


def test_unpublished_checksum_without_pin_still_warns(fresh_home, tmp_path, monkeypatch):
    _publish(monkeypatch, tmp_path, seed=0)
    target = fresh_home / "weights" / weights.WEIGHTS.get(NAME).filename
    target.parent.mkdir(parents=True)
    target.write_bytes((tmp_path / "upstream" / "horse2zebra.pth").read_bytes())  # copied in by hand: no pin
    with pytest.warns(UserWarning, match="no published sha256"):
        weights.load_state_dict(NAME)
