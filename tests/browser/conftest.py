"""Fixtures for the real-browser tests: a `streamlit run app.py` server and Debian's Chromium via Playwright."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def core_works() -> bool:
    """True when the real simulation core runs a tiny scenario (else the browser tests use the fake core)."""
    probe = ("from dualpath_twin import api\nfrom dualpath_twin.ui import backend\n"
             "sc = backend.apply_overrides(backend.default_scenario(), {'workload.agents': 2, "
             "'workload.max_context_tokens': 2048})\napi.simulate(sc, 'basic')\n")
    try:
        r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


@pytest.fixture(scope="session")
def use_fake_core() -> bool:
    """Whether the server runs with the stand-in core (DUALPATH_TWIN_UI_FAKE_CORE=1 forces it)."""
    if os.environ.get("DUALPATH_TWIN_UI_FAKE_CORE") == "1":
        return True
    # the journey must exercise the real core: a broken core fails the test, it is never hidden
    assert core_works(), "the real simulation core failed on a tiny scenario; see `dualpath-twin run`"
    return False


@pytest.fixture(scope="session")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the dashboard server of this test session writes its console (stdout and stderr)."""
    return tmp_path_factory.mktemp("server") / "streamlit.log"


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory, use_fake_core: bool, server_log: Path) -> Iterator[str]:
    """Start the dashboard on a free localhost port with a temporary store; yield its URL."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's /usr/bin/chromium is not installed (apt-get install -y chromium)")
    port = _free_port()
    env = {**os.environ, "DUALPATH_TWIN_DB": str(tmp_path_factory.mktemp("store") / "browser.duckdb")}
    log = server_log
    cmd = [sys.executable, str(ROOT / "tests" / "browser" / "serve.py"), str(port)]
    if use_fake_core:
        cmd.append("--fake-core")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start; log:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """Debian's Chromium driven by Playwright's sync API (nothing is downloaded)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's /usr/bin/chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(chromium: object) -> Iterator[object]:
    """A fresh browser context (own cookies, so its own Streamlit sessions), tall viewport, downloads on."""
    ctx = chromium.new_context(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
    yield ctx
    ctx.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Folder for the journey's screenshots (test artefacts)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
