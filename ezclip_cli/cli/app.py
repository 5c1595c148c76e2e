"""The `ezclip` command line: flags -> config -> one library call -> writer.

The app, its command list, and `main()` (errors, SIGTERM, closed pipes). The other modules of cli/ are the
only other typer importers: shared options in options.py, commands in tag.py, embed.py, train.py, eval.py
and models.py, help conventions (readable metavars, option groups, Environment tables) in help.py. Heavy
imports (torch, open_clip) happen inside command bodies so `--help` stays instant. Known errors print one
line; `EZCLIP_DEBUG=1` shows tracebacks.
Exit codes: 0 all inputs done, 1 some input failed or a known error, 2 usage error.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from ezclip_cli.cli.embed import embed, search
from ezclip_cli.cli.eval import evaluate
from ezclip_cli.cli.help import (
    add_environment_help,
    apply_help_conventions,
    environment_help,
    readable_metavar,
)
from ezclip_cli.cli.models import export, info, models_command
from ezclip_cli.cli.options import close_displays
from ezclip_cli.cli.review import convert, report
from ezclip_cli.cli.store import store_app
from ezclip_cli.cli.tag import merge, tag
from ezclip_cli.cli.train import train
from ezclip_cli.errors import EzclipError
from ezclip_cli.version import __version__

__all__ = [
    "add_environment_help",
    "app",
    "apply_help_conventions",
    "build_command",
    "environment_help",
    "main",
    "readable_metavar",
]

app = typer.Typer(
    name="ezclip",
    help="Zero-shot video action tagging with EZ-CLIP (frozen CLIP + temporal prompts and adapters).\n\n"
    "Exit codes: 0 all inputs done; 1 some input failed (the rest still written) or a known error; 2 usage error.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version_callback(value: bool) -> None:
    if value:
        from ezclip_cli.version import version_report

        for line in version_report(__version__):
            typer.echo(line)
        raise typer.Exit(0)


@app.callback()
def main_callback(
    version: bool = typer.Option(
        False,
        "--version",
        callback=version_callback,
        is_eager=True,
        help="Print the versions of ezclip, Python, torch, torchvision, open_clip, decord, PyAV and onnxruntime, "
        "and the device found (for bug reports).",
    ),
) -> None:
    """Zero-shot video action tagging with EZ-CLIP."""


# The commands, in the order `ezclip --help` lists them: the everyday job first. Summaries fit one line.
app.command(short_help="Tag videos with zero-shot action labels (CSV, JSON, JSONL).")(tag)
app.command(short_help="Encode videos once into an embedding store.")(embed)
app.command(short_help="Rank stored videos by a text query or a video.")(search)
app.command(short_help="Join shard outputs into one file, every video once.")(merge)
app.command(short_help="Write an HTML page to review a tagging run in a browser.")(report)
app.command(short_help="Export a tagging run for FiftyOne or Label Studio.")(convert)
app.command("eval", short_help="Evaluate under the published protocols.")(evaluate)
app.command(short_help="Train prompts and adapters with the motion loss.")(train)
app.command(short_help="Write a verified, self-contained model bundle.")(export)
app.command("models", short_help="List, download and cache the named models.")(models_command)
app.command(short_help="Show a model's parameters and what it resolves to.")(info)
app.add_typer(store_app, name="store", short_help="Export an embedding store to Parquet or Lance.")


def build_command() -> Any:
    """The click command `main()` runs: the typer app with the help conventions applied."""
    return add_environment_help(apply_help_conventions(typer.main.get_command(app)))


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every `finally` runs: workers stopped, output closed."""


_terminated: list[bool] = []  # set by the handler: typer reports any KeyboardInterrupt as a plain 130


def _on_sigterm(signum: int, frame: object) -> None:
    _terminated.append(True)
    raise Terminated()


def _stdout_gone() -> None:
    """The reader of stdout left (`| head`): not an error. Point fd 1 at /dev/null so the
    interpreter's final flush cannot fail, and end quietly with 0 (as `yes | head` does)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    sys.exit(0)


def main() -> None:
    """Console entry point: run the app, turning known errors into one line and an exit code."""
    import signal

    from ezclip_cli.tag.output import OutputClosed

    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    _terminated.clear()
    try:
        try:
            # prog_name: usage lines and the completion variable (_EZCLIP_COMPLETE) name the installed
            # command, also under `python -m ezclip_cli` or a test runner.
            code = build_command().main(prog_name="ezclip", standalone_mode=False)
        finally:
            close_displays()
        if _terminated:  # typer returned 130 for the KeyboardInterrupt that SIGTERM raised
            raise Terminated()
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except EzclipError as exc:
        if os.environ.get("EZCLIP_DEBUG") == "1":
            raise
        typer.echo(f"ezclip: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Terminated:
        typer.echo("ezclip: terminated", err=True)
        sys.exit(143)  # 128 + SIGTERM, as shells report it
    except KeyboardInterrupt:
        typer.echo("ezclip: interrupted", err=True)
        sys.exit(130)
    except (OutputClosed, BrokenPipeError):
        _stdout_gone()
    except Exception as exc:  # click usage errors (typer may vendor click) and anything unexpected
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        if type(exc).__name__ == "Abort":  # click's wrapping of Ctrl-C, or of the SIGTERM handler's interrupt
            typer.echo("ezclip: terminated" if _terminated else "ezclip: interrupted", err=True)
            sys.exit(143 if _terminated else 130)
        if os.environ.get("EZCLIP_DEBUG") == "1":
            raise
        typer.echo(
            f"ezclip: internal error: {type(exc).__name__}: {exc} (EZCLIP_DEBUG=1 shows the traceback)", err=True
        )
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous)
