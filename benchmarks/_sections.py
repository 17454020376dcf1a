"""BENCHMARKS.md sections: each benchmark owns the text between its markers and rewrites nothing else."""

from __future__ import annotations

from pathlib import Path


def write_section(text: str, path: Path, open_mark: str, close_mark: str | None = None) -> None:
    """Replace the text from ``open_mark`` to ``close_mark`` (default: the same marker again), or append it."""
    close_mark = close_mark or open_mark
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    i = old.find(open_mark)
    j = old.find(close_mark, i + len(open_mark)) if i >= 0 else -1
    if i >= 0 and j >= 0:
        new = old[:i] + text + old[j + len(close_mark):]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(new, encoding="utf-8")
