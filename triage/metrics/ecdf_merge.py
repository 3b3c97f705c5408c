"""The compiled loops (numba) behind exact KS D and Wasserstein-1: a reference ECDF built from its
sorted values (`accumulate`; a segment's slices take theirs from one sort of all the values,
`by_slice`), and one pass over a batch's sorted values that places each in its slice's ECDF and
steps each of its cells — KS D, Wasserstein-1 and PSI bin counts (`family_cells`); behind KS p,
the exact one-sided Smirnov sum of each cell (`smirnov_log_sums`); and a sort at a fraction of
argsort's cost (`ascending`, by `radix_sort` where that beats numpy's): of the reference's and a
batch's values for these passes, and of the labelled scores for calibration and performance
(`source.ScoreCounts`).

The arithmetic is `drift`'s module docstring. Written as loops because vectorised numpy needs
some thirty full-length temporaries and gathers per cell family (≈ 130 ms per million values),
where a compiled pass reads each value twice (a count, then the pass), with each cell's running
state small enough to stay in cache; numba `nogil`, so the features' threads run on every core,
and `cache`, so a process compiles nothing that an earlier one has compiled.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from numba import njit

F = TypeVar("F", bound=Callable[..., object])

RADIX_BITS = 11  # bits per `radix_sort` pass: 2048 buckets, whose write positions stay in cache
RADIX_FROM = 1 << 15  # `ascending` sorts fewer values with numpy
SMIRNOV_CUT = 45.0  # `smirnov_log_sums` stops a side of the sum at terms below e^−45 of its peak


def _compiled(function: F) -> F:
    """`function` compiled by numba, releasing the GIL; its machine code cached on disk when there
    is a place to write it (the package's `__pycache__`, else the user's cache directory), else
    compiled once per process (a read-only install without a writable home)."""
    try:
        return njit(cache=True, nogil=True)(function)  # type: ignore[return-value]
    except RuntimeError:  # numba: "cannot cache function …: no locator available"
        return njit(nogil=True)(function)  # type: ignore[return-value]


@_compiled
def _first_at_least(cum: np.ndarray, start: int, end: int, target: int) -> int:
    """The first index in [start, end) with cum >= target (cum ascending); `end` when none."""
    low, high = start, end
    while low < high:
        mid = (low + high) // 2
        if cum[mid] < target:
            low = mid + 1
        else:
            high = mid
    return low


@_compiled
def family_cells(
    x: np.ndarray,
    codes: np.ndarray,
    column: int,
    slot: np.ndarray,
    n_windows: int,
    n_versions: int,
    minimum: int,
    ref_value: np.ndarray,
    ref_cum: np.ndarray,
    ref_g: np.ndarray,
    ref_g_low: np.ndarray,
    ref_start: np.ndarray,
    ref_end: np.ndarray,
    m_of: np.ndarray,
    rmax_of: np.ndarray,
    edges: np.ndarray,
    edge_start: np.ndarray,
    edge_end: np.ndarray,
    n_bins: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The cells of one slice family with at least `minimum` values: each one's slice, window and
    version (0-based; -1: all versions), size, KS D, Wasserstein-1 and PSI bin counts.

    Value j (`x` ascending) is in window codes[j, 0] and version codes[j, 1] (1-based; 0: none)
    and in slice slot[codes[j, column]] of the family (slot[1] when column < 0: all traffic), or
    in none (-1). Slice s's reference ECDF is rows [ref_start[s], ref_end[s]) of ref_value /
    ref_cum / ref_g + ref_g_low (G as an unevaluated sum: `accumulate`) — m_of[s] values, the
    largest rmax_of[s] — and its inner PSI edges are edges[edge_start[s] : edge_end[s]].

    Cell s·K + w holds the slice's values in window w; with more than one version (V), cell
    s·K + W + w·V + v − 1 those of version v (K = W·(1 + V), else K = W). A first pass counts the
    cells. The second walks the values once, ascending: one pointer per slice walks its ECDF and
    edges forward (a merge) to place the value, le = #{r ≤ x}, lt = #{r < x} and G(x); then each
    of its cells with at least `minimum` values takes it: a cell keeps its last value (with le
    and G), and a new distinct value closes the interval since it (`_close`). Smaller cells are
    only counted: no state is kept for them (a segment with many values in many windows has
    mostly small cells). G stays a (high, low) pair and the Wasserstein area a compensated sum:
    with values at 1e7 or epoch seconds, a rounded G would lose ≈ 1e-9 of W at every step.
    """
    n_slices = len(ref_start)
    width = n_windows * (1 + n_versions) if n_versions > 1 else n_windows
    n_cells = n_slices * width
    size = np.zeros(n_cells, dtype=np.int64)
    for j in range(len(x)):
        s = slot[codes[j, column]] if column >= 0 else slot[1]
        if s >= 0:
            for cell in _cells(codes, j, s * width, n_windows, n_versions):
                if cell >= 0:
                    size[cell] += 1
    # The cells with at least `minimum` values, numbered in order: only they keep a state.
    index = np.full(n_cells, -1, dtype=np.int64)
    kept = 0
    for c in range(n_cells):
        if size[c] >= max(minimum, 1):
            index[c] = kept
            kept += 1
    cells = np.flatnonzero(index >= 0)
    seen = np.zeros(kept, dtype=np.int64)
    last = np.zeros(kept)  # per cell: the last value taken, its le and G, the first value's G
    last_le = np.zeros(kept, dtype=np.int64)
    last_g = np.zeros(kept)
    last_g_low = np.zeros(kept)
    first_g = np.zeros(kept)
    first = np.zeros(kept)  # per cell: its first (smallest) value
    ks = np.zeros(kept)
    area = np.zeros(kept)
    area_low = np.zeros(kept)  # Neumaier's compensation of `area`
    counts = np.zeros((kept, n_bins), dtype=np.int64)
    at = ref_start.copy()  # per slice: the first ECDF row with value > the last x seen
    edge_at = edge_start.copy()
    for j in range(len(x)):
        s = slot[codes[j, column]] if column >= 0 else slot[1]
        if s < 0:
            continue
        value = x[j]
        p = at[s]
        end = ref_end[s]
        # Forward to the first reference value > x, eight at a time: a fixed inner loop without
        # branches, where one step at a time mispredicts the loop's exit for most values.
        while p + 8 <= end:
            k = 0
            for t in range(8):
                k += ref_value[p + t] <= value  # ascending: the values <= x come first
            p += k
            if k < 8:
                break
        else:
            while p < end and ref_value[p] <= value:
                p += 1
        at[s] = p
        q = edge_at[s]
        while q < edge_end[s] and edges[q] <= value:
            q += 1
        edge_at[s] = q
        le, lt, g, g_low = 0, 0, 0.0, 0.0
        right = p - 1  # the last reference value v <= x: G(x) = G(v) + cum(v)·(x − v)
        if right >= ref_start[s]:
            le = lt = ref_cum[right]
            if ref_value[right] == value:
                lt = ref_cum[right - 1] if right > ref_start[s] else 0
            g, g_low = ref_g[right], ref_g_low[right] + ref_cum[right] * (value - ref_value[right])
        for cell in _cells(codes, j, s * width, n_windows, n_versions):
            c = index[cell] if cell >= 0 else -1
            if c < 0:
                continue
            counts[c, q - edge_start[s]] += 1
            i = seen[c]  # the values before this one
            if i == 0:  # F_win steps from 0
                first_g[c] = g + g_low
                first[c] = value
                ks[c] = max(ks[c], lt / m_of[s])
            elif value != last[c]:  # F_win steps from i/n: close [last, value), then step
                ks[c], step = _close(
                    ks[c],
                    i,
                    size[cell],
                    m_of[s],
                    last[c],
                    last_le[c],
                    last_g[c],
                    last_g_low[c],
                    value,
                    lt,
                    g,
                    g_low,
                    ref_value,
                    ref_cum,
                    ref_g,
                    ref_g_low,
                    ref_start[s],
                    ref_end[s],
                )
                area[c], area_low[c] = _add(area[c], area_low[c], step)
            seen[c] = i + 1
            last[c], last_le[c], last_g[c], last_g_low[c] = value, le, g, g_low
    w = np.zeros(kept)
    slice_of, sub = cells // width, cells % width
    window_of = np.where(sub < n_windows, sub, (sub - n_windows) // max(n_versions, 1))
    version_of = np.where(sub < n_windows, -1, (sub - n_windows) % max(n_versions, 1))
    for c in range(kept):
        s = slice_of[c]
        m = m_of[s]
        ks[c] = max(ks[c], abs(last_le[c] / m - 1.0))  # |F_ref − F_win| just after the last value
        tail = 0.0
        if last[c] < rmax_of[s]:  # ∫ (1 − F_ref) from the last value to the reference's largest
            top = ref_end[s] - 1
            rise = (ref_g[top] - last_g[c]) + (ref_g_low[top] - last_g_low[c])
            tail = (rmax_of[s] - last[c]) - rise / m
        w[c] = first_g[c] / m + tail + area[c] + area_low[c]
    _redo_far_cells(
        w,
        x,
        (codes, column, slot, n_windows, n_versions),
        index,
        cells,
        size,
        first,
        last,
        slice_of,
        ref_value,
        ref_cum,
        ref_start,
        ref_end,
        m_of,
    )
    return slice_of, window_of, version_of, size[cells], ks, w, counts


# `_redo_far_cells`: a cell is summed again where G's rounding — up to a few ulps of the widest gap
# its areas span — could reach FAR_RELATIVE of its W (and FAR_ABSOLUTE): where the two ECDFs are
# equal across a far gap, W is small and the rounding as large as the gap. Not tighter: scipy's
# own sum is 1e-14–1e-13 of W off on heavy tails, and a money-like feature's widest gap (4e6 for a
# lognormal income) would send nearly every cell through the O(n + m) sum (audit 46: 3× slower).
FAR_ABSOLUTE = 1e-11
FAR_RELATIVE = 1e-9


@_compiled
def _redo_far_cells(
    w: np.ndarray,
    x: np.ndarray,
    family: tuple[np.ndarray, int, np.ndarray, int, int],
    index: np.ndarray,
    cells: np.ndarray,
    size: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    slice_of: np.ndarray,
    ref_value: np.ndarray,
    ref_cum: np.ndarray,
    ref_start: np.ndarray,
    ref_end: np.ndarray,
    m_of: np.ndarray,
) -> None:
    """Wasserstein-1 once more, term by term (`_merged_area`), for the kept cells whose areas span
    a gap so wide that G's rounding could show: a far value (a sentinel, −1e12 under values of 1)
    makes G(b) − G(a) and c·(b − a) both as large as the gap, and where the two ECDFs are equal
    across it (both samples log it in the same share) the area is their difference, 0, rounded to
    ulps of 1e12 (audit 45: W 0 for 0.5 beside a shared −1e17; 5.7e-7 off with a −1e12 sentinel
    under 250 normal values). The widest gap is the slice reference's widest step, or how far the
    cell reaches beyond the reference's range, or W overflowed. Such cells are rare, so this runs
    after `family_cells`' pass, not in it: a check for them in its per-value step made the whole
    pass 2.5× slower (how numba compiled it changed)."""
    widest = np.zeros(len(ref_start))
    for s in range(len(ref_start)):
        for k in range(ref_start[s] + 1, ref_end[s]):
            widest[s] = max(widest[s], ref_value[k] - ref_value[k - 1])
    redo = np.zeros(len(cells), dtype=np.bool_)
    for c in range(len(cells)):
        s = slice_of[c]
        if ref_start[s] == ref_end[s]:
            continue
        low, high = ref_value[ref_start[s]], ref_value[ref_end[s] - 1]
        gap = max(widest[s], low - first[c], last[c] - high)
        # An infinite W too: G overflowed (m × a span past 1.8e308) where W itself need not.
        redo[c] = not np.isfinite(w[c]) or 4 * np.spacing(gap) > max(FAR_ABSOLUTE, FAR_RELATIVE * abs(w[c]))
    if not redo.any():
        return
    codes, column, slot, n_windows, n_versions = family  # as `family_cells` takes them
    width = n_windows * (1 + n_versions) if n_versions > 1 else n_windows
    offset = np.zeros(len(cells) + 1, dtype=np.int64)
    for c in range(len(cells)):
        offset[c + 1] = offset[c] + (size[cells[c]] if redo[c] else 0)
    values = np.empty(offset[-1])
    filled = offset[:-1].copy()
    for j in range(len(x)):
        s = slot[codes[j, column]] if column >= 0 else slot[1]
        if s < 0:
            continue
        for cell in _cells(codes, j, s * width, n_windows, n_versions):
            c = index[cell] if cell >= 0 else -1
            if c >= 0 and redo[c]:
                values[filled[c]] = x[j]
                filled[c] += 1
    for c in range(len(cells)):
        if redo[c]:
            s = slice_of[c]
            y = values[offset[c] : offset[c + 1]]
            w[c] = _merged_area(y, ref_value, ref_cum, ref_start[s], ref_end[s], m_of[s])


@_compiled
def _merged_area(
    y: np.ndarray, ref_value: np.ndarray, ref_cum: np.ndarray, start: int, end: int, m: int
) -> float:
    """∫ |F_ref − F_y| dx over the merged steps of y (ascending) and the reference ECDF rows
    [start, end): per step |cum·n − i·m| / (n·m) × its length, as scipy sums it — a step where the
    two are equal adds exactly 0."""
    n = len(y)
    total = compensation = 0.0
    i, k, below = 0, start, 0
    at = min(y[0], ref_value[start])
    while True:
        while i < n and y[i] <= at:
            i += 1
        while k < end and ref_value[k] <= at:
            below = ref_cum[k]
            k += 1
        following = min(y[i] if i < n else np.inf, ref_value[k] if k < end else np.inf)
        if following == np.inf:
            return total + compensation
        apart = abs(below * n - i * m)
        if apart:  # equal ECDFs add nothing, even across a step too long for a double (0 · inf)
            total, compensation = _add(total, compensation, apart / (n * m) * (following - at))
        at = following


@_compiled
def _cells(codes: np.ndarray, j: int, first: int, n_windows: int, n_versions: int) -> tuple[int, int]:
    """Value j's cells in its slice, whose cells start at `first`: its window's, and its window and
    version's (-1 with at most one version, or a value without a known version)."""
    window = first + codes[j, 0]
    if n_versions > 1 and codes[j, 1] > 0:
        return window, first + n_windows + codes[j, 0] * n_versions + codes[j, 1] - 1
    return window, -1


@_compiled
def _close(
    d: float,
    i: int,
    n: int,
    m: int,
    a: float,
    le_a: int,
    g_a: float,
    g_a_low: float,
    b: float,
    lt_b: int,
    g_b: float,
    g_b_low: float,
    ref_value: np.ndarray,
    ref_cum: np.ndarray,
    ref_g: np.ndarray,
    ref_g_low: np.ndarray,
    ref_start: int,
    ref_end: int,
) -> tuple[float, float]:
    """A cell of n values (reference of m) after its i-th, a, before the next distinct value b:
    KS D updated with both steps of F_win around them, and ∫_a^b |F_ref − F_win| dx. G values
    come as (high, low) pairs, subtracted part by part: only the change between them is rounded."""
    c = i / n
    gap = abs(le_a / m - c)  # |F_ref − F_win| just after a
    d = max(d, gap, abs(lt_b / m - c))  # and just before b
    dx = b - a
    if le_a == lt_b:  # F_ref constant on [a, b)
        return d, gap * dx
    rise = (g_b - g_a) + (g_b_low - g_a_low)  # m·∫_a^b F_ref
    if le_a * n >= i * m:  # F_ref ≥ c throughout
        return d, rise / m - c * dx
    if lt_b * n <= i * m:  # F_ref ≤ c throughout
        return d, -(rise / m - c * dx)
    # F_ref crosses c at x*, the first reference value with cum ≥ ⌈c·m⌉
    at = _first_at_least(ref_cum, ref_start, ref_end, (i * m + n - 1) // n)
    star = ref_value[at]
    below = (ref_g[at] - g_a) + (ref_g_low[at] - g_a_low)
    above = (g_b - ref_g[at]) + (g_b_low - ref_g_low[at])
    return d, c * (star - a) - below / m + above / m - c * (b - star)


@_compiled
def accumulate(
    code: np.ndarray, value: np.ndarray, n_slices: int, cum: np.ndarray, g: np.ndarray, g_low: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reference ECDFs: values grouped by slice code (ascending, < n_slices), ascending within.

    Returns each slice's distinct values with cum = #{r ≤ value} and G(value) = Σ_{i<j}
    cum_i·(v_{i+1} − v_i) — a running sum of non-negative terms, compensated (Neumaier) and kept
    unevaluated as g + g_low (the running sum and its compensation), so that a difference of G
    between two values is rounded only as much as the difference itself — and each slice's rows
    [start, end) (empty for a slice without values). The distinct values are written over
    `value`'s first rows (row k is written after row j ≥ k is read), the counts into `cum` and G
    into `g` and `g_low` (each as long as `value`; int32 counts will do below 2³¹ values), so the
    ECDF takes 20 bytes of new memory per value, not 32: in the bench's cold drift grid,
    ≈ 125 000 fewer page faults (of 410 000), each a few microseconds of kernel time. `cum`, `g`
    and `g_low` come from the caller because
    numpy asks the kernel for huge pages where numba's allocations fault every 4 KiB: ≈ 50 000
    fewer faults again.
    """
    out = value
    start = np.zeros(n_slices, dtype=np.int64)
    end = np.zeros(n_slices, dtype=np.int64)
    k = -1
    total = 0.0
    compensation = 0.0
    for j in range(len(value)):
        c, v = code[j], value[j]
        if k < 0 or c != code[j - 1]:
            k += 1
            out[k], cum[k], g[k], g_low[k] = v, 1, 0.0, 0.0
            total = compensation = 0.0
            start[c] = k
        elif v != out[k]:
            total, compensation = _add(total, compensation, cum[k] * (v - out[k]))
            k += 1
            out[k], cum[k], g[k], g_low[k] = v, cum[k - 1] + 1, total, compensation
        else:
            cum[k] += 1
        end[c] = k + 1
    return out[: k + 1], cum[: k + 1], g[: k + 1], g_low[: k + 1], start, end


@_compiled
def by_slice(
    ordered: np.ndarray, code: np.ndarray, n_slices: int, value: np.ndarray, slice_of: np.ndarray
) -> int:
    """The values `ordered` (ascending) grouped by their slice `code` (values with a code outside
    [0, n_slices) left out), ascending within each slice: a stable counting pass, written to
    `value` and `slice_of`. Returns how many were written."""
    start = np.zeros(n_slices + 1, dtype=np.int64)
    for i in range(len(ordered)):
        if 0 <= code[i] < n_slices:
            start[code[i] + 1] += 1
    for k in range(n_slices):
        start[k + 1] += start[k]
    total = start[n_slices]
    for i in range(len(ordered)):
        c = code[i]
        if 0 <= c < n_slices:
            value[start[c]] = ordered[i]
            slice_of[start[c]] = c
            start[c] += 1
    return total


@_compiled
def moments(
    value: np.ndarray, cum: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per slice of an ECDF (rows [start[k], end[k]): distinct values, cum = #{r ≤ value}), the
    mean and the standard deviation (ddof 0) of its values, each distinct value weighed by its
    count: two passes, each sum compensated (Neumaier). NaN for a slice without values.

    numpy needs five temporaries as long as the slice for the same (≈ 10 ms per million values,
    a third of building the ECDF); this reads the values twice and allocates nothing that long.
    """
    mean = np.full(len(start), np.nan)
    std = np.full(len(start), np.nan)
    for k in range(len(start)):
        if start[k] == end[k]:
            continue
        n = cum[end[k] - 1]
        total = compensation = 0.0
        below = 0
        for j in range(start[k], end[k]):
            total, compensation = _add(total, compensation, value[j] * (cum[j] - below))
            below = cum[j]
        mean[k] = (total + compensation) / n
        total = compensation = 0.0
        below = 0
        for j in range(start[k], end[k]):
            gap = value[j] - mean[k]
            total, compensation = _add(total, compensation, gap * gap * (cum[j] - below))
            below = cum[j]
        std[k] = math.sqrt((total + compensation) / n)
    return mean, std


@_compiled
def _add(total: float, compensation: float, term: float) -> tuple[float, float]:
    """Neumaier's step: `total + term`, and the compensation with the low bits it lost added."""
    t = total + term
    if abs(total) >= abs(term):
        return t, compensation + ((total - t) + term)
    return t, compensation + ((term - t) + total)


@_compiled
def smirnov_log_sums(n: np.ndarray, d: np.ndarray, log_factorial: np.ndarray) -> np.ndarray:
    """Per cell, the log of d·Σ_{v=0}^{⌊n(1−d)⌋} C(n, v)·(d + v/n)^(v−1)·(1 − d − v/n)^(n−v), the
    exact P(D⁺ₙ ≥ d) (`log_factorial[k]` = log k!, k ≤ max n).

    The terms rise to one peak and fall (their logs are concave in v), so the peak is found by
    bisection on the sign of the next step, and the sum runs outward from it on both sides until
    a term falls below e^−SMIRNOV_CUT of the peak: every term left out is smaller still, and
    together they weigh less than n·e^−45 ≈ 1e-15 relative at a million values. Each term is
    summed in logs relative to the peak (≈ 20 ns a term): in the drift grid's cells about a third
    of the n terms, where the whole sum took all of them.
    """
    out = np.empty(len(n))
    for k in range(len(n)):
        size, gap = n[k], d[k]
        last = math.floor(size * (1.0 - gap))
        low, high = 0, last
        while low < high:  # the first v whose next term is no larger
            mid = (low + high) // 2
            rise = _smirnov_log_term(size, gap, mid + 1, log_factorial)
            if rise > _smirnov_log_term(size, gap, mid, log_factorial):
                low = mid + 1
            else:
                high = mid
        top = _smirnov_log_term(size, gap, low, log_factorial)
        total = 1.0
        for step in (1, -1):
            v = low + step
            while 0 <= v <= last:
                relative = _smirnov_log_term(size, gap, v, log_factorial) - top
                if relative < -SMIRNOV_CUT:
                    break
                total += math.exp(relative)
                v += step
        out[k] = top + math.log(total) + math.log(gap)
    return out


@_compiled
def _smirnov_log_term(n: int, d: float, v: int, log_factorial: np.ndarray) -> float:
    """log of C(n, v)·(d + v/n)^(v−1)·(1 − d − v/n)^(n−v) (−inf when 1 − d − v/n is 0)."""
    e = d + v / n
    return (
        log_factorial[n]
        - log_factorial[v]
        - log_factorial[n - v]
        + (v - 1) * math.log(e)
        + (n - v) * math.log1p(-min(e, 1.0))
    )


def ascending_present(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`ascending` of the values of `x` that are not NaN (missing): their positions in `x` and
    their values, ascending."""
    present = np.count_nonzero(~np.isnan(x))
    # NaN sorts last as +inf: the values before it are the present ones.
    order, ordered = ascending(x if present == len(x) else np.where(np.isnan(x), np.inf, x))
    return order[:present], ordered[:present]


def ascending(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The permutation that sorts `x` (float64, no NaN) ascending, and `x` sorted; equal values in
    any order.

    Each value becomes one uint64: its bits ordered as unsigned integers, the lowest replaced by
    its index (`_pack`), so one sort of plain integers replaces an argsort: numpy's, or from
    RADIX_FROM values on an LSD radix sort of the bits above the index (`radix_sort`) where
    that is the faster one on this machine (`radix_pays`).

    Values that share the kept bits — ties, and values a few ulps apart — come out in index
    order: `_unpack` reorders the runs among them whose values are not ascending, unless they
    hold more than an eighth of the values (values on a grid finer than the kept bits resolve),
    when numpy's argsort does it all. The arrays are numpy's: it asks the kernel for huge pages,
    where numba's allocations take a page fault every 4 KiB.
    """
    bits = max(1, (len(x) - 1).bit_length())
    packed = np.empty(len(x), dtype=np.uint64)
    _pack(x, bits, packed)
    if len(x) >= RADIX_FROM and radix_pays():
        packed = radix_sort(packed, np.empty_like(packed), bits)
    else:
        packed.sort()
    order, ordered = packed.view(np.int64), np.empty(len(x))
    if not _unpack(order, x, bits, ordered):
        order = np.argsort(x)
        np.take(x, order, out=ordered)
    return order, ordered


@functools.cache
def radix_pays() -> bool:
    """Whether `radix_sort` sorts keys faster than numpy's sort on this machine, timed once per
    process on RADIX_FROM·4 random keys (best of three each: 10–30 ms in all).

    Which one wins depends on the CPU: numpy's sort is vectorised on some (Intel with AVX-512:
    7 ms per million keys) and not on others (AMD EPYC: 51 ms), where the radix sort takes
    about 22 ms. Either sorts correctly; only the time differs.
    """
    keys = np.random.default_rng(0).integers(0, np.iinfo(np.uint64).max, RADIX_FROM * 4, dtype=np.uint64)
    bits = (len(keys) - 1).bit_length()
    scratch = np.empty_like(keys)

    def best(sort: Callable[[np.ndarray], object]) -> float:
        spent = []
        for _ in range(3):
            copy = keys.copy()
            start = time.perf_counter()
            sort(copy)
            spent.append(time.perf_counter() - start)
        return min(spent)

    radix_sort(keys[:2].copy(), scratch[:2], bits)  # compiled (or loaded) outside the timing
    return best(lambda copy: radix_sort(copy, scratch, bits)) < best(np.ndarray.sort)


@_compiled
def radix_sort(keys: np.ndarray, scratch: np.ndarray, low: int) -> np.ndarray:
    """`keys` (uint64) ordered by their bits from `low` up, keys equal in those bits in their
    order (stable), through `scratch` (as long): the array that holds the result.

    LSD radix passes of RADIX_BITS bits, one scatter each; the digits' counts all come from one
    read, and a pass whose digit is the same in every key is skipped (the sign and exponent of
    values of one magnitude). Where numpy's sort is not vectorised it is 2.3× faster (a million
    keys on AMD EPYC: 22 vs 51 ms); where it is, numpy's is faster (`radix_pays` chooses).
    """
    n = len(keys)
    radix = 1 << RADIX_BITS
    mask = np.uint64(radix - 1)
    passes = (64 - low + RADIX_BITS - 1) // RADIX_BITS
    counts = np.zeros((passes, radix), dtype=np.int64)
    for j in range(n):
        key = keys[j] >> np.uint64(low)
        for p in range(passes):
            counts[p, (key >> np.uint64(p * RADIX_BITS)) & mask] += 1
    source, target = keys, scratch
    at = np.empty(radix, dtype=np.int64)
    for p in range(passes):
        if counts[p].max() == n:
            continue
        total = 0
        for d in range(radix):
            at[d] = total
            total += counts[p, d]
        shift = np.uint64(low + p * RADIX_BITS)
        for j in range(n):
            key = source[j]
            d = (key >> shift) & mask
            target[at[d]] = key
            at[d] += 1
        source, target = target, source
    return source


@_compiled
def _pack(x: np.ndarray, bits: int, out: np.ndarray) -> None:
    """Per value into `out`, `_key` with the lowest `bits` replaced by the value's index."""
    low = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    raw = x.view(np.uint64)
    for j in range(len(x)):
        out[j] = (_key(raw[j]) & ~low) | np.uint64(j)


@_compiled
def _key(b: np.uint64) -> np.uint64:
    """A float64's bits ordered as unsigned integers: sign flipped for positives, all flipped for
    negatives."""
    sign = np.uint64(1) << np.uint64(63)
    return ~b if b & sign else b | sign


@_compiled
def _unpack(packed: np.ndarray, x: np.ndarray, bits: int, ordered: np.ndarray) -> bool:
    """`_pack`'s keys (sorted, as int64) replaced by their indices in place and their values
    written to `ordered`; then each run of equal kept bits that is not ascending sorted by value.
    False, the runs left as they are, when those runs hold more than an eighth of the values."""
    n = len(packed)
    low = (1 << bits) - 1
    descents = 0
    for j in range(n):
        packed[j] &= low
        ordered[j] = x[packed[j]]
        descents += j > 0 and ordered[j] < ordered[j - 1]
    raw, high = x.view(np.uint64), ~np.uint64(low)
    settled, j = 0, 1
    while descents and j < n:
        if ordered[j] >= ordered[j - 1]:
            j += 1
            continue
        # A descent: values j − 1 and j share the kept bits (else their keys would order them).
        kept = _key(raw[packed[j]]) & high
        start, end = j - 1, j + 1
        while start and _key(raw[packed[start - 1]]) & high == kept:
            start -= 1
        while end < n and _key(raw[packed[end]]) & high == kept:
            end += 1
        settled += end - start
        if settled * 8 > n:
            return False
        by_value = np.argsort(ordered[start:end])
        packed[start:end] = packed[start:end][by_value]
        ordered[start:end] = ordered[start:end][by_value]
        j = end
    return True
