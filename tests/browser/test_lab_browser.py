"""A real browser (Debian's Chromium via Playwright) runs notebook 03 in JupyterLab.

It opens ``03_hundred_node_simulation``, runs all cells, presses the launcher's Start,
and checks that the node grid's cells change state and the convergence plot redraws,
saving element screenshots under ``tests/browser/artifacts/``. ``.ci/run`` installs
``chromium`` with apt so this always runs in CI; elsewhere it is skipped when Chromium or
Playwright is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
NOTEBOOK = "03_hundred_node_simulation.ipynb"

playwright_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - 127.0.0.1 only
        return json.loads(response.read())


CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _launch(p: Any) -> Any:
    """Debian's Chromium, headless, with nothing that reaches the network."""
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


LOGS: dict[str, Path] = {}  # server base URL -> its stdout and stderr


def _log_tail(base: str, lines: int = 40) -> str:
    """The end of a server's log, for a failure message."""
    log = LOGS.get(base)
    if log is None or not log.exists():
        return "(no server log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _serve(command: list[str], base: str, log: Path, **popen: Any) -> subprocess.Popen[bytes]:
    """Start a server whose output goes to ``log`` (quoted when a check fails)."""
    LOGS[base] = log
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own interpreter
            command, stdout=out, stderr=subprocess.STDOUT, **popen
        )


def _wait_until_up(url: str, base: str, what: str) -> None:
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=5).close()  # noqa: S310 - 127.0.0.1 only
            return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"{what} did not start. Server log:\n{_log_tail(base)}")


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()


def _await_kernel(base: str, seconds: float, what: str) -> None:
    """Poll the server until a kernel has a connected websocket and is idle."""
    deadline = time.monotonic() + seconds
    while not _kernel_ready(base):
        assert time.monotonic() < deadline, f"{what}. Server log:\n{_log_tail(base)}"
        time.sleep(0.5)


@pytest.fixture(scope="module", params=["JupyterLab Light", "JupyterLab Dark"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JupyterLab server on 127.0.0.1 serving a copy of the notebook (never the original).

    Parametrised by theme: the widgets must read well in light and dark JupyterLab.
    """
    home = tmp_path_factory.mktemp("lab")
    theme = home / "settings" / "@jupyterlab" / "apputils-extension"
    theme.mkdir(parents=True)
    (theme / "themes.jupyterlab-settings").write_text(json.dumps({"theme": request.param}))
    work = home / "work"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, work / NOTEBOOK)
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "HELIOSFL_KEY_DIR": str(home / "keys"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
    }
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={work}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--ServerApp.disable_check_xsrf=True",
    ]
    if hasattr(os, "getuid") and os.getuid() == 0:
        command.append("--allow-root")
    base = f"http://127.0.0.1:{port}"
    server = _serve(command, base, home / "server.log", env=env)
    try:
        _wait_until_up(f"{base}/api/status", base, "JupyterLab")
        yield base + "#" + request.param.split()[-1].lower()
    finally:
        _stop(server)


def _kernel_ready(base: str) -> bool:
    try:
        kernels = _get(f"{base}/api/kernels")
    except urllib.error.HTTPError as exc:  # a kernel mid-start can make the listing fail
        if exc.code < 500:
            raise
        return False
    assert isinstance(kernels, list)
    return any(k.get("connections", 0) > 0 and k.get("execution_state") == "idle" for k in kernels)


def test_notebook_03_trains_live_in_jupyterlab(lab: str) -> None:
    lab, theme = lab.split("#")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = _launch(p)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        try:
            page.goto(f"{lab}/lab/tree/{NOTEBOOK}?reset", timeout=60_000)
            _await_kernel(lab, 90, "the kernel never became idle")
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

            # The live dashboard of the training run: grid cells and the plot.
            grid = page.locator(".heliosfl-cluster-grid").first
            grid.wait_for(state="visible", timeout=120_000)
            page.wait_for_function(
                "() => document.querySelectorAll('.heliosfl-cell').length >= 100",
                timeout=120_000,
            )
            plot = page.locator(".heliosfl-convergence img").first
            plot.wait_for(state="attached", timeout=120_000)
            first_src = plot.get_attribute("src")
            page.wait_for_function(
                "(src) => { const i = document.querySelector('.heliosfl-convergence img');"
                " return i && i.getAttribute('src') !== src; }",
                arg=first_src,
                timeout=120_000,
            )  # the plot redrew
            grid.scroll_into_view_if_needed()
            grid.screenshot(path=str(ARTIFACTS / f"03_grid_mid_training_{theme}.png"))
            plot.screenshot(path=str(ARTIFACTS / f"03_plot_mid_training_{theme}.png"))

            # The launcher at the end of the notebook: once every cell has run, press its
            # Start and watch the new run's grid appear and change state.
            launcher = page.locator(".heliosfl-launcher").last
            launcher.wait_for(state="visible", timeout=180_000)
            _await_kernel(lab, 180, "the notebook never finished")
            grids_before = page.locator(".heliosfl-cluster-grid").count()
            start = launcher.locator("button", has_text="Start")
            start.scroll_into_view_if_needed()
            start.click()
            page.wait_for_function(
                "(n) => { const grids = document.querySelectorAll('.heliosfl-cluster-grid');"
                " if (grids.length <= n) return false; const g = grids[grids.length - 1];"
                " return g.querySelectorAll('.heliosfl-state-done, .heliosfl-state-training,"
                " .heliosfl-state-failed, .heliosfl-state-timed_out').length > 0; }",
                arg=grids_before,
                timeout=120_000,
            )
            last_grid = page.locator(".heliosfl-cluster-grid").last
            last_grid.scroll_into_view_if_needed()
            box = last_grid.bounding_box()
            viewport = page.viewport_size
            assert box is not None and box["width"] > 50 and box["height"] > 20
            assert viewport is not None and 0 <= box["y"] < viewport["height"]  # visible
            last_grid.screenshot(path=str(ARTIFACTS / f"03_launcher_grid_{theme}.png"))
        finally:
            page.screenshot(path=str(ARTIFACTS / f"03_page_{theme}.png"))
            browser.close()
    for name in ("03_grid_mid_training", "03_plot_mid_training", "03_launcher_grid"):
        header = (ARTIFACTS / f"{name}_{theme}.png").read_bytes()[:24]
        width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
        assert header.startswith(b"\x89PNG") and width > 100 and height > 40, (name, width, height)


def test_notebook_03_runs_in_notebook_7(lab: str) -> None:
    base, theme = lab.split("#")
    if theme != "light":
        pytest.skip("Notebook 7 is checked once")
    pytest.importorskip("notebook")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = _launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{base}/notebooks/{NOTEBOOK}", timeout=60_000)
            _await_kernel(base, 90, "the kernel never became idle")
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            page.wait_for_function(
                "() => document.querySelectorAll('.heliosfl-cell').length >= 100",
                timeout=120_000,
            )
            page.locator(".heliosfl-convergence img").first.wait_for(timeout=60_000)
            page.locator(".heliosfl-cluster-grid").first.screenshot(
                path=str(ARTIFACTS / "03_notebook7_grid.png")
            )
        finally:
            page.screenshot(path=str(ARTIFACTS / "03_notebook7_page.png"))
            browser.close()


def test_notebook_03_renders_as_a_voila_dashboard(tmp_path: Path) -> None:
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, tmp_path / NOTEBOOK)
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "HELIOSFL_KEY_DIR": str(tmp_path / "keys"),
    }
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "voila",
        NOTEBOOK,
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
    ]
    server = _serve(command, base, tmp_path / "server.log", cwd=tmp_path, env=env)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        _wait_until_up(base, base, "Voila")
        with playwright_api.sync_playwright() as p:
            browser = _launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                page.goto(base, timeout=180_000)  # Voila runs the whole notebook first
                page.wait_for_function(
                    "() => document.querySelectorAll('.heliosfl-cell').length >= 100",
                    timeout=180_000,
                )
                page.locator(".heliosfl-convergence img").first.wait_for(timeout=60_000)
                page.locator(".heliosfl-cluster-grid").first.screenshot(
                    path=str(ARTIFACTS / "03_voila_grid.png")
                )
            finally:
                page.screenshot(path=str(ARTIFACTS / "03_voila_page.png"))
                browser.close()
    finally:
        _stop(server)
    assert (ARTIFACTS / "03_voila_grid.png").read_bytes().startswith(b"\x89PNG")
