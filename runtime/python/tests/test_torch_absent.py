"""Without PyTorch: the core package never needs it, and its torch parts say so.

These run in `make test`'s NumPy-only venv; `sys.modules["torch"] = None`
makes `import torch` fail the same way wherever torch is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .support import PYROOT, ROOT

NO_TORCH = "import sys; sys.modules['torch'] = None; "


def run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` from outside the checkout, with the client importable as the tests import it."""
    env = {**os.environ, "PYTHONPATH": str(PYROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_the_core_package_does_not_import_torch(tmp_path: Path) -> None:
    r = run("import sys, tachyon; assert 'torch' not in sys.modules and 'tachyon.torch' not in sys.modules", tmp_path)
    assert r.returncode == 0, r.stderr


def test_tachyon_torch_says_what_it_needs(tmp_path: Path) -> None:
    r = run(NO_TORCH + "import tachyon.torch", tmp_path)
    assert r.returncode == 1
    assert "ImportError: tachyon.torch needs PyTorch (>= 2.3): pip install torch" in r.stderr


def test_the_inference_stage_skips_with_a_line_without_torch(tmp_path: Path) -> None:
    script = ROOT / "examples" / "pipeline" / "gpu_inference.py"
    r = run(NO_TORCH + f"import runpy; sys.argv = [{str(script)!r}]; runpy.run_path({str(script)!r}, run_name='__main__')", tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("torch not installed: skipping (make test-torch installs it into .venv-torch")
