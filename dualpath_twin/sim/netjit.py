"""Compiled engine of the flow network: the same exact max-min sharing as ``network.py``.

``network.FlowNetwork`` is the readable reference: Python objects, one SimPy timeout per rate
change. This engine keeps the same state in NumPy arrays and runs the same algorithm in Numba:

- links: capacity, aggregate rate, bytes carried, peak utilisation, and the flows crossing them;
- flows: remaining bytes, rate, the links they cross;
- one indexed heap of predicted completion times (an entry per flow, moved when its rate
  changes) and ONE wake-up for the earliest completion, instead of a SimPy timeout per flow per
  rate change;
- flows finishing at the same instant leave together and the affected flows are re-shared once.

Rates are re-shared exactly as in the reference: the component of flows coupled through
saturated links, boundary links carrying what the outside flows leave, widening when a boundary
link saturates, and the two exact shortcuts (a finishing flow that crossed no saturated link; a
new flow that can take its tightest link's spare capacity and is the largest flow there).
``tests/test_netjit.py`` checks both engines give the same completion times on random traffic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import simpy
from numba import njit

from dualpath_twin.sim.calls import call_later
from dualpath_twin.sim.network import Link, Path

_EPS_BYTES = 1e-3
_INF = math.inf
_SAT = 1e-9  # relative tolerance for "saturated"

# link float columns
CAP, LRATE, BYTES, LT, PEAK, CAPC, WCAP, INSIDE, USED = range(9)
N_LF = 9
# link int columns
NFL, INNER, EXPAND, INSET, CNT, WCNT, SEED = range(7)
N_LI = 7
# flow float columns
REM, SIZE, RATE, FT, NEW = range(5)
N_FF = 5
# flow int columns
NL, HPOS, ACTIVE, MARK = range(4)  # HPOS: the flow's place in the completion heap, -1 if none
N_FI = 4
# misc counters
HEAP_N, STAMP, RECOMPUTES, SKIPPED, NACT, RESHARED, PASSES = range(7)
N_MISC = 7


# --------------------------------------------------------------------------- heaps
@njit(cache=True, error_model="numpy")
def _hpush(ht, hs, hv, n, t, s, v):
    """Push (t, slot, version) on the min-heap of size n; returns the new size."""
    i = n
    ht[i] = t
    hs[i] = s
    hv[i] = v
    while i > 0:
        p = (i - 1) >> 1
        if ht[p] < ht[i] or (ht[p] == ht[i] and hs[p] <= hs[i]):
            break
        ht[p], ht[i] = ht[i], ht[p]
        hs[p], hs[i] = hs[i], hs[p]
        hv[p], hv[i] = hv[i], hv[p]
        i = p
    return n + 1


@njit(cache=True, error_model="numpy")
def _hpop(ht, hs, hv, n):
    """Remove the top of the min-heap of size n (read it first); returns the new size."""
    n -= 1
    ht[0] = ht[n]
    hs[0] = hs[n]
    hv[0] = hv[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and (ht[c + 1] < ht[c] or (ht[c + 1] == ht[c] and hs[c + 1] < hs[c])):
            c += 1
        if ht[i] < ht[c] or (ht[i] == ht[c] and hs[i] <= hs[c]):
            break
        ht[c], ht[i] = ht[i], ht[c]
        hs[c], hs[i] = hs[i], hs[c]
        hv[c], hv[i] = hv[i], hv[c]
        i = c
    return n


# the completion heap is indexed: one entry per flow with a rate (its place in fi[f, HPOS]), keyed
# by (predicted completion, slot); a new prediction moves the entry, so no stale entries pile up
@njit(cache=True, error_model="numpy")
def _cbefore(ht, hs, a, b):
    return ht[a] < ht[b] or (ht[a] == ht[b] and hs[a] < hs[b])


@njit(cache=True, error_model="numpy")
def _cswap(ht, hs, fi, a, b):
    ht[a], ht[b] = ht[b], ht[a]
    hs[a], hs[b] = hs[b], hs[a]
    fi[hs[a], HPOS] = a
    fi[hs[b], HPOS] = b


@njit(cache=True, error_model="numpy")
def _csift(ht, hs, fi, n, i):
    """Restore the heap order around position i (up, then down)."""
    while i > 0:
        p = (i - 1) >> 1
        if not _cbefore(ht, hs, i, p):
            break
        _cswap(ht, hs, fi, i, p)
        i = p
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and _cbefore(ht, hs, c + 1, c):
            c += 1
        if not _cbefore(ht, hs, c, i):
            break
        _cswap(ht, hs, fi, i, c)
        i = c


@njit(cache=True, error_model="numpy")
def _cset(ht, hs, fi, misc, f, t):
    """Put flow f in the completion heap at time t, or move it there."""
    i = fi[f, HPOS]
    if i < 0:
        i = misc[HEAP_N]
        misc[HEAP_N] = i + 1
        hs[i] = f
        fi[f, HPOS] = i
    ht[i] = t
    _csift(ht, hs, fi, misc[HEAP_N], i)


@njit(cache=True, error_model="numpy")
def _cremove(ht, hs, fi, misc, f):
    """Take flow f out of the completion heap (if it is in)."""
    i = fi[f, HPOS]
    if i < 0:
        return
    fi[f, HPOS] = -1
    n = misc[HEAP_N] - 1
    misc[HEAP_N] = n
    if i < n:
        ht[i] = ht[n]
        hs[i] = hs[n]
        fi[hs[i], HPOS] = i
        _csift(ht, hs, fi, n, i)


# --------------------------------------------------------------------------- helpers
@njit(cache=True, error_model="numpy")
def _advance(lf, lk, now):
    if now > lf[lk, LT]:
        lf[lk, BYTES] += lf[lk, LRATE] * (now - lf[lk, LT])
        lf[lk, LT] = now


@njit(cache=True, error_model="numpy")
def _saturated(lf, lk):
    return lf[lk, LRATE] >= lf[lk, CAP] * (1.0 - _SAT)


@njit(cache=True, error_model="numpy")
def _schedule(ff, fi, ht, hs, misc, f, now):
    """Predict the flow's completion from its rate (none while its rate is zero)."""
    if ff[f, RATE] > 0.0:
        _cset(ht, hs, fi, misc, f, now + ff[f, REM] / ff[f, RATE])
    else:
        _cremove(ht, hs, fi, misc, f)


@njit(cache=True, error_model="numpy")
def _enter_set(lf, li, scr, lk, st, nset, L):
    """Put link ``lk`` in the component's link set of pass ``st`` with empty counts; returns the new set size."""
    li[lk, INSET] = st
    li[lk, CNT] = 0
    lf[lk, INSIDE] = 0.0
    lf[lk, USED] = 0.0
    scr[L + nset] = lk
    return nset + 1


@njit(cache=True, error_model="numpy")
def _join(lf, li, ff, fi, flinks, scr, f, st, estamp, nset, nstack, nflows, L):
    """Put flow ``f`` in the component of pass ``st``; its links join the set, and the inner ones
    (expanded or saturated) the stack. Returns the new (set, stack, flow) counts."""
    fi[f, MARK] = st
    ff[f, NEW] = -1.0
    scr[2 * L + nflows] = f
    nflows += 1
    rate = ff[f, RATE]
    for k in range(fi[f, NL]):
        l2 = flinks[f, k]
        if li[l2, INSET] != st:
            nset = _enter_set(lf, li, scr, l2, st, nset, L)
            if li[l2, EXPAND] == estamp or _saturated(lf, l2):
                li[l2, INNER] = st
                scr[nstack] = l2
                nstack += 1
        li[l2, CNT] += 1
        lf[l2, INSIDE] += rate
    return nset, nstack, nflows


@njit(cache=True, error_model="numpy")
def _recompute(lf, li, lflows, ff, fi, flinks, ht, hs, misc, seeds, nseeds, scr, fht, fhl, fhv, now, lam, keep,
               only_sat):
    """Re-share max-min among the flows a change at the seed links can affect (exact).

    Passes are fused: the component search also collects every link the component's flows cross
    with its member count and current inside rate; the filling accumulates the new inside rates.

    ``lam``: flows whose rate is below it cannot change and stay outside the component (their
    rate is capacity used by others). When flows leave, progressive filling runs identically up
    to the lowest level at which a link they crossed froze flows (the largest rate on it), so
    every flow frozen below that level keeps its rate. When a flow arrives, no link it crosses can
    saturate below its smallest equal share (capacity / flows), so flows frozen below that level
    keep theirs. -inf when nothing is known. ``keep``: a flow always in the component (the new one).

    ``only_sat``: only the saturated seed links are inner (an arrival). A link that is not
    saturated constrains nobody, so its other flows need not be re-shared: it is a boundary link
    of the component, with the capacity the outside flows leave, and it is widened into (its
    flows pulled in) only if the new sharing saturates it. Otherwise every seed is inner.
    """
    misc[RECOMPUTES] += 1
    # scratch layout: [0, L) stack, [L, 2L) the component's links, [2L, 2L+F) its flows;
    # the fill heap (fht, fhl, fhv) holds at most one entry per link
    L = lf.shape[0]
    stack_o = 0
    clink_o = L
    cflow_o = 2 * L
    misc[STAMP] += 1
    estamp = misc[STAMP]
    for i in range(nseeds):
        if not only_sat or _saturated(lf, seeds[i]):
            li[seeds[i], EXPAND] = estamp
    while True:
        misc[PASSES] += 1
        misc[STAMP] += 1
        st = misc[STAMP]
        # ---- component: flows reachable through seed, expanded or saturated (inner) links; every
        # link they cross is in the set (inner, or boundary: capacity left by outside flows)
        nstack = 0
        nset = 0
        for i in range(nseeds):
            s = seeds[i]
            if li[s, EXPAND] == estamp and li[s, INNER] != st:
                li[s, INNER] = st
                nset = _enter_set(lf, li, scr, s, st, nset, L)
                scr[stack_o + nstack] = s
                nstack += 1
        nflows = 0
        if keep >= 0:
            # the new flow is always in; its links join the set (inner when saturated or expanded)
            nset, nstack, nflows = _join(lf, li, ff, fi, flinks, scr, keep, st, estamp, nset, nstack, nflows, L)
        while nstack > 0:
            nstack -= 1
            lk = scr[stack_o + nstack]
            for j in range(li[lk, NFL]):
                f = lflows[lk, j]
                if fi[f, MARK] == st or (ff[f, RATE] < lam and f != keep):
                    continue
                nset, nstack, nflows = _join(lf, li, ff, fi, flinks, scr, f, st, estamp, nset, nstack, nflows, L)
        # ---- capacities left to the component; the fill heap of fair shares
        hn = 0
        for i in range(nset):
            lk = scr[clink_o + i]
            if li[lk, CNT] == li[lk, NFL]:
                lf[lk, CAPC] = lf[lk, CAP]
            else:  # what flows outside the component currently use stays theirs
                lf[lk, CAPC] = max(lf[lk, CAP] - max(lf[lk, LRATE] - lf[lk, INSIDE], 0.0), 0.0)
            lf[lk, WCAP] = lf[lk, CAPC]
            li[lk, WCNT] = li[lk, CNT]
            if li[lk, CNT] > 0:
                hn = _hpush(fht, fhl, fhv, hn, lf[lk, CAPC] / li[lk, CNT], lk, 0)
        # ---- progressive filling with a lazy heap (shares only grow)
        while hn > 0:
            share = fht[0]
            best = fhl[0]
            hn = _hpop(fht, fhl, fhv, hn)
            n = li[best, WCNT]
            if n <= 0:
                continue
            cur = lf[best, WCAP] / n
            if cur > share * (1.0 + 1e-12) + 1e-9:
                hn = _hpush(fht, fhl, fhv, hn, cur, best, 0)
                continue
            share = max(cur, 0.0)
            for j in range(li[best, NFL]):
                f = lflows[best, j]
                if fi[f, MARK] == st and ff[f, NEW] < 0.0:
                    ff[f, NEW] = share
                    for k in range(fi[f, NL]):
                        l2 = flinks[f, k]
                        lf[l2, WCAP] -= share
                        li[l2, WCNT] -= 1
                        lf[l2, USED] += share
        # ---- widen when a partly-outside boundary link now saturates
        grow = False
        for i in range(nset):
            lk = scr[clink_o + i]
            if li[lk, INNER] == st or li[lk, CNT] == li[lk, NFL]:
                continue
            if lf[lk, USED] >= lf[lk, CAPC] * (1.0 - _SAT):
                li[lk, EXPAND] = estamp
                grow = True
        if not grow:
            break
    # ---- apply
    misc[RESHARED] += nflows
    for i in range(nset):
        lk = scr[clink_o + i]
        _advance(lf, lk, now)
        if li[lk, CNT] == li[lk, NFL]:
            lf[lk, LRATE] = lf[lk, USED]
        else:
            lf[lk, LRATE] = max(lf[lk, LRATE] - lf[lk, INSIDE], 0.0) + lf[lk, USED]
        u = lf[lk, LRATE] / lf[lk, CAP]
        if u > lf[lk, PEAK]:
            lf[lk, PEAK] = u
    for i in range(nflows):
        f = scr[cflow_o + i]
        r = ff[f, NEW]
        old = ff[f, RATE]
        if old > 0.0:
            ff[f, REM] -= old * (now - ff[f, FT])
            if ff[f, REM] < 0.0:
                ff[f, REM] = 0.0
        ff[f, FT] = now
        if r != old or old == 0.0:
            ff[f, RATE] = r
            _schedule(ff, fi, ht, hs, misc, f, now)


# --------------------------------------------------------------------------- entry points
@njit(cache=True, error_model="numpy")
def _start(lf, li, lflows, ff, fi, flinks, fpos, ht, hs, misc, scr, fht, fhl, fhv, f, ids, nbytes, now):
    """Attach flow slot ``f`` over links ``ids`` and give it its max-min rate.

    Returns the earliest predicted completion (inf if none), or -1 if a link's flow list is full
    (the caller grows the lists and calls again).
    """
    m = lflows.shape[1]
    for k in range(ids.shape[0]):
        if li[ids[k], NFL] >= m:
            return -1.0
    misc[NACT] += 1
    fi[f, HPOS] = -1
    fi[f, NL] = ids.shape[0]
    fi[f, ACTIVE] = 1
    ff[f, REM] = nbytes
    ff[f, SIZE] = nbytes
    ff[f, RATE] = 0.0
    ff[f, FT] = now
    for k in range(ids.shape[0]):
        lk = ids[k]
        flinks[f, k] = lk
        fpos[f, k] = li[lk, NFL]
        lflows[lk, li[lk, NFL]] = f
        li[lk, NFL] += 1
    # shortcut: the spare capacity of the tightest link, if f would be the largest flow there
    r = math.inf
    bott = -1
    lam = math.inf  # the smallest equal share on f's links: nothing below it changes
    for k in range(ids.shape[0]):
        lk = ids[k]
        spare = lf[lk, CAP] - lf[lk, LRATE]
        if spare < r:
            r = spare
            bott = lk
        eq = lf[lk, CAP] / li[lk, NFL]
        if eq < lam:
            lam = eq
    ok = bott >= 0 and r > lf[bott, CAP] * 1e-9
    if ok:
        for j in range(li[bott, NFL]):
            g = lflows[bott, j]
            if g != f and ff[g, RATE] > r:
                ok = False
                break
    if ok:
        misc[SKIPPED] += 1
        for k in range(ids.shape[0]):
            lk = ids[k]
            _advance(lf, lk, now)
            lf[lk, LRATE] += r
            u = lf[lk, LRATE] / lf[lk, CAP]
            if u > lf[lk, PEAK]:
                lf[lk, PEAK] = u
        ff[f, RATE] = r
        _schedule(ff, fi, ht, hs, misc, f, now)
    else:
        _recompute(lf, li, lflows, ff, fi, flinks, ht, hs, misc, ids, ids.shape[0], scr, fht, fhl, fhv, now,
                   lam * (1.0 - 1e-9), f, True)
    return ht[0] if misc[HEAP_N] > 0 else math.inf


@njit(cache=True, error_model="numpy")
def _pop_due(lf, li, lflows, ff, fi, flinks, fpos, ht, hs, misc, scr, fht, fhl, fhv, seeds, out, now):
    """Complete every flow due by ``now``; write their slots to ``out``.

    Returns (how many, the earliest predicted completion left or inf).
    """
    ndone = 0
    nseeds = 0
    lam = math.inf
    misc[STAMP] += 1
    sst = misc[STAMP]
    while misc[HEAP_N] > 0:
        t = ht[0]
        if not (t <= now or now + (t - now) <= now):
            break
        f = hs[0]
        rate = ff[f, RATE]
        ff[f, REM] -= rate * (now - ff[f, FT])
        ff[f, FT] = now
        tail = ff[f, REM] / rate if rate > 0.0 else math.inf
        if ff[f, REM] > max(_EPS_BYTES, 1e-9 * ff[f, SIZE]) and now + tail > now:
            _schedule(ff, fi, ht, hs, misc, f, now)  # numerical drift: the tail
            continue
        _cremove(ht, hs, fi, misc, f)
        ff[f, REM] = 0.0
        fi[f, ACTIVE] = 0
        sat = False
        for k in range(fi[f, NL]):
            lk = flinks[f, k]
            _advance(lf, lk, now)
            if _saturated(lf, lk):
                # the level at which this link froze its flows: the largest rate on it
                top = 0.0
                for j in range(li[lk, NFL]):
                    r2 = ff[lflows[lk, j], RATE]
                    if r2 > top:
                        top = r2
                if top < lam:
                    lam = top
                # only saturated links constrain others: they seed the re-share (inner links)
                sat = True
                if li[lk, SEED] != sst:
                    li[lk, SEED] = sst
                    seeds[nseeds] = lk
                    nseeds += 1
            # swap-remove f from the link's flow list
            j = fpos[f, k]
            last = li[lk, NFL] - 1
            g = lflows[lk, last]
            lflows[lk, j] = g
            if g != f:
                for k2 in range(fi[g, NL]):
                    if flinks[g, k2] == lk:
                        fpos[g, k2] = j
                        break
            li[lk, NFL] = last
        for k in range(fi[f, NL]):
            lk = flinks[f, k]
            lf[lk, LRATE] = max(lf[lk, LRATE] - rate, 0.0) if li[lk, NFL] > 0 else 0.0
        if not sat:
            misc[SKIPPED] += 1
        ff[f, RATE] = 0.0
        out[ndone] = f
        ndone += 1
    misc[NACT] -= ndone
    if nseeds > 0:
        _recompute(lf, li, lflows, ff, fi, flinks, ht, hs, misc, seeds, nseeds, scr, fht, fhl, fhv, now,
                   lam * (1.0 - 1e-9), -1, False)
    return ndone, (ht[0] if misc[HEAP_N] > 0 else math.inf)


@njit(cache=True, error_model="numpy")
def _set_caps(lf, li, lflows, ff, fi, flinks, ht, hs, misc, scr, fht, fhl, fhv, ids, cap, now):
    """Set the capacity of links ``ids`` and re-share their flows once."""
    n = 0
    seeds = np.empty(ids.shape[0], dtype=np.int64)
    for k in range(ids.shape[0]):
        lk = ids[k]
        if abs(cap - lf[lk, CAP]) > 1e-9 * lf[lk, CAP]:
            _advance(lf, lk, now)
            lf[lk, CAP] = cap
            if li[lk, NFL] > 0:
                seeds[n] = lk
                n += 1
    if n > 0:
        _recompute(lf, li, lflows, ff, fi, flinks, ht, hs, misc, seeds, n, scr, fht, fhl, fhv, now, -math.inf, -1,
                   False)


@njit(cache=True, error_model="numpy")
def k_advance_all(lf, now):
    """Account every link's bytes up to ``now``."""
    for lk in range(lf.shape[0]):
        _advance(lf, lk, now)


@njit(cache=True, error_model="numpy")
def k_bytes_of(lf, idx, now):
    """Bytes carried up to ``now`` by the links ``idx`` (advancing only those)."""
    out = np.empty(idx.shape[0])
    for i in range(idx.shape[0]):
        _advance(lf, idx[i], now)
        out[i] = lf[idx[i], BYTES]
    return out


# --------------------------------------------------------------------------- arenas
# All state lives in two flat arenas (float64 and int64) so a kernel call passes 3 arrays, not 17:
# Numba's dispatcher costs about 60 ns per array argument, and the kernels run ~12 times a round.
# ``off`` holds the dimensions and where each array starts; ``_views`` rebuilds the arrays (free).
O_L, O_M, O_F, O_K = range(4)  # links, flows per link list, flows (also the completion heap's size), links per flow
(O_LF, O_FF, O_HT, O_FHT, O_LI, O_LFL, O_FI, O_FLK, O_FPS, O_HS, O_MISC, O_SCR, O_FHL, O_FHV, O_SEEDS,
 O_OUT) = range(4, 20)
N_OFF = 20


@njit(cache=True, error_model="numpy")
def _views(fa, ia, off):
    """The named arrays as views into the two arenas."""
    L, M, F, K = off[O_L], off[O_M], off[O_F], off[O_K]
    lf = fa[off[O_LF]:off[O_LF] + L * N_LF].reshape((L, N_LF))
    ff = fa[off[O_FF]:off[O_FF] + F * N_FF].reshape((F, N_FF))
    ht = fa[off[O_HT]:off[O_HT] + F]
    fht = fa[off[O_FHT]:off[O_FHT] + L + 8]
    li = ia[off[O_LI]:off[O_LI] + L * N_LI].reshape((L, N_LI))
    lflows = ia[off[O_LFL]:off[O_LFL] + L * M].reshape((L, M))
    fi = ia[off[O_FI]:off[O_FI] + F * N_FI].reshape((F, N_FI))
    flinks = ia[off[O_FLK]:off[O_FLK] + F * K].reshape((F, K))
    fpos = ia[off[O_FPS]:off[O_FPS] + F * K].reshape((F, K))
    hs = ia[off[O_HS]:off[O_HS] + F]
    misc = ia[off[O_MISC]:off[O_MISC] + N_MISC]
    scr = ia[off[O_SCR]:off[O_SCR] + 2 * L + F + 8]
    fhl = ia[off[O_FHL]:off[O_FHL] + L + 8]
    fhv = ia[off[O_FHV]:off[O_FHV] + L + 8]
    seeds = ia[off[O_SEEDS]:off[O_SEEDS] + L + 8]
    out = ia[off[O_OUT]:off[O_OUT] + F + 8]
    return lf, ff, ht, fht, li, lflows, fi, flinks, fpos, hs, misc, scr, fhl, fhv, seeds, out


@njit(cache=True, error_model="numpy")
def k_start(fa, ia, off, f, ids, nbytes, now):
    """Attach flow slot ``f`` over links ``ids``; see ``_start``."""
    lf, ff, ht, fht, li, lflows, fi, flinks, fpos, hs, misc, scr, fhl, fhv, seeds, out = _views(fa, ia, off)
    return _start(lf, li, lflows, ff, fi, flinks, fpos, ht, hs, misc, scr, fht, fhl, fhv, f, ids, nbytes, now)


@njit(cache=True, error_model="numpy")
def k_pop_due(fa, ia, off, now):
    """Complete every flow due by ``now``; see ``_pop_due``."""
    lf, ff, ht, fht, li, lflows, fi, flinks, fpos, hs, misc, scr, fhl, fhv, seeds, out = _views(fa, ia, off)
    return _pop_due(lf, li, lflows, ff, fi, flinks, fpos, ht, hs, misc, scr, fht, fhl, fhv, seeds, out, now)


@njit(cache=True, error_model="numpy")
def k_set_caps(fa, ia, off, ids, cap, now):
    """Set the capacity of links ``ids`` and re-share once; see ``_set_caps``."""
    lf, ff, ht, fht, li, lflows, fi, flinks, fpos, hs, misc, scr, fhl, fhv, seeds, out = _views(fa, ia, off)
    _set_caps(lf, li, lflows, ff, fi, flinks, ht, hs, misc, scr, fht, fhl, fhv, ids, cap, now)


# --------------------------------------------------------------------------- Python shell
# name -> (arena "f"/"i", its slot in ``off``, shape from the dimensions L, M, F, K); must match ``_views``
_ARRAYS: dict[str, tuple[str, int, Callable[[int, int, int, int], tuple[int, ...]]]] = {
    "_lf": ("f", O_LF, lambda L, M, F, K: (L, N_LF)),
    "_ff": ("f", O_FF, lambda L, M, F, K: (F, N_FF)),
    "_ht": ("f", O_HT, lambda L, M, F, K: (F,)),
    "_fht": ("f", O_FHT, lambda L, M, F, K: (L + 8,)),
    "_li": ("i", O_LI, lambda L, M, F, K: (L, N_LI)),
    "_lflows": ("i", O_LFL, lambda L, M, F, K: (L, M)),
    "_fi": ("i", O_FI, lambda L, M, F, K: (F, N_FI)),
    "_flinks": ("i", O_FLK, lambda L, M, F, K: (F, K)),
    "_fpos": ("i", O_FPS, lambda L, M, F, K: (F, K)),
    "_hs": ("i", O_HS, lambda L, M, F, K: (F,)),
    "_misc": ("i", O_MISC, lambda L, M, F, K: (N_MISC,)),
    "_scr": ("i", O_SCR, lambda L, M, F, K: (2 * L + F + 8,)),
    "_fhl": ("i", O_FHL, lambda L, M, F, K: (L + 8,)),
    "_fhv": ("i", O_FHV, lambda L, M, F, K: (L + 8,)),
    "_seeds": ("i", O_SEEDS, lambda L, M, F, K: (L + 8,)),
    "_out": ("i", O_OUT, lambda L, M, F, K: (F + 8,)),
}
_SCRATCH = {"_fht", "_fhl", "_fhv", "_seeds", "_out", "_scr"}  # nothing to keep across calls


class JitFlowNetwork:
    """Max-min fair sharing of links among active flows on array state, compiled with Numba."""

    def __init__(self, env: simpy.Environment, max_links_per_flow: int = 8) -> None:
        self.env = env
        self.active = 0
        self.flows_started = 0
        self.links: list[Link] = []
        self._free: list[int] = []
        self._ev: list[Callable[..., None] | None] = []  # per flow slot: what to call when it completes
        self._paths: dict[tuple[Link, ...], np.ndarray] = {}
        self._groups: dict[tuple[Link, ...], np.ndarray] = {}
        self._wake_t = math.inf  # the armed wake-up: the earliest predicted completion, or later
        self._wake_entry: object = None
        # driven: the run loop calls ``run_due`` at ``next_due_s`` itself (no SimPy queue entry)
        self.driven = False
        self.wakeups = 0
        # arena dimensions: link rows, flows per link list, flow rows (and heap size), links per flow
        self._L, self._M, self._F, self._K = 0, 0, 0, 0
        self._fa = np.zeros(0)
        self._ia = np.zeros(0, dtype=np.int64)
        self._realloc(64, 16, 256, max_links_per_flow)

    # ---------------------------------------------------------------- counters
    @property
    def recomputes(self) -> int:
        """Number of max-min re-shares run."""
        return int(self._misc[RECOMPUTES])

    @property
    def reshared_flows(self) -> int:
        """Flows whose rate the re-shares recomputed, summed over all re-shares (component sizes)."""
        return int(self._misc[RESHARED])

    @property
    def reshare_passes(self) -> int:
        """Component passes run by the re-shares (a re-share widens when a boundary link saturates)."""
        return int(self._misc[PASSES])

    @property
    def skipped_recomputes(self) -> int:
        """Number of starts and finishes that needed no re-share (exact shortcuts)."""
        return int(self._misc[SKIPPED])

    # ---------------------------------------------------------------- storage
    def register(self, lk: Link) -> int:
        """Give a link its row in the arrays (once) and return it."""
        if lk.owner is self:
            return lk.idx
        idx = len(self.links)
        if idx >= self._L:
            self._grow_links(2 * self._L)
        self.links.append(lk)
        lk.idx = idx
        lk.owner = self
        self._lf[idx, CAP] = lk.capacity_bps
        self._lf[idx, LT] = self.env.now
        return idx

    def _realloc(self, n_l: int, m: int, n_f: int, k: int) -> None:
        """Lay the arrays out in new arenas of these dimensions, keeping every value already stored."""
        old = {name: getattr(self, name) for name in _ARRAYS} if self._L else {}
        off = np.zeros(N_OFF, dtype=np.int64)
        off[O_L], off[O_M], off[O_F], off[O_K] = n_l, m, n_f, k
        shapes = {}
        pos = {"f": 0, "i": 0}
        for name, (kind, slot, shape_of) in _ARRAYS.items():
            shapes[name] = shape_of(n_l, m, n_f, k)
            off[slot] = pos[kind]
            pos[kind] += math.prod(shapes[name])
        fa = np.zeros(pos["f"])
        ia = np.zeros(pos["i"], dtype=np.int64)
        for name, (kind, slot, _shape_of) in _ARRAYS.items():
            shp = shapes[name]
            view = (fa if kind == "f" else ia)[off[slot]:off[slot] + math.prod(shp)].reshape(shp)
            if name in old and name not in _SCRATCH:
                src = old[name]
                common = tuple(slice(0, min(a, b)) for a, b in zip(src.shape, shp, strict=True))
                view[common] = src[common]
            setattr(self, name, view)
        if self._F < n_f:
            self._ev.extend([None] * (n_f - self._F))
            self._free.extend(range(n_f - 1, self._F - 1, -1))
        self._fa, self._ia, self._off = fa, ia, off
        self._L, self._M, self._F, self._K = n_l, m, n_f, k

    def _grow_links(self, new_l: int) -> None:
        self._realloc(new_l, self._M, self._F, self._K)

    def _grow_flows(self, new_f: int) -> None:
        self._realloc(self._L, self._M, new_f, self._K)

    def _grow_link_lists(self) -> None:
        self._realloc(self._L, 2 * self._M, self._F, self._K)

    def _grow_width(self, k: int) -> None:
        self._realloc(self._L, self._M, self._F, k)

    # ---------------------------------------------------------------- public
    def path(self, links: Sequence[Link]) -> Path:
        """Resolve a route once (its link rows), to pass to ``transfer`` many times."""
        key = tuple(links)
        return Path(key, self._ids_of(key))

    def _ids_of(self, key: tuple[Link, ...]) -> np.ndarray:
        ids = self._paths.get(key)
        if ids is None:
            # a flow crossing the same link twice is counted once (it shares that link with itself)
            ids = np.array(list(dict.fromkeys(self.register(lk) for lk in key)), dtype=np.int64)
            self._paths[key] = ids
            if ids.shape[0] > self._K:
                self._grow_width(ids.shape[0])
        return ids

    def transfer(self, size_bytes: float, links: Sequence[Link] | Path, tag: str = "", notify: bool = True,
                 on_done: Callable[[], None] | None = None) -> simpy.Event | None:
        """Start a flow now; returns an event that succeeds when its last byte arrives.

        No event (None) when ``notify`` is False or ``on_done`` is given; ``on_done`` is then called
        when the last byte arrives (directly, without a SimPy event; a zero-size flow through a
        zero-delay timeout so the caller never re-enters).
        """
        ev = self.env.event() if notify and on_done is None else None
        if type(links) is Path:
            ids = links.ids
            links = links.links
        else:
            ids = None
        if size_bytes <= _EPS_BYTES or not links:
            if ev is not None:
                ev.succeed(None)
            elif on_done is not None:
                call_later(self.env, 0.0, lambda _e: on_done())
            return ev
        if ids is None:
            ids = self._ids_of(tuple(links))
        if not self._free:
            self._grow_flows(2 * self._F)
        f = self._free.pop()
        top = k_start(self._fa, self._ia, self._off, f, ids, float(size_bytes), self.env._now)
        while top == -1.0:  # a link's flow list is full
            self._grow_link_lists()
            top = k_start(self._fa, self._ia, self._off, f, ids, float(size_bytes), self.env._now)
        self._ev[f] = ev.succeed if ev is not None else on_done
        self.active += 1
        self.flows_started += 1
        if top < self._wake_t:
            self._arm(top)
        return ev

    def set_capacity(self, link: Link, capacity_bps: float) -> None:
        """Change one link's capacity now and re-share."""
        self.set_capacities([link], capacity_bps)

    def set_capacities(self, links: list[Link], capacity_bps: float, floor_bps: float = 1.0) -> None:
        """Change several links' capacity at once and re-share their flows in one pass.

        Capacities below ``floor_bps`` are raised to it (a link needs a positive capacity; a downed
        link is given a tiny floor, so its flows stall).
        """
        capacity_bps = max(float(capacity_bps), floor_bps)
        key = tuple(links)
        ids = self._groups.get(key)
        if ids is None:
            ids = self._groups[key] = np.array([self.register(lk) for lk in links], dtype=np.int64)
        k_set_caps(self._fa, self._ia, self._off, ids, capacity_bps, self.env.now)
        for lk in links:
            lk.capacity_bps = capacity_bps
        if self._misc[HEAP_N] > 0:
            self._arm(float(self._ht[0]))

    def sync_links(self, now: float) -> None:
        """Account every link up to ``now`` and copy its counters onto the Link objects."""
        k_advance_all(self._lf, now)
        lf = self._lf
        for i, lk in enumerate(self.links):
            lk.bytes_total = float(lf[i, BYTES])
            lk._rate = float(lf[i, LRATE])
            lk._t = float(lf[i, LT])
            lk.peak_util = float(lf[i, PEAK])
            lk.capacity_bps = float(lf[i, CAP])

    def bytes_of(self, links: list[Link], now: float) -> np.ndarray:
        """Bytes each of ``links`` has carried up to ``now``."""
        key = tuple(links)
        idx = self._groups.get(key)
        if idx is None:
            idx = self._groups[key] = np.array([self.register(lk) for lk in links], dtype=np.int64)
        return k_bytes_of(self._lf, idx, now)

    # ---------------------------------------------------------------- completions
    @property
    def next_due_s(self) -> float:
        """When the network next needs ``run_due`` (inf when no flow is active)."""
        return self._wake_t

    def _arm(self, t: float) -> None:
        """Make sure one wake-up is scheduled at ``t``, the earliest predicted completion."""
        if t >= self._wake_t:  # also when t is inf: nothing to complete
            return
        self._wake_t = t
        if not self.driven:
            self._wake_entry = call_later(self.env, max(t - self.env._now, 0.0), self._on_wake)

    def _on_wake(self, entry: object) -> None:
        if entry is not self._wake_entry:  # superseded by an earlier wake-up
            return
        self._wake_entry = None
        self.run_due()

    def run_due(self) -> None:
        """Complete the flows due now (``env.now`` is the armed wake-up time, ``next_due_s``)."""
        self._wake_t = _INF
        self.wakeups += 1
        # nothing due (the earliest flow slowed down since it was armed) gives n = 0
        n, top = k_pop_due(self._fa, self._ia, self._off, self.env._now)
        if n:
            cbs = self._ev
            free = self._free
            self.active -= n
            for f in (self._out[:n].tolist() if n > 1 else (int(self._out[0]),)):
                cb = cbs[f]
                free.append(f)
                if cb is not None:
                    cbs[f] = None
                    cb()  # an event's succeed or an on_done: may start flows (re-entrant transfer is safe)
        self._arm(top)


def warmup() -> float:
    """Compile (or load from Numba's on-disk cache) every kernel by running a tiny network; returns seconds."""
    import time

    t0 = time.perf_counter()
    env = simpy.Environment()
    net = JitFlowNetwork(env)
    a, b = Link("a", 100.0), Link("b", 50.0)
    net.transfer(100.0, [a, b])
    net.transfer(300.0, [a])
    net.transfer(10.0, [b], notify=False)
    net.set_capacities([a], 80.0)
    env.run()
    net.bytes_of([a, b], env.now)
    net.sync_links(env.now)
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"network kernels ready in {warmup():.1f} s")
