"""Fixtures of the ring client's tests.

* ``tachyon`` is imported from the environment, else from runtime/python.
* ``Message`` is the seed message module tachyon-gen generates, taken from
  golden/python (the generator's checked output).
* ``ring_name`` hands out ``t-py-<pid>-<n>`` names and unlinks leftovers; the
  session checks /dev/shm holds none of its names at the end.
* ``gopeer`` builds the Go interop peer once per session (skips without Go).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
PYROOT = HERE.parent
ROOT = PYROOT.parents[1]
GOLDEN_PY = ROOT / "golden" / "python"
PYPEER = ROOT / "examples" / "pipeline" / "pypeer.py"

try:
    import tachyon  # noqa: F401
except ImportError:
    sys.path.insert(0, str(PYROOT))
sys.path.insert(0, str(HERE))

PREFIX = f"t-py-{os.getpid()}-"
_names = itertools.count()


def load_message() -> Any:
    spec = importlib.util.spec_from_file_location("message_tsch", GOLDEN_PY / "message_tsch.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["message_tsch"] = mod
    spec.loader.exec_module(mod)
    return mod.Message


Message = load_message()


@pytest.fixture
def ring_name() -> Iterator[str]:
    """A fresh ring name; the segment is unlinked at teardown if left."""
    name = f"{PREFIX}{next(_names)}"
    yield name
    try:
        os.unlink(f"/dev/shm/{name}")
    except FileNotFoundError:
        pass


@pytest.fixture(scope="session", autouse=True)
def no_leftovers() -> Iterator[None]:
    yield
    left = [n for n in os.listdir("/dev/shm") if n.startswith(PREFIX)]
    for n in left:
        os.unlink(f"/dev/shm/{n}")
    assert not left, f"segments left in /dev/shm: {left}"


@pytest.fixture(scope="session")
def gen_dir() -> Path:
    """Directory holding the generated message_tsch.py (for pypeer)."""
    return GOLDEN_PY


@pytest.fixture(scope="session")
def gopeer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go interop peer, built from this checkout."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go toolchain not found: the Go interop tests need it")
    out = tmp_path_factory.mktemp("gopeer") / "gopeer"
    r = subprocess.run([go, "build", "-o", str(out), "./examples/pipeline/gopeer"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.fail(f"go build gopeer failed:\n{r.stderr}")
    return out


def pypeer_argv(gen: Path, *args: str) -> list[str]:
    """The command line of the Python peer."""
    return [sys.executable, str(PYPEER), "--gen-dir", str(gen), *args]
