"""What the what-ifs did in a run, as rows with human headings: faults and the DRAM cache tier.

One place for the wording the dashboard's Results page and the HTML report both show.
"""

from __future__ import annotations

from dualpath_twin.results import RunSummary

FAULT_NOTE = ("Degradation = 1 - prompt tokens/s prefilled during the fault over the window before it; recovery = time "
              "after the repair until a 10 s window is back at 90% of that level; rounds re-queued = rounds a lost "
              "node's EP group held, started over on the other groups.")
CACHE_NOTE = ("Hit ratio = prompt tokens served from a node's DRAM over all prompt tokens; SNIC relief = the share of "
              "hit KV bytes that did not cross a storage NIC.")


def _num(v: float | None, fmt: str = ",.0f") -> str:
    return "-" if v is None else format(v, fmt)


def fault_rows(s: RunSummary) -> list[dict[str, str]]:
    """One row per configured fault: where, what, when, prompt tokens/s before and during, degradation, recovery, re-queued."""
    rows = []
    for f in s.faults:
        rows.append({
            "where": f"{f.node}{'' if f.gpu is None else f'.gpu{f.gpu}'}",
            "fault": f.kind,
            "interval (s)": f"{f.start_s:g}-{'end' if f.end_s is None else f'{f.end_s:g}'}",
            "prompt tok/s before": _num(f.prompt_tokens_per_s_before),
            "during": _num(f.prompt_tokens_per_s_during),
            "degradation": "-" if f.degradation is None else f"{f.degradation:.1%}",
            "recovery": "not within the run" if f.recovery_s is None else f"{f.recovery_s:.1f} s",
            "rounds re-queued": "-" if f.rounds_requeued is None else f"{f.rounds_requeued:,}",
        })
    return rows


def cache_row(s: RunSummary) -> dict[str, str] | None:
    """The DRAM cache tier's effect (capacity, hit ratio, bytes saved, SNIC relief), None without a [cache]."""
    c = s.cache
    if c is None:
        return None
    return {
        "capacity": "unbounded" if c.capacity_gb is None else f"{c.capacity_gb:g} GB",
        "scope": c.scope,
        "hit ratio (prompt tokens)": f"{c.hit_ratio_tokens:.1%}",
        "share of hit tokens": f"{c.share_of_hits:.1%}",
        "bytes from DRAM (saved)": f"{c.bytes_from_cache / 1e9:,.1f} GB",
        "bytes still via storage NICs": f"{c.snic_read_bytes / 1e9:,.1f} GB",
        "SNIC relief": f"{c.snic_relief:.1%}",
    }
