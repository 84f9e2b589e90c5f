"""One vocabulary across sub-commands (``--json PATH``, ``--quiet``, ``--resume auto|never``,
``--device``/``--precision`` with default auto), old spellings as hidden aliases, and a light
``ganforge --help`` (no torch import)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from ganforge.cli import COMMANDS, NETWORK_COMMANDS, build_parser, main
from ganforge.cli._common import PRECISIONS


def _leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(command path, parser) for every runnable (sub-)sub-command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaves(child, prefix + (name,))


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def _visible(action: argparse.Action) -> bool:
    return action.help != argparse.SUPPRESS


# commands that print no results worth a file: everything else takes --json PATH
WITHOUT_JSON = {("serve",): "a long-running server, not a result",
                ("demo",): "its result is the HTML report it writes",
                ("weights", "path"): "prints one path and nothing else",
                ("weights", "unpin"): "removes a pin; nothing to report"}
FULL = build_parser(full=True)
LEAVES = dict(_leaves(FULL))


def test_every_command_in_the_static_table_is_built():
    top = {path[0] for path in LEAVES}
    assert top == set(COMMANDS)
    assert set(NETWORK_COMMANDS) <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_vocabulary(path):
    parser = LEAVES[path]
    opts = _options(parser)
    command = path[0]
    # --json always names a PATH ('-' = stdout), never a bare switch with another meaning
    if "--json" in opts:
        action = opts["--json"]
        assert action.metavar == "PATH" and action.const == "-" and not isinstance(action, argparse._StoreTrueAction)
        assert action.dest == "json_path"
    # no visible --metrics that means a file (eval's --metrics is its list of metrics)
    if "--metrics" in opts and _visible(opts["--metrics"]):
        assert command == "eval" and "comma list" in opts["--metrics"].help
    # progress: --quiet only; the old spellings are hidden
    for old in ("--no-progress", "--progress"):
        if old in opts:
            assert not _visible(opts[old]), f"{old} should be a hidden alias of --quiet"
    # every command takes the shared flags: --quiet everywhere, --json PATH where it has results
    assert "--quiet" in opts and opts["--quiet"].dest in ("quiet", "progress"), path
    assert ("--json" in opts) != (path in WITHOUT_JSON), path
    # resume: --resume auto|never wherever a run directory is trained into
    if command in ("train", "train-style", "train-upscaler", "train-inpainter") or path == ("translate", "train"):
        assert opts["--resume"].choices == ("auto", "never") and opts["--resume"].default == "auto"
    if "--no-resume" in opts:
        assert not _visible(opts["--no-resume"])
    # network commands: --device and --precision, both default auto, same choices everywhere
    if command in NETWORK_COMMANDS:
        assert opts["--device"].default == "auto", path
        precision = opts["--precision"].default
        if command == "train" and precision is None:  # train flags default to None: GanConfig's default applies
            from ganforge.config import GanConfig

            precision = GanConfig().precision
        if path == ("translate", "train") and precision is None:  # likewise: TranslateConfig's default
            from ganforge.translate.config import TranslateConfig

            precision = TranslateConfig().precision
        if command == "train-inpainter" and precision is None:  # likewise: InpaintConfig's default
            from ganforge.restore.inpaint import InpaintConfig

            precision = InpaintConfig().precision
        if command == "train-upscaler" and precision is None:  # likewise: SRConfig's default
            from ganforge.restore.sr_train import SRConfig

            precision = SRConfig().precision
        assert precision == "auto", path
        assert tuple(opts["--precision"].choices) == PRECISIONS, path
    elif "--precision" in opts:
        assert tuple(opts["--precision"].choices) == PRECISIONS


def test_help_does_not_import_torch_and_every_subcommand_help_works():
    code = ("import sys\nfrom ganforge.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "heavy = sorted(m for m in ('torch', 'numpy', 'PIL', 'accelerate', 'matplotlib') if m in sys.modules)\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout
    for command in COMMANDS:
        assert command in out.stdout
    for path, parser in LEAVES.items():
        assert parser.format_help().startswith("usage: ganforge " + " ".join(path)), path


def test_subcommand_help_through_main(capsys):
    for command in sorted(COMMANDS):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        assert f"usage: ganforge {command}" in capsys.readouterr().out


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser(argv).parse_args(argv)


def test_old_spellings_map_to_the_new_meaning():
    # train: --no-progress == --quiet (progress off); default leaves the config's default
    assert _parse(["train", "--out", "r", "--no-progress"]).progress is False
    assert _parse(["train", "--out", "r", "--quiet"]).progress is False
    assert _parse(["train", "--out", "r"]).progress is None
    # train-style: --no-resume == --resume never
    base = ["train-style", "--content", "c", "--style", "s", "--out", "o"]
    assert _parse(base + ["--no-resume"]).resume == "never"
    assert _parse(base).resume == "auto"
    # stylize: --metrics PATH == --json PATH
    st = ["stylize", "c.jpg", "--style", "s.jpg", "--out", "o.jpg"]
    assert _parse(st + ["--metrics", "m.json"]).json_path == "m.json"
    assert _parse(st + ["--json", "m.json"]).json_path == "m.json"
    # data check: bare --json (the old switch) means stdout; --progress is accepted
    assert _parse(["data", "check", "d", "--json"]).json_path == "-"
    assert _parse(["data", "check", "d", "--json", "r.json"]).json_path == "r.json"
    assert _parse(["data", "check", "d", "--progress"]).progress_flag is True
    # every network command: device/precision default auto, and explicit values parse
    assert _parse(st).device == "auto" and _parse(st).precision == "auto"
    assert _parse(st + ["--device", "cuda:1", "--precision", "bf16"]).device == "cuda:1"


def test_bad_device_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(["stylize", "c.jpg", "--style", "s.jpg", "--out", "o.jpg", "--device", "tpu"])
    assert exc.value.code == 2 and "cuda:N" in capsys.readouterr().err


def test_data_check_json_to_a_file_and_stdout(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "imgs" / "a").mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (8, 8), (i * 100, 0, 0)).save(tmp_path / "imgs" / "a" / f"{i}.png")
    assert main(["data", "check", str(tmp_path / "imgs"), "--json", str(tmp_path / "r.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["per_class"] == {"a": 2}
    capsys.readouterr()
    assert main(["data", "check", str(tmp_path / "imgs"), "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["per_class"] == {"a": 2}


def test_eval_refuses_reduced_precision_in_one_line(capsys):
    assert main(["similarity", "a.png", "b.png", "--precision", "bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganforge: error:") and "\n" not in err and "fp32" in err


def test_train_device_mapping():
    from ganforge.device import accelerate_cpu_flag, resolve_device
    from ganforge.errors import GanforgeError

    assert accelerate_cpu_flag("auto") is None
    assert accelerate_cpu_flag("cpu") is True
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(GanforgeError, match="CUDA_VISIBLE_DEVICES"):
        accelerate_cpu_flag("cuda:1")
