"""Binder's environment, rebuilt from ``binder/`` alone: a fresh venv runs a notebook.

Slow (it installs every package into a new venv): ``make test-slow``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_fresh_binder_environment_runs_the_quickstart(tmp_path: Path) -> None:
    venv = tmp_path / "binder-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "-r", str(ROOT / "binder" / "requirements.txt")], check=True)  # noqa: S603
    subprocess.run(  # noqa: S603
        ["/bin/bash", str(ROOT / "binder" / "postBuild")],
        cwd=ROOT,
        check=True,
        env={
            "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
            "HOME": str(tmp_path),
        },
    )
    subprocess.run([*pip, "nbclient", "nbformat"], check=True)  # noqa: S603
    run = (
        "import nbformat, nbclient; "
        f"nb = nbformat.read({str(ROOT / 'notebooks' / '01_quickstart.ipynb')!r}, 4); "
        "nbclient.NotebookClient(nb, timeout=300, kernel_name='python3').execute(); print('ok')"
    )
    done = subprocess.run([str(python), "-c", run], capture_output=True, text=True, cwd=tmp_path)  # noqa: S603
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ok" in done.stdout
