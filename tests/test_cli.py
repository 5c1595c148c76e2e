"""The command line: instant help, the info breakdown, one-line errors and exit codes."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

COMMANDS = ["tag", "train", "eval", "export", "info"]


def run_cli(*args: str, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ezclip_cli", *args], capture_output=True, text=True, env=full_env, input=stdin, timeout=300
    )


def test_help_never_imports_torch():
    # One fresh interpreter runs every --help and then checks what got imported.
    code = (
        "import sys\n"
        "from ezclip_cli.cli import app\n"
        f"for args in [['--help']] + [[c, '--help'] for c in {COMMANDS!r}]:\n"
        "    try:\n"
        "        app(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('torch', 'open_clip', 'torchvision', 'decord', 'av') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_documents_its_options(command):
    from typer.testing import CliRunner

    from ezclip_cli.cli import app

    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "--help" in result.output
    expected = {"tag": "--labels", "train": "--dataset", "eval": "--protocol", "export": "--bundle-formats", "info": "--num-frames"}
    assert expected[command] in result.output


def test_info_prints_the_parameter_breakdown():
    result = run_cli("info", "--model", "ViT-B-16", "--pretrained", "none", "--num-frames", "8")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) if not line.startswith(("vision", "text", "frozen")) else (line.rsplit(None, 1)[0], line.rsplit(None, 1)[1]) for line in result.stdout.strip().splitlines())
    assert lines["trainable"].strip() == "5,204,736"
    assert lines["prompts"].strip() == "73,728"
    assert lines["vision adapters"] == "3,550,464"
    assert lines["text adapters"] == "1,580,544"
    assert "frozen backbone" in lines


def test_info_json_for_l14():
    result = run_cli("info", "--model", "ViT-L-14", "--pretrained", "none", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["trainable"] == 16_360_704


def test_known_error_is_one_line_with_exit_code_1():
    result = run_cli("info", "--checkpoint", "/nonexistent/model.ezclip")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "checkpoint not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2():
    assert run_cli("tag").returncode == 2
    assert run_cli("info", "--num-frames", "0").returncode == 2
    assert run_cli("no-such-command").returncode == 2


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("ezclip ")
