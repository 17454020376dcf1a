"""Streaming trace readers: Mooncake JSONL, Azure LLM CSV, Claude Code requests.jsonl -> Workload.

Every reader reads line by line (memory grows with the number of requests, never with the
file), and every bad line raises ``WorkloadError("file:line: what is wrong; fix")`` unless
``skip_bad_lines=True``, in which case bad lines are counted in ``Workload.meta["skipped_lines"]``
(with the first few messages in ``meta["skipped_examples"]``). Hit tokens are computed under an
unbounded prefix cache and rounded down to ``block_tokens``.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from dualpath_twin.workload.errors import WorkloadError
from dualpath_twin.workload.types import Workload

MOONCAKE_BLOCK_TOKENS = 512
CLAUDE_CODE_BLOCK_TOKENS = 64
TRACE_FORMATS = ("mooncake", "azure", "claude-code")
_MAX_EXAMPLES = 5
MAX_LINE_BYTES = 16 * 1024 * 1024  # longer lines are reported bad without being held in memory
MAX_TOKENS = 100_000_000  # per request: larger lengths are data errors (and would overflow int64 columns)
MAX_BLOCKS_PER_LINE = 4_000_000  # hash blocks one request may list (256M tokens at 64 per block)


class _BadLine(Exception):
    """Internal: one line is malformed (message says what and how to fix)."""


@dataclass
class _Skips:
    """Counts bad lines when skipping, raises otherwise."""

    path: str
    skip: bool
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def bad(self, line: int, msg: str) -> None:
        """Record (skip mode) or raise (strict mode) a bad line."""
        if not self.skip:
            raise WorkloadError(msg, self.path, line)
        self.count += 1
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(f"{self.path}:{line}: {msg}")

    def meta(self) -> dict[str, Any]:
        """Skip counters for Workload.meta."""
        return {"skipped_lines": self.count, "skipped_examples": list(self.examples)}


def _raw_lines(f: Any) -> Iterator[tuple[bytes, bool]]:
    """Yield (line bytes, too_long) reading at most MAX_LINE_BYTES at a time (a huge line is never held whole)."""
    while True:
        raw = f.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            head = raw[:64]
            while raw and not raw.endswith(b"\n"):  # drain the rest of the over-long line
                raw = f.readline(MAX_LINE_BYTES)
            yield head, True
            continue
        yield raw, False


def _lines(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    """Yield (line number, text, problem) for each non-blank line, decoding UTF-8 per line."""
    with path.open("rb") as f:
        for n, (raw, too_long) in enumerate(_raw_lines(f), 1):
            if too_long:
                kind = "binary data (NUL bytes) in a" if b"\x00" in raw else "a"
                yield (
                    n,
                    None,
                    f"{kind} line longer than {MAX_LINE_BYTES:,} bytes; this is not a trace line"
                    " - check the file path and format",
                )
                continue
            if b"\x00" in raw:
                yield (
                    n,
                    None,
                    "binary data (NUL byte); this is not a text trace - check the file path and format",
                )
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield n, None, "not UTF-8 text (binary or wrongly encoded file?); traces are UTF-8 JSONL/CSV"
                continue
            if text.strip():
                yield n, text, None


def _open_check(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise WorkloadError(
            "trace file not found; check workload.trace_path (relative paths resolve against the scenario file)",
            str(p),
        )
    if p.stat().st_size == 0:
        raise WorkloadError("empty trace file (0 bytes); give a non-empty trace", str(p), 1)
    return p


def _json_obj(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise _BadLine(
            f"invalid JSON ({err.msg} at column {err.colno}; truncated line?); fix or delete the line, or skip bad lines"
        ) from None
    if not isinstance(obj, dict):
        raise _BadLine(
            f"expected a JSON object per line, got {type(obj).__name__}; each line must be one request object"
        )
    return obj


def _int_field(obj: dict[str, Any], name: str, minimum: int) -> int:
    if name not in obj:
        raise _BadLine(f"missing field '{name}'; every request needs it")
    v = obj[name]
    if isinstance(v, bool) or not isinstance(v, int | float) or (isinstance(v, float) and not v.is_integer()):
        raise _BadLine(f"field '{name}' = {v!r} must be an integer number of tokens")
    if v < minimum:
        raise _BadLine(f"field '{name}' = {v!r} must be >= {minimum}; fix the value")
    if v > MAX_TOKENS:
        raise _BadLine(f"field '{name}' = {v!r} is absurdly large (> {MAX_TOKENS:,}); fix the value")
    return int(v)


def _num_field(obj: dict[str, Any], name: str, minimum: float = 0.0, default: float | None = None) -> float:
    if name not in obj or obj[name] is None:
        if default is not None:
            return default
        raise _BadLine(f"missing field '{name}'; every request needs it")
    v = obj[name]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _BadLine(f"field '{name}' = {v!r} must be a finite number")
    if v < minimum:
        raise _BadLine(f"field '{name}' = {v!r} must be >= {minimum}; fix the value")
    return float(v)


def _finish(
    name: str,
    path: Path,
    skips: _Skips,
    arrival: array,
    offsets: array,
    prompt: array,
    hit: array,
    gen: array,
    delay: array,
    open_loop: bool,
    meta: dict[str, Any],
) -> Workload:
    if len(prompt) == 0:
        raise WorkloadError(
            f"no valid requests ({skips.count} bad lines skipped); check the format (mooncake | azure | claude-code)",
            str(path),
        )
    n = len(prompt)
    wl = Workload(
        name=name,
        arrival_s=np.frombuffer(arrival, dtype=np.float64).copy(),
        round_offsets=np.frombuffer(offsets, dtype=np.int64).copy(),
        prompt_tokens=np.frombuffer(prompt, dtype=np.int64).copy(),
        hit_tokens=np.frombuffer(hit, dtype=np.int64).copy(),
        gen_tokens=np.frombuffer(gen, dtype=np.int64).copy(),
        delay_s=np.frombuffer(delay, dtype=np.float64).copy(),
        open_loop=open_loop,
        offset_s=np.zeros(n) if open_loop else None,
        source=str(path),
        meta={**meta, **skips.meta()},
    )
    return wl


def _leading_hits(ids: list[int], seen: set[int]) -> int:
    """Blocks at the head of ``ids`` already in ``seen`` (an unbounded prefix cache), then remember all."""
    lead = 0
    for h in ids:
        if h not in seen:
            break
        lead += 1
    seen.update(ids)
    return lead


def _round_down(tokens: int, block_tokens: int) -> int:
    return tokens - tokens % block_tokens


# ---------------------------------------------------------------- Mooncake


def _key_meta(keys: array, koff: array, order: np.ndarray) -> dict[str, np.ndarray]:
    """The block-key meta of a trace: keys flat in file order, their offsets per line, each round's line."""
    return {
        "block_keys": np.frombuffer(keys, dtype=np.int64) if len(keys) else np.zeros(0, dtype=np.int64),
        "block_key_offsets": np.frombuffer(koff, dtype=np.int64),
        "block_order": order,  # per round: its position (line) in the file
    }


def read_mooncake(
    path: str | Path, *, block_tokens: int = 64, time_scale: float = 1.0, skip_bad_lines: bool = False,
    block_keys: bool = False,
) -> Workload:
    """Read a Mooncake JSONL trace: one open-loop single-round trajectory per request.

    Arrival = timestamp / 1000 / time_scale. Hit = leading 512-token hash blocks already seen
    anywhere earlier in the file (unbounded cache), capped at input_length, then rounded down to
    ``block_tokens``. Timestamps must not decrease.
    """
    p = _open_check(path)
    skips = _Skips(str(p), skip_bad_lines)
    arrival, prompt, hit, gen = array("d"), array("q"), array("q"), array("q")
    seen: set[int] = set()
    last_ts = -math.inf
    lead_blocks = total_blocks = 0
    clamped_out = 0
    keys, koff = array("q"), array("q", [0])  # block_keys: every request's block ids, flat (the DRAM cache tier)
    for n, text, problem in _lines(p):
        try:
            if problem:
                raise _BadLine(problem)
            obj = _json_obj(text or "")
            ts = _num_field(obj, "timestamp", 0.0)
            inp = _int_field(obj, "input_length", 1)
            out = _int_field(obj, "output_length", 0)
            ids = obj.get("hash_ids")
            if ids is None:
                raise _BadLine("missing field 'hash_ids'; Mooncake lines list the 512-token prefix block ids")
            if not isinstance(ids, list) or not all(
                isinstance(h, int) and not isinstance(h, bool) for h in ids
            ):
                raise _BadLine("field 'hash_ids' must be a list of integer block ids")
            if ts < last_ts:
                raise _BadLine(
                    f"timestamp {ts:g} ms is earlier than the previous request's {last_ts:g} ms; sort the trace by timestamp"
                )
        except _BadLine as bad:
            skips.bad(n, str(bad))
            continue
        last_ts = ts
        lead = _leading_hits(ids, seen)
        lead_blocks += lead
        total_blocks += len(ids)
        if out == 0:
            clamped_out += 1
        arrival.append(ts / 1000.0 / time_scale)
        prompt.append(inp)
        hit.append(_round_down(min(lead * MOONCAKE_BLOCK_TOKENS, inp), block_tokens))
        gen.append(max(out, 1))
        if block_keys:
            keys.extend(ids)
            koff.append(len(keys))
    nreq = len(prompt)
    offsets = array("q", range(nreq + 1))
    meta = {
        "format": "mooncake",
        "native_block_tokens": MOONCAKE_BLOCK_TOKENS,
        "native_block_hit_ratio": lead_blocks / total_blocks if total_blocks else 0.0,
        "zero_output_clamped": clamped_out,
        "block_tokens": block_tokens,
    }
    if block_keys:
        meta.update(_key_meta(keys, koff, np.arange(nreq, dtype=np.int64)))
    delay = array("d", bytes(8 * nreq))
    return _finish(p.stem, p, skips, arrival, offsets, prompt, hit, gen, delay, True, meta)


# ---------------------------------------------------------------- Azure


AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def _parse_azure_time(text: str) -> float:
    """Seconds since the epoch of 'YYYY-MM-DD HH:MM:SS[.fffffff]' (any number of fraction digits)."""
    base, _, frac = text.strip().partition(".")
    dt = datetime.strptime(base, "%Y-%m-%d %H:%M:%S")
    if frac and not frac.isdigit():
        raise ValueError(frac)
    return dt.timestamp() + (float("0." + frac) if frac else 0.0)


def read_azure(path: str | Path, *, time_scale: float = 1.0, skip_bad_lines: bool = False) -> Workload:
    """Read an Azure LLM inference CSV (TIMESTAMP, ContextTokens, GeneratedTokens): arrivals and lengths, hit = 0."""
    p = _open_check(path)
    skips = _Skips(str(p), skip_bad_lines)
    arrival, prompt, hit, gen = array("d"), array("q"), array("q"), array("q")
    cols: dict[str, int] | None = None
    t0: float | None = None
    last = -math.inf
    for n, text, problem in _lines(p):
        if cols is None:
            if problem:
                raise WorkloadError(problem, str(p), n)
            header = [c.strip() for c in (text or "").split(",")]
            missing = [c for c in AZURE_COLUMNS if c not in header]
            if missing:
                raise WorkloadError(
                    f"header lacks column(s) {', '.join(missing)}; an Azure trace starts with 'TIMESTAMP,ContextTokens,GeneratedTokens'",
                    str(p),
                    n,
                )
            cols = {c: header.index(c) for c in AZURE_COLUMNS}
            continue
        try:
            if problem:
                raise _BadLine(problem)
            parts = (text or "").rstrip("\r\n").split(",")
            if len(parts) <= max(cols.values()):
                raise _BadLine(
                    f"expected {len(AZURE_COLUMNS)} comma-separated fields, got {len(parts)}; truncated line?"
                )
            try:
                ts = _parse_azure_time(parts[cols["TIMESTAMP"]])
            except ValueError:
                raise _BadLine(
                    f"TIMESTAMP {parts[cols['TIMESTAMP']]!r} is not 'YYYY-MM-DD HH:MM:SS.fffffff'; fix the value"
                ) from None
            vals = {}
            for c in ("ContextTokens", "GeneratedTokens"):
                raw = parts[cols[c]].strip()
                try:
                    vals[c] = int(raw)
                except ValueError:
                    raise _BadLine(f"{c} {raw!r} is not an integer number of tokens") from None
            if vals["ContextTokens"] < 1:
                raise _BadLine(f"ContextTokens = {vals['ContextTokens']} must be >= 1; fix the value")
            big = [c for c, v in vals.items() if v > MAX_TOKENS]
            if big:
                raise _BadLine(f"{big[0]} = {vals[big[0]]} is absurdly large (> {MAX_TOKENS:,}); fix the value")
            if vals["GeneratedTokens"] < 0:
                raise _BadLine(f"GeneratedTokens = {vals['GeneratedTokens']} must be >= 0; fix the value")
            if ts < last:
                raise _BadLine("TIMESTAMP is earlier than the previous line's; sort the trace by TIMESTAMP")
        except _BadLine as bad:
            skips.bad(n, str(bad))
            continue
        last = ts
        if t0 is None:
            t0 = ts
        arrival.append((ts - t0) / time_scale)
        prompt.append(vals["ContextTokens"])
        hit.append(0)
        gen.append(max(vals["GeneratedTokens"], 1))
    if cols is None:
        raise WorkloadError(
            "no header line; an Azure trace starts with 'TIMESTAMP,ContextTokens,GeneratedTokens'", str(p), 1
        )
    nreq = len(prompt)
    offsets = array("q", range(nreq + 1))
    delay = array("d", bytes(8 * nreq))
    return _finish(p.stem, p, skips, arrival, offsets, prompt, hit, gen, delay, True, {"format": "azure"})


# ---------------------------------------------------------------- Claude Code


@dataclass
class _Ctx:
    """Rounds of one (conversation, context) seen so far."""

    start_s: float
    prompt: list[int] = field(default_factory=list)
    hit: list[int] = field(default_factory=list)
    gen: list[int] = field(default_factory=list)
    delay: list[float] = field(default_factory=list)
    last_i: int = -1
    order: list[int] = field(default_factory=list)  # per round: its position in the file


def _expand_runs(runs: Any) -> list[int]:
    if not isinstance(runs, list):
        raise _BadLine("field 'hash_runs' must be a list of [start, end] block-id ranges")
    ids: list[int] = []
    for r in runs:
        if (
            not isinstance(r, list)
            or len(r) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in r)
            or r[1] < r[0]
        ):
            raise _BadLine(
                f"hash_runs entry {r!r} must be an inclusive [start, end] pair of integers with end >= start"
            )
        if len(ids) + (r[1] - r[0] + 1) > MAX_BLOCKS_PER_LINE:
            raise _BadLine(
                f"hash_runs cover more than {MAX_BLOCKS_PER_LINE:,} blocks in one request; fix the ranges"
            )
        ids.extend(range(r[0], r[1] + 1))
    return ids


def read_claude_code(
    path: str | Path, *, block_tokens: int = 64, skip_bad_lines: bool = False, block_keys: bool = False
) -> Workload:
    """Read the re-encoded Claude Code ``requests.jsonl``: one closed-loop trajectory per (trace, ctx).

    Hits = leading 64-token blocks already seen in the same conversation (sub-agents share its
    id namespace), capped at ``in`` and rounded down to ``block_tokens``; block counts are only
    approximately in/64 (tiktoken). ``delay_s`` = ``think_time`` (else the gap of ``t``).
    ``arrival_s`` = ``t_abs`` of the context's first call (0 for main contexts). Lines of one
    conversation must be contiguous, and ``i`` must count up by one within a context.
    """
    p = _open_check(path)
    skips = _Skips(str(p), skip_bad_lines)
    arrival, offsets, prompt, hit, gen, delay = (
        array("d"),
        array("q", [0]),
        array("q"),
        array("q"),
        array("q"),
        array("d"),
    )
    names: list[str] = []
    groups = array("q")
    done_convs: set[str] = set()
    conv: str | None = None
    seen: set[int] = set()
    ctxs: dict[str, _Ctx] = {}
    prev_t: dict[str, float] = {}
    lead_blocks = total_blocks = 0
    keys, koff = array("q"), array("q", [0])  # block_keys: every call's block keys, flat, in file order
    order: list[int] = []

    def flush() -> None:
        for cname, c in ctxs.items():
            order.extend(c.order)
            arrival.append(c.start_s)
            prompt.extend(c.prompt)
            hit.extend(c.hit)
            gen.extend(c.gen)
            delay.extend(c.delay)
            offsets.append(offsets[-1] + len(c.prompt))
            names.append(f"{conv}/{cname}")
            groups.append(len(done_convs))

    for n, text, problem in _lines(p):
        try:
            if problem:
                raise _BadLine(problem)
            obj = _json_obj(text or "")
            for key in ("trace", "ctx"):
                if not isinstance(obj.get(key), str) or not obj.get(key):
                    raise _BadLine(
                        f"missing or non-string field '{key}'; each call names its conversation and context"
                    )
            trace, ctx = obj["trace"], obj["ctx"]
            i = _int_field(obj, "i", 0)
            inp = _int_field(obj, "in", 1)
            out = _int_field(obj, "out", 0)
            t = _num_field(obj, "t", 0.0, default=0.0)
            t_abs = _num_field(obj, "t_abs", 0.0, default=t)
            think = obj.get("think_time")
            if think is not None:
                think = _num_field(obj, "think_time", 0.0)
            ids = _expand_runs(obj.get("hash_runs", []))
            if trace != conv and trace in done_convs:
                raise _BadLine(
                    f"conversation {trace!r} appears again after other conversations; keep each conversation's lines together"
                )
            cur = ctxs.get(ctx) if trace == conv else None
            expected = cur.last_i + 1 if cur else 0
            if i != expected:
                raise _BadLine(
                    f"call index i = {i} in {trace}/{ctx}, expected {expected}; calls of a context must be in order"
                )
        except _BadLine as bad:
            skips.bad(n, str(bad))
            continue
        if trace != conv:
            if conv is not None:
                flush()
                done_convs.add(conv)
            conv, seen, ctxs, prev_t = trace, set(), {}, {}
        c = ctxs.get(ctx)
        if c is None:
            c = ctxs[ctx] = _Ctx(start_s=t_abs - t if ctx != "main" else 0.0)
        lead = _leading_hits(ids, seen)
        lead_blocks += lead
        total_blocks += len(ids)
        c.prompt.append(inp)
        c.hit.append(_round_down(min(lead * CLAUDE_CODE_BLOCK_TOKENS, inp), block_tokens))
        c.gen.append(max(out, 1))
        if block_keys:
            base = len(done_convs) << 40  # ids are per conversation
            keys.extend([h + base for h in ids] if base else ids)
            c.order.append(len(koff) - 1)  # the call's position in the file
            koff.append(len(keys))
        if think is None:
            think = max(0.0, t - prev_t.get(ctx, t))
        c.delay.append(think if c.last_i >= 0 else 0.0)
        c.last_i = i
        prev_t[ctx] = t
    if conv is not None:
        flush()
    meta = {
        "format": "claude-code",
        "native_block_tokens": CLAUDE_CODE_BLOCK_TOKENS,
        "native_block_hit_ratio": lead_blocks / total_blocks if total_blocks else 0.0,
        "trajectory_names": names,
        "trajectory_group": groups.tolist(),  # conversation index per trajectory (JSON-friendly)
        "conversations": len(done_convs) + (1 if conv is not None else 0),
        "block_tokens": block_tokens,
    }
    if block_keys:
        meta.update(_key_meta(keys, koff, np.asarray(order, dtype=np.int64)))
    return _finish(p.stem, p, skips, arrival, offsets, prompt, hit, gen, delay, False, meta)


# ---------------------------------------------------------------- dispatch


def detect_format(path: str | Path) -> str:
    """Guess a trace's format from its first non-blank line (mooncake | azure | claude-code)."""
    p = _open_check(path)
    for n, text, problem in _lines(p):
        if problem:
            raise WorkloadError(problem, str(p), n)
        head = (text or "").strip()
        if head.startswith("{"):
            try:
                obj = json.loads(head)
            except json.JSONDecodeError:
                obj = {}
            if isinstance(obj, dict) and ("hash_runs" in obj or "trace" in obj):
                return "claude-code"
            if isinstance(obj, dict) and ("input_length" in obj or "hash_ids" in obj):
                return "mooncake"
        elif "ContextTokens" in head:
            return "azure"
        raise WorkloadError(
            "cannot tell the trace format from the first line; set workload.trace_format to mooncake, azure or claude-code",
            str(p),
            n,
        )
    raise WorkloadError("no non-blank lines; give a non-empty trace", str(p), 1)


def read_trace(
    path: str | Path,
    fmt: str = "auto",
    *,
    block_tokens: int = 64,
    time_scale: float = 1.0,
    skip_bad_lines: bool = False,
    block_keys: bool = False,
) -> Workload:
    """Read any supported trace (``fmt`` = auto | mooncake | azure | claude-code) into a Workload.

    ``block_keys`` also keeps every round's prefix block ids (for the DRAM cache tier, [cache]).
    """
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "mooncake":
        return read_mooncake(
            path, block_tokens=block_tokens, time_scale=time_scale, skip_bad_lines=skip_bad_lines,
            block_keys=block_keys,
        )
    if fmt == "azure":
        return read_azure(path, time_scale=time_scale, skip_bad_lines=skip_bad_lines)
    if fmt == "claude-code":
        return read_claude_code(path, block_tokens=block_tokens, skip_bad_lines=skip_bad_lines, block_keys=block_keys)
    raise WorkloadError(
        f"unknown trace format {fmt!r}; use one of auto, {', '.join(TRACE_FORMATS)}", str(path)
    )
