"""PDF output: the report's HTML printed by headless Chromium, so the PDF shows what the HTML shows."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from dualpath_twin.report.common import ReportError


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary (BROWSER_PATH first, as kaleido does), None if absent."""
    env = os.environ.get("BROWSER_PATH")
    if env and Path(env).is_file():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def print_pdf(page: Path, out: Path) -> None:
    """Print an HTML page to PDF with headless Chromium; ReportError when it cannot."""
    browser = find_chromium()
    if browser is None:
        raise ReportError(
            "PDF output needs Chromium (the browser kaleido uses): install it (apt-get install chromium) or set"
            " BROWSER_PATH, or write the report as .html"
        )
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--no-pdf-header-footer", "--virtual-time-budget=15000",
            f"--print-to-pdf={out.resolve()}", page.resolve().as_uri(),
        ]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            raise ReportError(
                f"Chromium did not finish printing {out} within 180 s; try the .html output"
            ) from None
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        raise ReportError(
            f"Chromium failed to print {out} (exit {proc.returncode}): {proc.stderr.strip()[-400:]}"
        )
