"""Fixtures of tachyon.torch's tests (``make test-torch``, real PyTorch).

They reuse the ring client's fixtures (``ring_name``, the /dev/shm check)
and add the C++ interop peer, the publisher that overwrites released slots
as fast as a process can, and ``device``: ``cpu`` always, ``cuda`` where
``torch.cuda.is_available()`` (skipped elsewhere, saying so).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import no_leftovers, ring_name  # noqa: F401 (fixtures)
from tests.support import ROOT

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device: the CUDA path runs only where torch.cuda.is_available()")


@pytest.fixture(scope="session")
def cpppeer() -> Path:
    """The C++ interop peer (`make test-torch` builds build/cpppeer first)."""
    path = ROOT / "build" / "cpppeer"
    if not path.is_file():
        pytest.fail(f"{path} is not built: run `make build/cpppeer` (make test-torch does)")
    return path


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=needs_cuda)])
def device(request: pytest.FixtureRequest) -> str:
    """Each device the feeder runs on here."""
    return str(request.param)
