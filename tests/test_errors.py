"""One-line errors and clean stops (issue 22, items 6, 7 and 9): degenerate images, a full disk
while checkpointing, environment faults in the CLI, SIGTERM/SIGINT during training, malicious
pickles, checkpoint file modes, and a failed download remembered for a while."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import ganforge
from ganforge import weights
from ganforge.cli import main
from ganforge.errors import CheckpointError, WeightsError
from ganforge.nets.adain_decoder import AdaINDecoder
from ganforge.nets.vgg import VGGEncoder
from ganforge.style import Stylizer
from ganforge.train import checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(data="digits", max_images=512, resolution=16, width=8, batch_size=16, log_every=1,
            sample_every=0, progress=False, tensorboard=False, precision="fp32")
TINY_FLAGS = ["--data", "digits", "--max-images", "512", "--resolution", "16", "--width", "8", "--batch-size", "16",
              "--sample-every", "0", "--log-every", "1", "--no-tensorboard", "--quiet", "--precision", "fp32"]


# --- item 6: tiny and extreme-aspect images -------------------------------------------------------

@pytest.fixture(scope="module")
def style_files(tmp_path_factory) -> tuple[Path, Path]:
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("errs-style")
    torch.save(VGGEncoder("adain", "none").file_state(), d / "enc.pth")
    torch.save(AdaINDecoder().state_dict(), d / "dec.pth")
    return d / "enc.pth", d / "dec.pth"


def _stylizer(method: str, files: tuple[Path, Path]) -> Stylizer:
    enc, dec = files
    if method == "gatys":
        return Stylizer("gatys", encoder=str(enc), iterations=2)
    return Stylizer(method, encoder=str(enc), decoder=str(dec))


@pytest.mark.parametrize("method", ["adain", "wct", "gatys"])
@pytest.mark.parametrize("content_hw,style_hw", [((24, 24), (1, 1)), ((24, 24), (1, 300)), ((24, 24), (300, 1)),
                                                  ((1, 1), (24, 24)), ((2, 300), (3, 3))])
def test_tiny_and_thin_images_stylize(style_files, method, content_hw, style_hw):
    st = _stylizer(method, style_files)
    content, style = torch.rand(1, 3, *content_hw), torch.rand(1, 3, *style_hw)
    out = st.stylize_tensor(content, style)
    assert out.shape == content.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("method", ["adain", "wct", "gatys"])
def test_tiny_style_through_the_cli(style_files, method, tmp_path, capsys):
    enc, dec = style_files
    Image.new("RGB", (1, 1), (200, 30, 30)).save(tmp_path / "dot.png")
    Image.new("RGB", (300, 1), (20, 30, 200)).save(tmp_path / "line.png")
    Image.new("RGB", (20, 20), (90, 120, 60)).save(tmp_path / "content.png")
    for style in ("dot.png", "line.png"):
        out = tmp_path / f"out-{style}"
        argv = ["stylize", str(tmp_path / "content.png"), "--style", str(tmp_path / style), "--out", str(out),
                "--method", method, "--encoder", str(enc), "--quiet", "--device", "cpu"]
        argv += ["--iterations", "2"] if method == "gatys" else ["--decoder", str(dec)]
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 0, err
        assert "Traceback" not in err and Image.open(out).size == (20, 20)


# --- item 7: a full disk while checkpointing -------------------------------------------------------

def _full_disk_after(monkeypatch, calls_ok: int, kind: str) -> None:
    """The checkpoint writer fails with ENOSPC after ``calls_ok`` good writes, half-way into a file."""
    real = checkpoint.save_file
    calls = {"n": 0}

    def writer(tensors, path, metadata=None):
        calls["n"] += 1
        if calls["n"] <= calls_ok:
            return real(tensors, path, metadata=metadata)
        Path(path).write_bytes(b"\0" * 100)  # a torn file
        if kind == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device")
        from safetensors import SafetensorError

        raise SafetensorError(f'Error while serializing: I/O error: No space left on device (os error 28) at path "{path}"')

    monkeypatch.setattr(checkpoint, "save_file", writer)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["oserror", "safetensors"])
def test_full_disk_while_checkpointing_is_one_line_and_keeps_the_previous(tmp_path, monkeypatch, kind):
    _full_disk_after(monkeypatch, 1, kind)
    run = tmp_path / "run"
    with pytest.raises(CheckpointError) as exc:
        ganforge.train_gan(ganforge.GanConfig(**TINY, steps=4, ckpt_every=2), out=run)
    root = run / "checkpoints"
    assert str(exc.value) == (f"no space left on device while writing checkpoint step 4 to {root}; "
                              f"the previous checkpoint step 2 is intact")
    assert not list(root.glob(".tmp-*")) and not list(root.glob(".old-*"))
    assert [p.name for p in checkpoint.list_checkpoints(root)] == ["step-0000002"]
    tensors, state = checkpoint.load(root / "step-0000002")
    assert state["step"] == 2 and tensors


@pytest.mark.timeout(120)
def test_full_disk_in_the_cli_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    _full_disk_after(monkeypatch, 1, "oserror")
    run = tmp_path / "run"
    rc = main(["train", *TINY_FLAGS, "--steps", "4", "--ckpt-every", "2", "--out", str(run)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == (f"ganforge: error: no space left on device while writing checkpoint step 4 to {run / 'checkpoints'}; "
                   f"the previous checkpoint step 2 is intact\n")


@pytest.mark.parametrize("code,reason", [(errno.ENOSPC, "no space left on device"), (errno.EACCES, "permission denied"),
                                         (errno.EROFS, "read-only file system"),
                                         (errno.ENOENT, "no such file or directory")])
def test_environment_oserrors_in_the_cli_are_one_line(monkeypatch, capsys, code, reason):
    import ganforge.cli.train as cli_train

    def failing(args):
        raise OSError(code, os.strerror(code), "/out/samples.png")

    monkeypatch.setattr(cli_train, "run", failing)
    assert main(["train", "--out", "x"]) == 2
    assert capsys.readouterr().err == f"ganforge: error: {reason}: /out/samples.png\n"
    with pytest.raises(OSError):  # --debug shows the traceback
        main(["--debug", "train", "--out", "x"])


def test_a_bug_is_still_a_traceback(monkeypatch):
    import ganforge.cli.train as cli_train

    def failing(args):
        raise ValueError("a bug")

    monkeypatch.setattr(cli_train, "run", failing)
    with pytest.raises(ValueError):
        main(["train", "--out", "x"])


# --- item 9: checkpoint file modes ------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_every_checkpoint_file_has_the_umask_mode(tmp_path):
    ganforge.train_gan(ganforge.GanConfig(**TINY, steps=1), out=tmp_path / "run")
    umask = os.umask(0)
    os.umask(umask)
    (ckpt,) = checkpoint.list_checkpoints(tmp_path / "run" / "checkpoints")
    modes = {f.name: f.stat().st_mode & 0o777 for f in ckpt.iterdir()}
    assert set(modes) == {checkpoint.WEIGHTS_FILE, checkpoint.STATE_FILE}
    assert set(modes.values()) == {0o666 & ~umask}, modes


# --- item 9: SIGTERM / SIGINT stop training with 143 / 130 and one line -----------------------------

def _log_lines(run: Path) -> int:
    log = run / "log.jsonl"
    return log.read_text().count("\n") if log.is_file() else 0


def _stop(run: Path, sig: signal.Signals) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "ganforge", "train", *TINY_FLAGS, "--steps", "100000", "--ckpt-every", "0",
           "--out", str(run)]
    start = _log_lines(run)
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and _log_lines(run) < start + 2:
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode, err


@pytest.mark.timeout(300)
def test_sigterm_and_sigint_stop_with_one_line_and_resume(tmp_path):
    run = tmp_path / "run"
    rc, err = _stop(run, signal.SIGTERM)
    assert rc == 143, err[-2000:]
    last = err.strip().splitlines()[-1]
    match = re.fullmatch(rf"stopped by SIGTERM at step (\d+); checkpoint saved in {re.escape(str(run))} "
                         rf"\(resume with the same command\)", last)
    assert match, err[-2000:]
    assert "Traceback" not in err
    step = int(match.group(1))
    assert [p.name for p in checkpoint.list_checkpoints(run / "checkpoints")] == [f"step-{step:07d}"]
    # the same command again resumes from that step; Ctrl-C stops it with 130
    rc, err = _stop(run, signal.SIGINT)
    assert rc == 130, err[-2000:]
    assert re.search(r"stopped by SIGINT at step (\d+); checkpoint saved in ", err.strip().splitlines()[-1])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from"] == step and summary["steps"] > step and summary["stopped_by"] == "SIGINT"


# --- item 9: malicious pickles are refused in one line ------------------------------------------------

class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv_first.weight": torch.zeros(1), "x": _Payload(marker)}, path)
    return path, marker


def _refusal(path: Path) -> str:
    return (f"{path} is not a plain weights file (it asks to run code or holds objects that are not tensors); "
            f"ganforge never unpickles code — convert it to safetensors")


def test_malicious_pickle_is_refused_in_one_line(tmp_path):
    path, marker = _evil(tmp_path)
    with pytest.raises(WeightsError) as exc:
        weights.load_state_dict(path)
    assert str(exc.value) == _refusal(path)
    from ganforge.nets.vgg import load_vgg

    with pytest.raises(WeightsError) as exc:
        load_vgg(path)
    assert str(exc.value) == _refusal(path)
    assert not marker.exists()


def test_malicious_checkpoint_state_is_one_line(tmp_path):
    path, marker = _evil(tmp_path)
    ckpt = tmp_path / "step-0000001"
    ckpt.mkdir()
    from safetensors.torch import save_file

    save_file({"G.w": torch.zeros(1)}, str(ckpt / checkpoint.WEIGHTS_FILE))
    path.rename(ckpt / checkpoint.STATE_FILE)
    with pytest.raises(CheckpointError) as exc:
        checkpoint.load(ckpt)
    assert "\n" not in str(exc.value) and "weights_only" not in str(exc.value) and not marker.exists()


@pytest.mark.parametrize("command", ["upscale", "stylize"])
def test_malicious_pth_in_the_cli_is_one_line(tmp_path, capsys, command):
    path, marker = _evil(tmp_path)
    Image.new("RGB", (16, 16), (90, 120, 60)).save(tmp_path / "img.png")
    if command == "upscale":
        argv = ["upscale", str(tmp_path / "img.png"), "--model", str(path), "--out", str(tmp_path / "out.png")]
    else:
        argv = ["stylize", str(tmp_path / "img.png"), "--style", str(tmp_path / "img.png"), "--method", "gatys",
                "--encoder", str(path), "--iterations", "1", "--out", str(tmp_path / "out.png")]
    rc = main([*argv, "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "weights_only" not in err and "not a plain weights file" in err, err
    assert not marker.exists()


# --- item 9: a failed download is remembered for a while ---------------------------------------------

def test_failed_download_is_not_retried_for_every_request(fresh_home, tmp_path, monkeypatch):
    from ganforge.weights import store

    name = "vgg19-torchvision"
    entry = weights.WEIGHTS.get(name)
    monkeypatch.setitem(weights.WEIGHTS._items, name,
                        dataclasses.replace(entry, url=(tmp_path / "nowhere" / entry.filename).as_uri()))
    monkeypatch.setattr(store, "_FAILED", {})
    attempts = []
    real = store.download_verified

    def counting(*args, **kwargs):
        attempts.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "download_verified", counting)
    now = [1000.0]
    monkeypatch.setattr(store, "_clock", lambda: now[0])
    messages = []
    for _ in range(3):
        with pytest.raises(WeightsError) as exc:
            weights.resolve(name)
        messages.append(str(exc.value))
    assert len(attempts) == 1 and len(set(messages)) == 1 and "could not download" in messages[0]
    assert "\n" not in messages[0]
    now[0] += store.FAILED_DOWNLOAD_TTL + 1  # later: tried again
    with pytest.raises(WeightsError):
        weights.resolve(name)
    assert len(attempts) == 2
    with pytest.raises(WeightsError):  # an explicit --force fetch always tries
        weights.fetch(name, force=True, progress=False)
    assert len(attempts) == 3


def test_a_file_that_is_no_pickle_never_suggests_weights_only_false(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError) as exc:
        weights.load_state_dict(path)
    assert str(exc.value) == f"cannot read weights file {path}: not a weights file (truncated, corrupt or another format)"
