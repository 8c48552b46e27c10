"""Numba kernels of the disc PSF for the CPU engine (:mod:`dfd_lite.engines.cpu`).

Each row of the disc is a box (:func:`~dfd_lite.engines._scalar.disc_half_width`),
summed with prefix sums of the padded image's rows, so a disc of radius r
costs O(r) per pixel; the adjoint spreads each box with a difference array.
Arrays are planar float32 as in :mod:`~dfd_lite.engines.cpu`; the row
half-widths are stored for ``dy >= 0`` only (:class:`~dfd_lite.engines.DiscWeights`).
"""

from __future__ import annotations

import numba
import numpy as np

from . import _scalar

_blur_radius = numba.njit(inline="always")(_scalar.blur_radius)
_disc_chord_integral = numba.njit(inline="always")(_scalar.disc_chord_integral)


@numba.njit(inline="always")
def slice_from_cache(slot, cached, lrow, y):
    """The constant-depth loss kernels' bookkeeping for one slice of one row.

    ``slot == -2``: the slice is left out; ``slot >= 0``: its loss row is
    ``cached[slot, y]`` (computed once for every candidate sharing the
    radius), added to ``lrow``. Returns True when nothing is left to compute.
    """
    if slot == -2:
        return True
    if slot >= 0:
        crow = cached[slot, y]
        for xx in range(lrow.size):
            lrow[xx] += crow[xx]
        return True
    return False


@numba.njit(inline="always")
def add_squared_error(lrow, pred, scale, brow):
    """``lrow += (scale * pred - brow)^2``, element-wise along a row."""
    for xx in range(lrow.size):
        d = pred[xx] * scale - brow[xx]
        lrow[xx] += d * d


@numba.njit(parallel=True, fastmath=True, cache=True)
def disc_weights_kernel(depth, focus, coef, min_radius, half_width, inv_area, row_extent):
    n_f, rows, height, width = half_width.shape
    half = rows - 1
    for job in numba.prange(n_f * height):
        f = job // height
        y = job % height
        extent = 1
        for xx in range(width):
            r = _blur_radius(depth[y, xx], focus[f], coef[f], min_radius)
            # _scalar.disc_half_width row by row, sharing each boundary's
            # chord integral between the two rows it separates; rows dy and
            # -dy are the same, so only dy >= 0 is stored
            lower = -_disc_chord_integral(r, 0.5)
            total = 0.0
            for dy in range(half + 1):
                hw = 0.0
                if dy - 0.5 < r:  # rows past the disc's edge are empty
                    upper = _disc_chord_integral(r, dy + 0.5)
                    hw = min(0.5 * (upper - lower), half + 0.5)
                    lower = upper
                half_width[f, dy, y, xx] = hw
                total += 2.0 * hw if dy == 0 else 4.0 * hw
                if hw > 0.0:
                    extent = max(extent, dy + 1)
            inv_area[f, y, xx] = 1.0 / total
        row_extent[f, y] = extent


@numba.njit(parallel=True, fastmath=True, cache=True)
def disc_forward_kernel(xpad, prefix, half_width, inv_area, row_extent, out):
    # xpad is padded by K // 2 + 1 on every side; prefix[c, R, j] = sum of xpad[c, R, :j]
    n_f, rows, height, width = half_width.shape
    n_c = xpad.shape[0]
    pad = rows  # K // 2 + 1
    for job in numba.prange(n_f * height):
        f = job // height
        y = job % height
        scale = inv_area[f, y]
        acc = out[f, :, y]
        acc[:] = 0.0
        # rows no disc of this image row reaches are skipped: the window is
        # sized for the widest blur of the searched range, most discs are smaller
        for dy in range(row_extent[f, y]):
            hws = half_width[f, dy, y]
            below = y + pad + dy      # rows dy and -dy share the box
            above = y + pad - dy
            for xx in range(width):
                hw = hws[xx]
                if hw <= 0.0:  # rows beyond the disc's edge are empty
                    continue
                # the box's pixels are found once and read in every channel
                cx = xx + pad
                if hw <= 0.5:
                    for c in range(n_c):
                        v = xpad[c, below, cx]
                        if dy > 0:
                            v += xpad[c, above, cx]
                        acc[c, xx] += 2.0 * hw * v
                    continue
                m = int(hw - 0.5)
                frac = hw - 0.5 - m
                lo = cx - m
                hi = cx + m + 1
                for c in range(n_c):
                    v = prefix[c, below, hi] - prefix[c, below, lo] + \
                        frac * (xpad[c, below, hi] + xpad[c, below, lo - 1])
                    if dy > 0:
                        v += prefix[c, above, hi] - prefix[c, above, lo] + \
                            frac * (xpad[c, above, hi] + xpad[c, above, lo - 1])
                    acc[c, xx] += v
        for c in range(n_c):
            for xx in range(width):
                acc[c, xx] *= scale[xx]


@numba.njit(parallel=True, fastmath=True, cache=True)
def disc_adjoint_kernel(ystack, minus, subtract, half_width, inv_area, row_extent, outpad,
                        margin):
    # Gather over padded output rows, as cpu._adjoint_kernel: the thread that
    # owns row R collects every output row py whose PSF rows reach it.
    n_f, rows, height, width = half_width.shape
    n_c = ystack.shape[1]
    pad = rows  # K // 2 + 1
    wide = width + 2 * pad
    for rr in numba.prange(height + 2 * margin):
        big_r = rr + pad - margin
        diff = np.zeros((n_c, wide + 1), dtype=np.float32)
        dst = outpad[:, big_r]
        dst[:] = 0.0
        for f in range(n_f):
            for s in range(-(rows - 1), rows):
                py = big_r - pad - s  # output row whose PSF row s lands here
                if py < 0 or py >= height or abs(s) >= row_extent[f, py]:
                    continue
                hws = half_width[f, abs(s), py]
                scale = inv_area[f, py]
                for xx in range(width):
                    hw = hws[xx]
                    if hw <= 0.0:
                        continue
                    cx = xx + pad
                    if hw <= 0.5:
                        for c in range(n_c):
                            v = ystack[f, c, py, xx]
                            if subtract:
                                v -= minus[f, c, py, xx]
                            dst[c, cx] += 2.0 * hw * v * scale[xx]
                        continue
                    # the adjoint of the box: the interior into a difference
                    # array (summed once per row below), the two ends direct
                    m = int(hw - 0.5)
                    frac = hw - 0.5 - m
                    for c in range(n_c):
                        v = ystack[f, c, py, xx]
                        if subtract:
                            v -= minus[f, c, py, xx]
                        t = v * scale[xx]
                        diff[c, cx - m] += t
                        diff[c, cx + m + 1] -= t
                        dst[c, cx + m + 1] += frac * t
                        dst[c, cx - m - 1] += frac * t
        for c in range(n_c):
            run = np.float32(0.0)
            for j in range(wide):
                run += diff[c, j]
                dst[c, j] += run


@numba.njit(parallel=True, fastmath=True, cache=True)
def disc_constant_losses_kernel(xpad, prefix, b, hw, inv_area, slot, cached, out):
    # As cpu._constant_losses_kernel, for discs: hw[j, f, a] and inv_area[j, f]
    # are the rows of candidate j's disc in slice f, the same at every pixel.
    m, n_f, k = hw.shape
    n_c, height, width = b.shape[1:]
    pad = k // 2 + 1
    for job in numba.prange(m * height):
        j = job // height
        y = job % height
        pred = np.empty(width, dtype=np.float32)
        lrow = out[j, y]
        lrow[:] = 0.0
        for f in range(n_f):
            if slice_from_cache(slot[j, f], cached, lrow, y):
                continue
            for c in range(n_c):
                pred[:] = 0.0
                for a in range(k):
                    h = hw[j, f, a]
                    if h == 0.0:
                        continue
                    pre = prefix[c, y + a + 1]
                    src = xpad[c, y + a + 1]
                    if h <= 0.5:
                        for xx in range(width):
                            pred[xx] += 2.0 * h * src[xx + pad]
                        continue
                    mm = int(h - 0.5)
                    frac = np.float32(h - 0.5 - mm)
                    for xx in range(width):
                        cx = xx + pad
                        pred[xx] += pre[cx + mm + 1] - pre[cx - mm] + \
                            frac * (src[cx + mm + 1] + src[cx - mm - 1])
                add_squared_error(lrow, pred, inv_area[j, f], b[f, c, y])


def prefix_sums(xpad):
    """``prefix[..., j] = xpad[..., :j].sum()`` along rows, float32 (accumulated in float64)."""
    rows = np.ascontiguousarray(xpad).reshape(-1, xpad.shape[-1])
    out = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.float32)
    _prefix_kernel(rows, out)
    return out.reshape(xpad.shape[:-1] + (xpad.shape[-1] + 1,))


@numba.njit(parallel=True, cache=True)
def _prefix_kernel(rows, out):
    # one row per job, added as np.cumsum(dtype=float64) adds it, in about half its time
    for r in numba.prange(rows.shape[0]):
        acc = 0.0
        out[r, 0] = 0.0
        for j in range(rows.shape[1]):
            acc += rows[r, j]
            out[r, j + 1] = acc
