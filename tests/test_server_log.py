"""The dashboard server's console stays clean: page load and a real job leave no Python traceback in its log.

Starts ``streamlit run app.py`` headless on a free localhost port with a temporary store, checks
``/`` and the health endpoint, then opens a Streamlit session over its websocket (the protocol a
browser speaks, with Streamlit's own protobuf messages; no browser needed), which runs app.py
(and so the job server's warm-up process), clicks the builder's "Run comparison" button (the
quick scenario, basic vs dualpath, simulated in the dashboard's forkserver child process exactly
as from a browser) and waits until the store has both runs finished. Then the server log must
hold no "Traceback" (before the fix of issue 15 every child process re-imported app.py and
printed "An attempt has been made to start a new process before the current process has
finished its bootstrapping phase").
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

websockets = pytest.importorskip("websockets")
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402


def _run_async(coro):  # noqa: ANN001, ANN202
    """asyncio.run in a fresh thread: the browser tests' sync Playwright keeps an event loop running in this one."""
    out: dict[str, object] = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(coro)
        except BaseException as err:  # noqa: BLE001 - re-raised in the test's thread
            out["error"] = err

    t = threading.Thread(target=target, name="server-log-session")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("value")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as r:
        return int(r.status)


def _buttons(msg: ForwardMsg) -> dict[str, str]:
    """{label: widget id} of the buttons a delta message draws."""
    if msg.WhichOneof("type") != "delta" or msg.delta.WhichOneof("type") != "new_element":
        return {}
    el = msg.delta.new_element
    if el.WhichOneof("type") == "button":
        return {el.button.label: el.button.id}
    return {}


async def _session(port: int, click: str | None, timeout_s: float) -> dict[str, str]:
    """Run app.py once in a new session (optionally clicking the button labelled ``click``); return its buttons."""
    url = f"ws://127.0.0.1:{port}/_stcore/stream"
    async with websockets.connect(url, subprotocols=["streamlit"], max_size=None) as ws:

        async def rerun(widget_id: str | None = None) -> dict[str, str]:
            m = BackMsg()
            m.rerun_script.query_string = ""
            m.rerun_script.page_script_hash = ""
            if widget_id is not None:
                w = m.rerun_script.widget_states.widgets.add()
                w.id = widget_id
                w.trigger_value = True
            await ws.send(m.SerializeToString())
            found: dict[str, str] = {}
            while True:
                f = ForwardMsg()
                f.ParseFromString(await asyncio.wait_for(ws.recv(), timeout=timeout_s))
                found.update(_buttons(f))
                if f.WhichOneof("type") == "script_finished":
                    return found

        buttons = await rerun()
        if click is not None:
            assert click in buttons, f"no {click!r} button on the page (buttons: {sorted(buttons)})"
            await rerun(buttons[click])
        return buttons


@pytest.fixture
def server(tmp_path: Path):
    """``streamlit run app.py`` on a free port with a temporary store; yields (port, log path, db path)."""
    port = _free_port()
    db = tmp_path / "server.duckdb"
    log = tmp_path / "streamlit.log"
    env = {**os.environ, "DUALPATH_TWIN_DB": str(db), "DUALPATH_TWIN_UI_RUNNER": "process"}
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if _get(f"http://127.0.0.1:{port}/_stcore/health") == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start; log:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield port, log, db
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _finished_runs(db: Path) -> list[tuple[str, str]]:
    from dualpath_twin.store import open_store

    if not db.exists():
        return []
    store = open_store(db)
    try:
        df = store.list_runs()
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()
    return [(str(p), str(s)) for p, s in zip(df["policy"].to_list(), df["status"].to_list(), strict=True)]


def test_page_load_and_a_job_leave_no_traceback(server: tuple[int, Path, Path]) -> None:
    port, log, db = server
    assert _get(f"http://127.0.0.1:{port}/") == 200
    assert _get(f"http://127.0.0.1:{port}/_stcore/health") == 200
    # page load: app.py runs, the job server's warm-up child starts
    buttons = _run_async(_session(port, None, timeout_s=120))
    assert "Run comparison" in buttons
    # a job from the builder, simulated in the dashboard's child process
    _run_async(_session(port, "Run comparison", timeout_s=120))
    deadline = time.monotonic() + 300
    runs: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        runs = _finished_runs(db)
        if len(runs) >= 2 and all(s not in ("queued", "running") for _, s in runs):
            break
        time.sleep(2)
    assert sorted(p for p, _ in runs) == ["basic", "dualpath"], runs
    assert all(s == "finished" for _, s in runs), runs
    time.sleep(1)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-4000:]
    assert "bootstrapping phase" not in text
