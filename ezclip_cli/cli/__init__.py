"""The command line: the only package that imports typer. One module per command family.

app.py      the app, its commands in --help order, main(): one-line errors, SIGTERM, closed pipes
options.py  options and option groups shared by the commands, logging and progress set-up
help.py     readable metavars and the Environment tables of every --help
tag.py      `ezclip tag` and `ezclip merge`
embed.py    `ezclip embed` and `ezclip search`
train.py    `ezclip train`
eval.py     `ezclip eval`
models.py   `ezclip info`, `ezclip models` and `ezclip export`
"""


def main() -> None:
    """The `ezclip` console script (pyproject.toml names this function)."""
    from ezclip_cli.cli.app import main as run

    run()
