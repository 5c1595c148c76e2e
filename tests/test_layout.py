"""The package's shape: folders by job that import only downward, and modules of one job each."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

PACKAGE = REPO / "ezclip_cli"
MAX_LINES = 500  # a guide, not a rule: past this a module is probably doing more than one job (README, "Layout")

# Floors, bottom up (README, "Layout"). A module may import from its own folder and from lower floors;
# folders on the same floor know nothing of each other.
FLOORS: list[set[str]] = [
    {"errors", "files", "progress", "distributed", "version"},  # the ground floor: top-level modules
    {"video"},
    {"data"},
    {"config"},
    {"hub"},
    {"model"},
    {"export"},
    {"tag"},
    {"store", "train"},
    {"eval", "engine", "review"},
    {"cli"},
    {"__init__", "__main__", "api"},  # the public face
]
FLOOR = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}


def room_of(module: str) -> str:
    """'ezclip_cli.tag.run' -> 'tag'; 'ezclip_cli.errors' -> 'errors'; 'ezclip_cli' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> set[str]:
    """Every ezclip_cli module `path` imports, at any depth, `if TYPE_CHECKING:` blocks included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ezclip_cli":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if (PACKAGE / a.name).is_dir()}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "ezclip_cli"}
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        here = FLOOR.get(room_of(name)) if path.parent != PACKAGE else FLOOR.get(path.stem)
        if here is None:
            problems.append(f"{name}: not on any floor (add its folder to FLOORS and the README)")
            continue
        for target in imports_of(path):
            room = room_of(target)
            there = FLOOR.get(room)
            # a folder imports itself freely; the ground floor and the public face are one room each
            same_room = room == room_of(name) and path.parent != PACKAGE
            own = same_room or (there == here and here in (0, len(FLOORS) - 1))
            if there is None:
                problems.append(f"{name} imports {target}: not on any floor")
            elif not own and there >= here:
                problems.append(f"{name} (floor {here}) imports {target} (floor {there})")
    return problems


def test_folders_import_only_downward_type_checking_included():
    assert upward_imports() == []


def test_the_layering_check_sees_an_upward_import(tmp_path, monkeypatch):
    # a model module that imports tagging inside a function under TYPE_CHECKING would be caught
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ezclip_cli.tag.run import run_tagging\n"
    fake = tmp_path / "up.py"
    fake.write_text(source)
    assert imports_of(fake) == {"ezclip_cli.tag.run"}
    assert FLOOR["tag"] > FLOOR["model"]


def test_every_folder_is_a_room_with_a_public_face():
    folders = [p for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")]
    assert {p.name for p in folders} <= FLOOR.keys()
    for folder in folders:
        init = folder / "__init__.py"
        assert init.is_file(), f"{folder.name}/ has no __init__.py"
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), f"{folder.name}/__init__.py says nothing"


def test_no_folder_init_imports_torch_at_import_time():
    # `--help` stays instant: importing a folder must not import torch, open_clip or typer's commands
    for init in PACKAGE.glob("*/__init__.py"):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in top if isinstance(n, ast.ImportFrom) and n.module}
        assert not {"torch", "open_clip", "torchvision"} & {m.split(".")[0] for m in names}, init


def test_every_module_stays_near_the_size_of_one_job():
    sizes = {
        str(p.relative_to(PACKAGE)): len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
