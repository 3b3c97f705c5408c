"""The compiled loops (numba) behind exact KS D and Wasserstein-1: a reference ECDF built from its
sorted values (`accumulate`), window values placed in their slice's ECDF (`place_values`), and each
cell's values merged with it into KS D, Wasserstein-1 and PSI bin counts (`merge_cells`).

The arithmetic is `drift`'s module docstring. Written as loops because vectorised numpy needs
some thirty full-length temporaries and gathers per cell family (≈ 130 ms per million values),
where a compiled pass reads each value once or twice; numba `nogil`, so the features' threads
run on every core, and `cache`, so a process compiles nothing that an earlier one has compiled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
from numba import njit

F = TypeVar("F", bound=Callable[..., object])


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
def merge_cells(
    cell: np.ndarray,
    n_cells: int,
    minimum: int,
    width: int,
    x: np.ndarray,
    le: np.ndarray,
    lt: np.ndarray,
    g: np.ndarray,
    bins: np.ndarray,
    ref_value: np.ndarray,
    ref_cum: np.ndarray,
    ref_g: np.ndarray,
    ref_start: np.ndarray,
    ref_end: np.ndarray,
    m_of: np.ndarray,
    rmax_of: np.ndarray,
    gmax_of: np.ndarray,
    n_bins: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The cells with at least `minimum` values: their codes, sizes, KS D, Wasserstein-1 and bin counts.

    Value j (ascending x; le, lt, g, bins from `place_values`) is in cell cell[j] < n_cells, of
    slice s = cell // width, whose reference is ECDF rows [ref_start[s], ref_end[s]) of
    ref_value / ref_cum / ref_g: m_of[s] values, the largest rmax_of[s] with G = gmax_of[s].
    A counting sort first copies each cell's values next to each other, still ascending (a
    stable scatter), so the merge then reads memory in order.
    """
    size = np.zeros(n_cells, dtype=np.int64)
    for j in range(len(cell)):
        size[cell[j]] += 1
    lower = max(minimum, 1)
    index = np.full(n_cells, -1, dtype=np.int64)
    kept = 0
    for c in range(n_cells):
        if size[c] >= lower:
            index[c] = kept
            kept += 1
    codes = np.empty(kept, dtype=np.int64)
    start = np.zeros(kept + 1, dtype=np.int64)
    for c in range(n_cells):
        if index[c] >= 0:
            codes[index[c]] = c
            start[index[c] + 1] = start[index[c]] + size[c]
    total = start[kept]
    xs, gs = np.empty(total), np.empty(total)
    les, lts = np.empty(total, dtype=np.int64), np.empty(total, dtype=np.int64)
    fill = start[:kept].copy()
    counts = np.zeros((kept, n_bins), dtype=np.int64)
    for j in range(len(cell)):
        k = index[cell[j]]
        if k >= 0:
            p = fill[k]
            fill[k] = p + 1
            xs[p], les[p], lts[p], gs[p] = x[j], le[j], lt[j], g[j]
            counts[k, bins[j]] += 1
    ks = np.zeros(kept)
    w = np.zeros(kept)
    for k in range(kept):
        s = codes[k] // width
        ks[k], w[k] = _merge(
            xs,
            les,
            lts,
            gs,
            start[k],
            start[k + 1] - start[k],
            m_of[s],
            rmax_of[s],
            gmax_of[s],
            ref_value,
            ref_cum,
            ref_g,
            ref_start[s],
            ref_end[s],
        )
    return codes, start[1:] - start[:-1], ks, w, counts


@_compiled
def _merge(
    x: np.ndarray,
    le: np.ndarray,
    lt: np.ndarray,
    g: np.ndarray,
    head: int,
    n: int,
    m: int,
    rmax: float,
    gmax: float,
    ref_value: np.ndarray,
    ref_cum: np.ndarray,
    ref_g: np.ndarray,
    ref_start: int,
    ref_end: int,
) -> tuple[float, float]:
    """KS D and Wasserstein-1 of one cell: values [head, head + n), ascending, against its slice's
    reference (m values, the largest rmax with G = gmax; ECDF rows [ref_start, ref_end))."""
    d = 0.0
    area = 0.0
    for a in range(head, head + n):
        i = a - head + 1
        c = i / n
        gap = abs(le[a] / m - c)  # |F_ref − F_win| just after x_i
        if i == 1 or x[a - 1] != x[a]:  # the first copy of x_i: F_win steps from (i − 1)/n
            d = max(d, abs(lt[a] / m - (i - 1) / n))
        if i == n:
            d = max(d, gap)
            continue
        b = a + 1
        if x[b] == x[a]:  # a tie: F_win steps at its last copy
            continue
        d = max(d, gap)
        dx = x[b] - x[a]
        if le[a] == lt[b]:  # F_ref constant on [x_i, x_i+1)
            area += gap * dx
        elif le[a] * n >= i * m:  # F_ref ≥ c throughout
            area += (g[b] - g[a]) / m - c * dx
        elif lt[b] * n <= i * m:  # F_ref ≤ c throughout
            area -= (g[b] - g[a]) / m - c * dx
        else:  # F_ref crosses c at x*, the first reference value with cum ≥ ⌈c·m⌉
            at = _first_at_least(ref_cum, ref_start, ref_end, (i * m + n - 1) // n)
            star, g_star = ref_value[at], ref_g[at]
            area += c * (star - x[a]) - (g_star - g[a]) / m + (g[b] - g_star) / m - c * (x[b] - star)
    last = head + n - 1
    tail = (rmax - x[last]) - (gmax - g[last]) / m if x[last] < rmax else 0.0
    return d, g[head] / m + tail + area


@_compiled
def place_values(
    x: np.ndarray,
    slice_of: np.ndarray,
    ref_value: np.ndarray,
    ref_cum: np.ndarray,
    ref_g: np.ndarray,
    ref_start: np.ndarray,
    ref_end: np.ndarray,
    edges: np.ndarray,
    edge_start: np.ndarray,
    edge_end: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each value's place in its slice's reference: le = #{r ≤ x}, lt = #{r < x}, G(x), PSI bin.

    `x` ascending; value j belongs to slice s = slice_of[j], whose ECDF is rows
    [ref_start[s], ref_end[s]) and whose inner PSI edges are edges[edge_start[s] : edge_end[s]].
    One pointer per slice walks its ECDF and its edges forward as x rises (a merge: each reference
    row is passed once), so G(x) = G(v) + cum(v)·(x − v) for the last reference value v ≤ x.
    """
    size = len(x)
    le = np.zeros(size, dtype=np.int64)
    lt = np.zeros(size, dtype=np.int64)
    g = np.zeros(size)
    bins = np.zeros(size, dtype=np.int64)
    at = ref_start.copy()  # per slice: the first ECDF row with value > the last x seen
    edge_at = edge_start.copy()
    for j in range(size):
        s, value = slice_of[j], x[j]
        p = at[s]
        while p < ref_end[s] and ref_value[p] <= value:
            p += 1
        at[s] = p
        q = edge_at[s]
        while q < edge_end[s] and edges[q] <= value:
            q += 1
        edge_at[s] = q
        bins[j] = q - edge_start[s]
        right = p - 1  # the last reference value <= x
        if right < ref_start[s]:
            continue
        le[j] = ref_cum[right]
        lt[j] = le[j]
        if ref_value[right] == value:
            lt[j] = ref_cum[right - 1] if right > ref_start[s] else 0
        g[j] = ref_g[right] + ref_cum[right] * (value - ref_value[right])
    return le, lt, g, bins


@_compiled
def accumulate(
    code: np.ndarray, value: np.ndarray, n_slices: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reference ECDFs: values grouped by slice code (ascending, < n_slices), ascending within.

    Returns each slice's distinct values with cum = #{r ≤ value} and G(value) = Σ_{i<j}
    cum_i·(v_{i+1} − v_i) — a running sum of non-negative terms, compensated (Neumaier), so
    differences of G between nearby values stay accurate — and each slice's rows [start, end)
    (empty for a slice without values).
    """
    out = np.empty(len(value))
    cum = np.empty(len(value), dtype=np.int64)
    g = np.empty(len(value))
    start = np.zeros(n_slices, dtype=np.int64)
    end = np.zeros(n_slices, dtype=np.int64)
    k = -1
    total = 0.0
    compensation = 0.0
    for j in range(len(value)):
        c, v = code[j], value[j]
        if k < 0 or c != code[j - 1]:
            k += 1
            out[k], cum[k], g[k] = v, 1, 0.0
            total = compensation = 0.0
            start[c] = k
        elif v != out[k]:
            step = cum[k] * (v - out[k])
            t = total + step
            compensation += (total - t) + step if abs(total) >= abs(step) else (step - t) + total
            total = t
            k += 1
            out[k], cum[k], g[k] = v, cum[k - 1] + 1, total + compensation
        else:
            cum[k] += 1
        end[c] = k + 1
    return out[: k + 1], cum[: k + 1], g[: k + 1], start, end
