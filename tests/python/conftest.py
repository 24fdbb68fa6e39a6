"""Fixtures for the Python backend tests.

One session builds the tachyon-gen CLI once, generates Python for the
examples and for seeded random schemas (tsch-random) into a temporary
directory, and keeps each file's layout model (``layout --json``) as the
expected values of the oracle tests.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.tsch"))
RANDOM_SCHEMAS = 200
RANDOM_SEED = 1


def go(*args: str, cwd: Path = ROOT) -> str:
    """Run the go tool, failing the test session with its output on error."""
    env = dict(os.environ, GOWORK="off")
    proc = subprocess.run(
        ["go", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.fail(f"go {' '.join(args)}: {proc.stdout}{proc.stderr}")
    return proc.stdout


def run(*args: str | Path) -> str:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))}: {proc.stdout}{proc.stderr}")
    return proc.stdout


@dataclass
class Layout:
    """The layout documents of one or more files of a package, indexed."""

    package: str
    structs: dict[str, dict[str, Any]] = field(default_factory=dict)  # and messages
    enums: dict[str, dict[str, Any]] = field(default_factory=dict)
    flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    consts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, doc: dict[str, Any]) -> None:
        for kind in ("messages", "structs"):
            for s in doc.get(kind) or []:
                self.structs[s["name"]] = s
        for kind, into in (("enums", self.enums), ("flags", self.flags), ("consts", self.consts)):
            for d in doc.get(kind) or []:
                into[d["name"]] = d


@dataclass
class Generated:
    """A directory of generated modules and the layouts they came from."""

    dir: Path
    modules: list[str]
    layouts: dict[str, Layout]  # by module name

    def load(self, module: str) -> ModuleType:
        if str(self.dir) not in sys.path:
            sys.path.insert(0, str(self.dir))
        return importlib.import_module(module)


@pytest.fixture(scope="session")
def tachyon_gen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tachyon-gen CLI, built once per session."""
    exe = tmp_path_factory.mktemp("bin") / "tachyon-gen"
    go("build", "-o", str(exe), "./cmd/tachyon-gen")
    return exe


def module_name(tsch: Path) -> str:
    """Message.tsch -> message_tsch: the CLI's stem rule, for the names used here."""
    stem = tsch.stem
    snake = "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(stem))
    return snake + "_tsch"


@pytest.fixture(scope="session")
def examples(tachyon_gen: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    """Python for every example, in a directory that is on sys.path."""
    out = tmp_path_factory.mktemp("examples_py")
    run(tachyon_gen, "generate", "--py-out", out, *EXAMPLES)
    doc = json.loads(run(tachyon_gen, "layout", "--json", *EXAMPLES))
    layout = Layout(doc["package"])
    layout.add(doc)
    modules = [module_name(p) for p in EXAMPLES]
    yield Generated(out, modules, {m: layout for m in modules})
    _forget(out)


@pytest.fixture(scope="session")
def random_schemas(tachyon_gen: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    """Python for RANDOM_SCHEMAS seeded random schemas."""
    src = tmp_path_factory.mktemp("random_tsch")
    out = tmp_path_factory.mktemp("random_py")
    exe = tmp_path_factory.mktemp("bin") / "tsch-random"
    go("build", "-o", str(exe), "./schema/schematest/tsch-random")
    run(exe, "-seed", str(RANDOM_SEED), "-n", str(RANDOM_SCHEMAS), "-out", src)
    files = sorted(src.glob("*.tsch"))
    run(tachyon_gen, "generate", "--py-out", out, *files)
    docs = json.loads(run(tachyon_gen, "layout", "--json", *files))
    layouts: dict[str, Layout] = {}
    for path, doc in zip(files, docs, strict=True):
        assert doc["package"] == path.stem
        layout = Layout(doc["package"])
        layout.add(doc)
        layouts[module_name(path)] = layout
    yield Generated(out, [module_name(p) for p in files], layouts)
    _forget(out)


def _forget(directory: Path) -> None:
    """Drop modules imported from directory, so sessions do not leak."""
    if str(directory) in sys.path:
        sys.path.remove(str(directory))
    for name, mod in list(sys.modules.items()):
        if getattr(mod, "__file__", None) and Path(mod.__file__ or "").parent == directory:
            del sys.modules[name]
