"""Fixtures of the ring client's tests.

* ``ring_name`` hands out ``t-py-<pid>-<n>`` names and unlinks leftovers; the
  session checks /dev/shm holds none of its names at the end.
* ``gopeer`` builds the Go interop peer once per session (skips without Go).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import GOLDEN_PY, PREFIX, ROOT

_names = itertools.count()


@pytest.fixture
def ring_name() -> Iterator[str]:
    """A fresh ring name; the segment is unlinked at teardown if left."""
    name = f"{PREFIX}{next(_names)}"
    yield name
    for leftover in (name, name + "-pong"):
        try:
            os.unlink(f"/dev/shm/{leftover}")
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
    r = subprocess.run(
        [go, "build", "-o", str(out), "./examples/pipeline/gopeer"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    if r.returncode != 0:
        pytest.fail(f"go build gopeer failed:\n{r.stderr}")
    return out
