"""CLI conventions: readable metavars, completion, a bug-report --version, environment variables in --help."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from tests.helpers import REPO, run_cli

COMMANDS = ["tag", "train", "eval", "export", "merge", "info"]
AFFECTS = {  # variable -> commands whose --help must name it
    "EZCLIP_CACHE": ["tag", "eval", "export"],
    "EZCLIP_MODEL_INDEX": ["tag", "eval", "export"],
    "EZCLIP_OFFLINE": ["tag", "eval", "export"],
    "HF_HUB_OFFLINE": ["tag", "train", "eval", "export"],
    "EZCLIP_PROGRESS_INTERVAL": ["tag", "train", "eval"],
    "SLURM_ARRAY_TASK_ID": ["tag"],
    "EZCLIP_DEBUG": COMMANDS,
}


def cli(*args: str, capsys) -> tuple[int, str, str]:
    """`ezclip ARGS` through the console entry point in this process: code, stdout, stderr."""
    result = run_cli(*args, capsys=capsys)
    return result.code, result.out, result.err


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_reads_as_words_not_python_types(command, capsys):
    code, out, _ = cli(*([command] if command else []), "--help", capsys=capsys)
    assert code == 0
    assert not re.search(r"<(list|int|float|str|path|text)\b", out), out  # <list[str]>, <int range>, <path>
    assert "{" not in out.split("\n\n", 1)[0], out  # the usage line: no {inputs}...
    if command == "tag":
        assert "[VIDEO]..." in out and "-o, --output FILE" in out and "--window SECONDS" in out
        assert "-k, --top-k N" in out and "-f, --format [csv|json|jsonl|parquet]" in out
    if command == "merge":
        assert "merge [OPTIONS] FILE..." in out


def test_metavars_cover_options_added_anywhere():
    """The conventions are applied to the built command, so a new module's options need no list."""
    from ezclip_cli.cli.app import apply_help_conventions

    extra = typer.Typer()

    @extra.command()
    def new(
        videos: list[Path] = typer.Argument(...),
        limit: int = 3,
        rate: float | None = None,
        out: Path | None = None,
        name: str = "x",
        keep: bool = False,
    ) -> None:
        """A command another helper might add."""

    command = apply_help_conventions(typer.main.get_command(extra))
    metavars = {p.name: p.metavar for p in command.params if "completion" not in p.name}
    assert metavars == {"videos": "VIDEOS", "limit": "N", "rate": "NUMBER", "out": "DIR", "name": "NAME", "keep": None}


@pytest.mark.parametrize("variable", sorted(AFFECTS))
def test_every_environment_variable_is_in_the_help_of_what_it_affects(variable, capsys):
    for command in AFFECTS[variable]:
        code, out, _ = cli(command, "--help", capsys=capsys)
        assert code == 0 and "Environment:" in out and variable in out, (command, variable)
    code, out, _ = cli("--help", capsys=capsys)
    assert variable in out


def test_version_is_a_bug_report(capsys):
    from importlib import metadata

    code, out, _ = cli("--version", capsys=capsys)
    assert code == 0
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["ezclip"].startswith("0.") and lines["python"].split()[0].count(".") == 2
    import torch

    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    assert lines["torch"] == f"{metadata.version('torch')} ({build})" and lines["PyAV"] == metadata.version("av")
    assert {"torchvision", "open_clip", "decord", "onnxruntime", "device"} <= lines.keys()
    assert lines["device"].split()[0] in {"cpu", "cuda", "mps"}


def test_shell_completion_is_on(monkeypatch, capsys):
    code, out, _ = cli("--help", capsys=capsys)
    assert "--install-completion" in out and "--show-completion" in out
    monkeypatch.setenv("_EZCLIP_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", "ezclip tag --decoder")
    monkeypatch.setenv("COMP_CWORD", "2")
    code, out, _ = cli(capsys=capsys)
    assert code == 0 and out.split() == ["--decoder"]


def test_help_and_completion_import_no_torch():
    code = (
        "import sys\n"
        "from ezclip_cli.cli import main\n"
        f"for args in [['--help']] + [[c, '--help'] for c in {COMMANDS!r}]:\n"
        "    sys.argv = ['ezclip', *args]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('torch', 'open_clip', 'torchvision', 'decord', 'av', 'onnxruntime')\n"
        "         if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stderr


def test_export_format_flag_is_renamed_and_the_old_spelling_still_works(capsys):
    code, out, _ = cli("export", "--help", capsys=capsys)
    assert "--bundle-formats FORMATS" in out and "\n  --format" not in out  # hidden alias
    for flag in ("--bundle-formats", "--format"):
        code, _, err = cli("export", "-c", "m.ezclip", "-o", "b", flag, "tflite", capsys=capsys)
        assert code == 2 and "unknown export format 'tflite'" in err


def test_no_references_to_documents_outside_the_repository():
    outside = re.compile(r"\b(method|testing|product|ecosystem|style)\.md\b")
    hits = []
    for folder in ("ezclip_cli", "configs", "examples", "labelsets", "docs", "tests", "benchmarks"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".md", ".yaml", ".sh", ".txt", ".json"}:
                text = path.read_text(encoding="utf-8", errors="replace")
                hits += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in outside.finditer(text)]
    readme = (REPO / "README.md").read_text()
    hits += [f"README.md: {m.group(0)}" for m in outside.finditer(readme)]
    hits = [h for h in hits if not h.startswith("tests/test_cli_conventions.py")]  # this test names them
    assert hits == []


def test_long_commands_show_their_options_in_groups(capsys):
    code, out, _ = cli("tag", "--help", capsys=capsys)
    assert code == 0
    headings = [line.rstrip(":") for line in out.splitlines() if line and not line.startswith(" ") and ":" in line]
    expected = ["Input", "Labels", "Model", "Output", "Windows and segments", "Speed", "Scale-out", "Display"]
    assert [h for h in headings if h in expected] == expected  # every group, in this order
    assert "Other:" not in out  # every tag option belongs to a group
    for command in ("train", "eval"):
        code, out, _ = cli(command, "--help", capsys=capsys)
        assert code == 0 and "Model:" in out and "Other:" not in out


def test_top_level_help_lists_tag_first_with_whole_summaries(capsys):
    code, out, _ = cli("--help", capsys=capsys)
    listed = out.split("Commands:")[1].split("Environment:")[0]
    rows = [line.split()[0] for line in listed.splitlines() if line.startswith("  ") and line.strip()]
    assert rows[:4] == ["tag", "embed", "search", "merge"] and set(rows) >= {"eval", "train", "export", "models"}
    assert "..." not in listed


def test_one_spelling_for_formats_and_no_surprising_short_flags(capsys):
    for command in ("tag", "embed", "search", "train", "eval", "info"):
        code, out, _ = cli(command, "--help", capsys=capsys)
        assert code == 0 and "-t," not in out  # -t was --num-frames, a surprise next to -k and -j
    for command in ("info", "models"):
        code, out, _ = cli(command, "--help", capsys=capsys)
        assert "-f, --format [table|json]" in out and "--json" not in out  # still accepted, no longer shown
    import json

    code, out, err = cli("info", "--model", "ViT-B-32", "--pretrained", "none", "-f", "json", capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["backbone"] == "ViT-B-32"
