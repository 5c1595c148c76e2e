"""The command line: instant help, the info breakdown, one-line errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO

COMMANDS = ["tag", "train", "eval", "export", "info"]


def test_help_never_imports_torch():
    # A real process is the point: one fresh interpreter runs every --help, then checks what got imported.
    code = (
        "import sys\n"
        "from ezclip_cli.cli.app import app\n"
        f"for args in [['--help']] + [[c, '--help'] for c in {COMMANDS!r}]:\n"
        "    try:\n"
        "        app(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('torch', 'open_clip', 'torchvision', 'decord', 'av', 'onnx', 'onnxruntime')\n"
        "         if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stderr
    assert result.stdout.count("Usage: ") == 1 + len(COMMANDS)  # every help was really rendered


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_documents_its_options(command):
    import typer.main
    from typer.testing import CliRunner

    from ezclip_cli.cli.app import app

    result = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    options = [
        p
        for p in typer.main.get_command(app).commands[command].params
        if p.param_type_name == "option" and not p.hidden
    ]
    assert options
    for option in options:
        long_names = [name for name in option.opts + option.secondary_opts if name.startswith("--")]
        assert option.help and option.help.strip(), f"{command} {long_names}: no help text"
        assert all(name in result.output for name in long_names), (command, long_names)
    expected = {
        "tag": "--labels",
        "train": "--dataset",
        "eval": "--protocol",
        "export": "--bundle-formats",
        "info": "--num-frames",
    }
    assert expected[command] in result.output


def test_info_prints_the_parameter_breakdown(cli):
    result = cli("info", "--model", "ViT-B-16", "--pretrained", "none", "--num-frames", "8")
    assert result.code == 0, result.err
    lines = dict(
        line.split(None, 1) if not line.startswith(("vision", "text", "frozen")) else line.rsplit(None, 1)
        for line in result.out.strip().splitlines()
    )
    assert lines["trainable"].strip() == "5,204,736"
    assert lines["prompts"].strip() == "73,728"
    assert lines["vision adapters"] == "3,550,464"
    assert lines["text adapters"] == "1,580,544"
    assert "frozen backbone" in lines


def test_info_json_for_l14(cli):
    result = cli("info", "--model", "ViT-L-14", "--pretrained", "none", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["trainable"] == 16_360_704


def test_known_error_is_one_line_with_exit_code_1(cli):
    # In-process, an error that escaped main() would raise here instead of printing a traceback.
    result = cli("info", "--checkpoint", "/nonexistent/model.ezclip")
    assert result.code == 1
    assert result.err.strip().count("\n") == 0
    assert result.err.startswith("ezclip: error: ") and "checkpoint not found" in result.err
    assert result.out == ""


def test_usage_errors_exit_2(cli):
    assert cli("tag").code == 2
    assert cli("info", "--num-frames", "0").code == 2
    assert cli("no-such-command").code == 2


def test_version(cli):
    result = cli("--version")
    assert result.code == 0 and result.out.startswith("ezclip ")
