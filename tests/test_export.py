"""Generator export/import (docs/export.md): ``ganforge export`` writes one self-describing
safetensors file; ``load_generator`` (and every command built on it) takes the file in place of the
run and gives the run's samples bit for bit; foreign, truncated and corrupt files are one-line
errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save, save_file

import ganforge
from ganforge.cli import main
from ganforge.export import export_generator, export_run, read_export
from ganforge.imageio import tensor_to_pil
from ganforge.nets import ARCHITECTURES, GanNetSpec, build_gan
from ganforge.sample import Generator, interpolation_frames, load_generator
from ganforge.train import checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(data="digits", max_images=64, resolution=16, width=8, z_dim=16, batch_size=16, steps=2, ckpt_every=1,
            pl_weight=0.0, sample_every=0, progress=False, tensorboard=False)
RUNS = {"dcgan": dict(arch="dcgan"), "dcgan-cond": dict(arch="dcgan", conditional=True),
        "stylegan2": dict(arch="stylegan2"), "stylegan2-cond": dict(arch="stylegan2", conditional=True)}
DOCUMENTED_KEYS = {"format", "format_version", "arch", "resolution", "channels", "z_dim", "num_classes", "width",
                   "class_names", "ganforge_version", "step", "weights", "data_sha256"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread_module) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export-runs")
    for name, kw in RUNS.items():
        ganforge.train_gan(ganforge.GanConfig(**{**TINY, **kw}), out=root / name)
    return {name: root / name for name in RUNS}


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory) -> Path:
    """The conditional stylegan2 run's export (read-only: tests copy it before changing it)."""
    return Path(export_run(runs["stylegan2-cond"], tmp_path_factory.mktemp("export") / "G.safetensors")["output"])


@pytest.mark.parametrize("name", sorted(RUNS))
def test_export_then_load_samples_like_the_run_bit_for_bit(runs, tmp_path, name):
    run = load_generator(runs[name])
    summary = export_run(runs[name], tmp_path / "G.safetensors")
    gen = load_generator(summary["output"])
    assert (gen.arch, gen.spec, gen.class_names, gen.step) == (run.arch, run.spec, run.class_names, run.step)
    assert gen.run_dir == tmp_path / "G.safetensors"
    state = run.G_ema.state_dict()
    assert gen.G_ema.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in gen.G_ema.state_dict().items())
    for kw in ({}, {"truncation": 0.6}, {"labels": 3} if run.num_classes else {"seed": 9}):
        assert torch.equal(gen.sample(8, **{"seed": 1, **kw}), run.sample(8, **{"seed": 1, **kw})), kw
    assert torch.equal(interpolation_frames(gen, [0, 1], 3), interpolation_frames(run, [0, 1], 3))
    assert gen.w_space == name.startswith("stylegan2")


def test_every_registered_architecture_round_trips(tmp_path):
    """Arch-generic: the format needs no per-architecture code, so every registered architecture
    (including ones added later) exports and loads."""
    build_gan("dcgan", GanNetSpec(16, 1))  # registers the built-in architectures
    assert {"dcgan", "resnet", "stylegan2"} <= set(ARCHITECTURES.names())
    g = torch.Generator().manual_seed(0)
    from ganforge.nets.registry import TEXT_ONLY_ARCHITECTURES

    for arch in [*ARCHITECTURES.names(), "dcgan-resize-conv"]:
        if arch in TEXT_ONLY_ARCHITECTURES:  # text-to-image (issue 20): no class spec, not exported to one file yet
            continue
        spec = GanNetSpec(16, 3, z_dim=8, num_classes=2, width=8, resize_conv=int(arch == "dcgan-resize-conv"))
        arch = arch.replace("-resize-conv", "")  # dcgan with --g-upsample nearest: the spec carries it
        G, _ = build_gan(arch, spec)
        with torch.no_grad():  # non-default values everywhere, buffers included (running stats, w_avg)
            for v in G.state_dict().values():
                if v.is_floating_point():
                    v.copy_(torch.randn(v.shape, generator=g) * 0.1 + 0.5)
        src = Generator(G, G, spec, ["cat", "dog"], 7, tmp_path, arch=arch)
        path = export_generator(src, tmp_path / f"{arch}.safetensors")["output"]
        gen = load_generator(path)
        assert (gen.arch, gen.spec, gen.class_names, gen.step) == (arch, spec, ["cat", "dog"], 7)
        want = G.state_dict()
        assert all(torch.equal(v, want[k]) for k, v in gen.G_ema.state_dict().items()), arch
        z, y = torch.randn(4, 8, generator=g), torch.tensor([0, 1, 1, 0])
        assert torch.equal(gen.generate(z, y), src.generate(z, y)), arch


def test_metadata_and_keys_are_as_documented(runs, exported):
    with safe_open(str(exported), "pt") as f:
        meta, keys = f.metadata(), set(f.keys())
    assert set(meta) == DOCUMENTED_KEYS
    run_meta = json.loads((runs["stylegan2-cond"] / "run.json").read_text())
    assert meta["format"] == "ganforge.generator" and meta["format_version"] == "1" and meta["arch"] == "stylegan2"
    assert {k: json.loads(meta.get(k, "0")) for k in run_meta["spec"]} == run_meta["spec"]  # absent: 0
    assert json.loads(meta["class_names"]) == run_meta["class_names"] == [str(i) for i in range(10)]
    assert (meta["ganforge_version"], meta["step"], meta["weights"]) == (ganforge.__version__, "2", "ema")
    assert re.fullmatch(r"[0-9a-f]{64}", meta["data_sha256"])
    # keys: exactly the architecture's module names, G_ema's tensors from the checkpoint
    ckpt = load_file(str(checkpoint.list_checkpoints(runs["stylegan2-cond"] / "checkpoints")[-1] / "weights.safetensors"))
    ema = {k[len("G_ema."):]: v for k, v in ckpt.items() if k.startswith("G_ema.")}
    assert keys == set(ema) and {"mapping.fc.0.weight", "synthesis.convs0.0.weight", "mapping.w_avg"} <= keys
    tensors = load_file(str(exported))
    assert all(torch.equal(tensors[k], ema[k]) for k in keys)
    # the documentation lists every key and its snippet reads the file with plain safetensors
    doc = (ROOT / "docs" / "export.md").read_text()
    assert all(f"`{key}`" in doc for key in DOCUMENTED_KEYS)
    snippet = re.search(r"## Reading it without ganforge\n\n```python\n(.*?)```", doc, re.S).group(1)
    scope: dict = {}
    exec(snippet.replace('path = "faces.safetensors"', f"path = {str(exported)!r}"), scope)  # asserts the checksum
    assert scope["spec"] == run_meta["spec"] and set(scope["tensors"]) == keys


def _rewrite(src: Path, dst: Path, *, meta: dict | None = None, drop: str | None = None) -> Path:
    """A copy of an export with changed metadata or a key dropped (and no checksum, which is optional)."""
    with safe_open(str(src), "pt") as f:
        old, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    old.pop("data_sha256")
    if drop:
        tensors.pop(drop)
    save_file(tensors, str(dst), metadata={**old, **(meta or {})})
    return dst


def _bad_files(exported: Path, runs: dict[str, Path], d: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, a phrase its one-line error must contain)."""
    blob = exported.read_bytes()
    header_end = 8 + int.from_bytes(blob[:8], "little")
    files: dict[str, tuple[bytes | Path, str]] = {
        "empty": (b"", "not a readable safetensors file"),
        "text": (b"this is not a safetensors file at all\n" * 4, "not a readable safetensors file"),
        "truncated-header": (blob[:header_end // 2], "not a readable safetensors file"),
        "truncated-data": (blob[:-100], "truncated"),
        "garbled-header": (blob[:8] + b"#" * 40 + blob[48:], "unreadable header"),
        "flipped-byte": (blob[:-5] + bytes([blob[-5] ^ 0x10]) + blob[-4:], "does not match data_sha256"),
        "foreign": (save({"weight": torch.ones(3)}, metadata={"format": "pt"}), "not a ganforge generator export"),
        "no-metadata": (save({"weight": torch.ones(3)}), "not a ganforge generator export"),
    }
    out = {}
    for name, (data, phrase) in files.items():
        (d / f"{name}.safetensors").write_bytes(data)
        out[name] = (d / f"{name}.safetensors", phrase)
    ckpt = checkpoint.list_checkpoints(runs["stylegan2-cond"] / "checkpoints")[-1] / "weights.safetensors"
    out["checkpoint-file"] = (ckpt, "is a training checkpoint, not a generator export")  # G, D, G_ema prefixed
    out["missing"] = (d / "missing.safetensors", "no such file")
    out["newer"] = (_rewrite(exported, d / "newer.safetensors", meta={"format_version": "2"}), "format version '2'")
    out["arch"] = (_rewrite(exported, d / "arch.safetensors", meta={"arch": "nope"}), "unknown architecture 'nope'")
    out["spec"] = (_rewrite(exported, d / "spec.safetensors", meta={"width": "eight"}), "width='eight'")
    out["unbuildable"] = (_rewrite(exported, d / "res.safetensors", meta={"resolution": "48"}), "cannot build a stylegan2")
    out["key"] = (_rewrite(exported, d / "key.safetensors", drop="mapping.fc.1.bias"), "keys missing mapping.fc.1.bias")
    out["shape"] = (_rewrite(exported, d / "shape.safetensors", meta={"width": "16"}), "has shape")
    renamed = load_file(str(exported))
    renamed["G_ema.extra"] = renamed.pop("synthesis.const")
    with safe_open(str(exported), "pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k != "data_sha256"}
    save_file(renamed, str(d / "renamed.safetensors"), metadata=meta)
    out["renamed"] = (d / "renamed.safetensors", "missing synthesis.const; unexpected G_ema.extra")
    return out


def test_foreign_truncated_and_corrupt_files_are_one_line_errors(exported, runs, tmp_path, capsys):
    for name, (path, phrase) in _bad_files(exported, runs, tmp_path).items():
        with pytest.raises(ganforge.GanforgeError) as exc:
            load_generator(path)
        message = str(exc.value)
        assert "\n" not in message and str(path) in message and phrase in message, (name, message)
        assert main(["sample", str(path), "--n", "1", "--out", str(tmp_path / "x.png"), "--device", "cpu"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("ganforge: error:") and "\n" not in err and phrase in err, (name, err)
    assert not (tmp_path / "x.png").exists()
    # the untouched export still loads and verifies
    meta, tensors = read_export(exported)
    assert meta["arch"] == "stylegan2" and "synthesis.const" in tensors


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def test_export_cli_round_trip(runs, tmp_path, capsys):
    run = runs["stylegan2-cond"]
    out = tmp_path / "G.safetensors"
    assert main(["export", str(run), "--out", str(out), "--json", str(tmp_path / "e.json")]) == 0
    summary = json.loads((tmp_path / "e.json").read_text())
    with safe_open(str(out), "pt") as f:
        assert summary["metadata"] == f.metadata() and summary["tensors"] == len(list(f.keys()))
    assert summary["output"] == str(out) and summary["bytes"] == out.stat().st_size
    assert str(out) in capsys.readouterr().out
    # the file samples exactly as the run does, through the same command
    for source, grid in ((run, "run.png"), (out, "file.png")):
        assert main(["sample", str(source), "--n", "6", "--seed", "2", "--class", "4", "--truncation", "0.7",
                     "--out", str(tmp_path / grid), "--device", "cpu", "--precision", "fp32"]) == 0
    assert np.array_equal(_pixels(tmp_path / "run.png"), _pixels(tmp_path / "file.png"))
    assert main(["video", str(out), "--seconds", "0.5", "--fps", "6", "--key-seconds", "0.25", "--out",
                 str(tmp_path / "w.mp4"), "--quiet", "--device", "cpu"]) == 0
    assert main(["interpolate", str(out), "--seeds", "1,2", "--frames", "2", "--out", str(tmp_path / "i.gif"),
                 "--device", "cpu"]) == 0
    with Image.open(tmp_path / "i.gif") as gif:
        assert gif.n_frames == 4
    # --checkpoint step-N and --no-ema pick the checkpoint and the network
    ckpt = load_file(str(checkpoint.step_dir(run / "checkpoints", 1) / "weights.safetensors"))
    capsys.readouterr()
    assert main(["export", str(run), "--out", str(tmp_path / "raw1.safetensors"), "--checkpoint", "step-0000001",
                 "--no-ema", "--json", "-"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["metadata"]["step"] == "1" and "raw weights of step 1" in printed.err
    with safe_open(str(tmp_path / "raw1.safetensors"), "pt") as f:
        assert f.metadata()["weights"] == "raw"
        raw = {k: f.get_tensor(k) for k in f.keys()}
    assert raw.keys() == {k[2:] for k in ckpt if k.startswith("G.")}
    assert all(torch.equal(v, ckpt[f"G.{k}"]) for k, v in raw.items())
    assert any(not torch.equal(v, ckpt[f"G_ema.{k}"]) for k, v in raw.items())
    # one-line errors: wrong suffix, a file as RUN, --checkpoint with a file
    for argv, phrase in ((["export", str(run), "--out", str(tmp_path / "G.pt")], ".safetensors file name"),
                         (["export", str(out), "--out", str(tmp_path / "H.safetensors")], "reads a run directory"),
                         (["sample", str(out), "--checkpoint", "best", "--out", str(tmp_path / "b.png")],
                          "--checkpoint applies to run directories")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and phrase in err, err
    assert not (tmp_path / "G.pt").exists() and not (tmp_path / "H.safetensors").exists()


def test_sample_and_interpolate_take_quiet_and_json(runs, tmp_path, capsys):
    """The shared flags (issue: `sample ... --quiet` was refused): --quiet hides the bars, --json PATH
    writes the summary, and sampling more than one batch gives the same images as one generate call."""
    run = runs["dcgan-cond"]
    folder = tmp_path / "many"
    assert main(["sample", str(run), "--n", "300", "--seed", "3", "--out-dir", str(folder), "--quiet",
                 "--device", "cpu", "--precision", "fp32", "--json", str(tmp_path / "s.json")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["n"] == 300 and summary["seed"] == 3 and len(summary["files"]) == 300
    assert summary["step"] == 2 and summary["precision"] == "fp32" and summary["device"] == "cpu"
    gen = load_generator(run)
    z = gen.latents(300, 3)
    expected = gen.generate(z, gen.labels(300, None, 3))
    for i in (0, 255, 256, 299):  # either side of the 256-image batch boundary
        assert np.array_equal(_pixels(Path(summary["files"][i])),
                              np.asarray(tensor_to_pil(expected[i])))
    assert "\r" not in capsys.readouterr().err  # no progress bar drawn
    assert main(["interpolate", str(run), "--seeds", "1,2", "--frames", "2", "--out", str(tmp_path / "i.gif"),
                 "--quiet", "--json", "-"]) == 0
    printed = capsys.readouterr()
    walk = json.loads(printed.out)
    assert walk["frames"] == 4 and walk["seeds"] == [1, 2] and walk["file"] == str(tmp_path / "i.gif")
