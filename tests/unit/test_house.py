"""The house rules of src/: the store is the only owner of paths."""

import ast
import re
from pathlib import Path

from conftest import REPO

SRC = REPO / "src" / "roar"
FILES = ("metrics.json", "identity.json", "manifest.json", "audit.json", "last.ckpt")  # anywhere in a string
FOLDERS = ("attributions", "checkpoints", "shards", "runs", "base", "eval", "toy")  # as a part of a path: "runs/x"
ALONE = ("attributions", "runs")  # folder names that name nothing else in roar (``base``, ``eval`` are stages too)
SHARD = re.compile(r"(?<![\w-])(?:test|train)-\d{6}(?!\d)|\.tar$")  # a shard's name, a tar suffix


def spells_a_path(text: str) -> bool:
    parts = re.split(r"[/\\]", text)
    return (
        any(name in text for name in FILES)
        or text in ALONE
        or (len(parts) > 1 and any(name in parts for name in FOLDERS))
        or bool(SHARD.search(text))
    )


def docstrings(tree) -> set:
    """The ids of the docstring constants of a module, its classes and functions (prose, not paths)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def path_literals(path: Path) -> list:
    """(line, text) of every string in ``path``'s code that spells an artifact's file or folder name."""
    tree = ast.parse(path.read_text())
    prose = docstrings(tree)
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose
        if spells_a_path(node.value)
    )


def test_no_path_literal_outside_the_store():
    """A file name of an artifact is spelled once, in roar.store; every other module asks a key."""
    found = {
        str(path.relative_to(SRC)): hits
        for path in sorted(SRC.rglob("*.py"))
        if "store" not in path.relative_to(SRC).parts
        if (hits := path_literals(path))
    }
    assert found == {}


def test_the_path_check_sees_a_literal(tmp_path):
    """The check above can fail: a planted literal in code is found, the same words in a docstring are not."""
    planted = tmp_path / "planted.py"
    planted.write_text(
        '"""Reads metrics.json."""\n\n\ndef f(folder):\n    return folder / "checkpoints/last.ckpt", "runs", '
        '"runs/x", "test-000000.tar", "a run"\n'
    )
    assert path_literals(planted) == [(5, "checkpoints/last.ckpt"), (5, "runs"), (5, "runs/x"), (5, "test-000000.tar")]


ROOM = 350  # lines in a file of src/
STRAIGHT = 60  # lines in a function


def long_functions(path: Path) -> list:
    """(name, lines) of every function in ``path`` longer than STRAIGHT lines."""
    tree = ast.parse(path.read_text())
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > STRAIGHT
    ]


def test_rooms_are_small_and_bodies_straight():
    """No file of src/ over 350 lines, no function over 60: a hub grows into rooms, not into one long body."""
    sources = sorted(SRC.parent.rglob("*.py"))
    big = {str(p.relative_to(SRC.parent)): n for p in sources if (n := len(p.read_text().splitlines())) > ROOM}
    long = {str(p.relative_to(SRC.parent)): hits for p in sources if (hits := long_functions(p))}
    assert (big, long) == ({}, {})


def test_the_size_check_sees_a_long_function(tmp_path):
    planted = tmp_path / "long.py"
    planted.write_text("def f():\n" + "    x = 1\n" * STRAIGHT + "    return x\n")
    assert long_functions(planted) == [("f", STRAIGHT + 2)]
