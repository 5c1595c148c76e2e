"""The README's set-up commands stay true: the quickstart tags, CI runs exactly its test command."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setup_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    ")]


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
    commands = setup_commands()
    assert len(commands) == 2
    main_job, tests = commands
    assert "examples/quickstart.sh" in main_job and "pip install" in main_job
    ci = (REPO / ".ci" / "run").read_text()
    # exactly that command, its output maybe also kept by a `| tee`
    assert re.search(rf"^{re.escape(tests)}( 2>&1 \| tee \S+)?$", ci, re.MULTILINE), f"CI must run: {tests}"


def test_demo_script_tags_with_ezclip():
    demo = (REPO / "examples" / "demo.sh").read_text()
    assert "ezclip tag" in demo and "ezclip train" in demo


def test_readme_train_your_own_section_runs_the_training_walkthrough():
    text = (REPO / "README.md").read_text()
    section = text.split("## Train your own", 1)[1].split("\n## ", 1)[0]
    assert "examples/demo.sh" in section


def test_readme_python_section_uses_only_the_public_names():
    import ezclip_cli

    text = (REPO / "README.md").read_text()
    section = text.split("### Python", 1)[1].split("\n## ", 1)[0]
    used = set(re.findall(r"ezclip_cli\.(\w+)", section)) | set(re.findall(r"^\| `(\w+)", section, re.MULTILINE))
    assert {"load_tagger", "tag_videos", "TagResult", "TagConfig", "load_store"} <= used
    assert used <= set(ezclip_cli.__all__) | {"EzclipError"}, used - set(ezclip_cli.__all__)
    assert "from ezclip_cli." not in section  # nothing from inside the package
    for name in used:
        assert getattr(ezclip_cli, name).__doc__, f"{name} has no docstring"
