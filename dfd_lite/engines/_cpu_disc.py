"""Numba kernels of the disc PSF for the CPU engine (:mod:`dfd_lite.engines.cpu`).

Each row of the disc is a box (:func:`~dfd_lite.engines._scalar.disc_half_width`),
summed from the running integral of the padded image's row (prefix sums,
:func:`box_ends`), so a disc of radius r costs O(r) per pixel. Rows ``dy`` and
``-dy`` of a disc are one box, read once from the two rows' summed prefix
sums; the adjoint is the transpose of those steps.
Arrays are planar float32 as in :mod:`~dfd_lite.engines.cpu`; the row
half-widths are stored for ``dy >= 0`` only (:class:`~dfd_lite.engines.DiscWeights`).
:func:`bank_loss_rows`, which turns a row of blurred images into losses, is
shared with the Gaussian's grid kernel in :mod:`~dfd_lite.engines.cpu` (it
lives here because that module imports this one).
"""

from __future__ import annotations

import numba
import numpy as np

from . import _scalar

_blur_radius = numba.njit(inline="always")(_scalar.blur_radius)
_disc_chord_integral = numba.njit(inline="always")(_scalar.disc_chord_integral)

#: Columns that share one count of PSF rows (``DiscWeights.row_extent``): the
#: CPU kernels skip, per image row and block of this many columns, the rows
#: of the window that none of its discs reaches, so a few wide blurs cost
#: only their own block. A block is also one vectorised loop.
EXTENT_COLUMNS = 64


@numba.njit(inline="always")
def bank_loss_rows(bank, b, lower, weight, y, out):
    """Row ``y`` of every candidate's loss map, from the bank's blurred rows.

    ``bank[u, c]`` is row ``y`` of the image blurred at bank radius ``u``
    (:class:`~dfd_lite.engines.RadiusBank`); slice ``f`` of candidate ``j``
    is predicted by ``bank[lower[j, f]]``, mixed with the next radius by
    ``weight[j, f]``, and ``out[j, y]`` gets the squared error summed over
    slices and channels.
    """
    m, n_f = lower.shape
    n_c, width = bank.shape[1], bank.shape[2]
    for j in range(m):
        lrow = out[j, y]
        lrow[:] = 0.0
        for f in range(n_f):
            u = lower[j, f]
            t = weight[j, f]
            for c in range(n_c):
                p0 = bank[u, c]
                q = b[f, c, y]
                if t == 0.0:
                    for xx in range(width):
                        d = p0[xx] - q[xx]
                        lrow[xx] += d * d
                else:
                    p1 = bank[u + 1, c]
                    for xx in range(width):
                        d = p0[xx] + t * (p1[xx] - p0[xx]) - q[xx]
                        lrow[xx] += d * d


@numba.njit(parallel=True, fastmath=True, cache=True)
def disc_weights_kernel(depth, focus, coef, min_radius, half_width, inv_area, row_extent):
    n_f, rows, height, width = half_width.shape
    half = rows - 1
    for job in numba.prange(n_f * height):
        f = job // height
        y = job % height
        row_extent[f, y, :] = 1
        rows_of_pixel = np.empty(half + 1, dtype=np.float32)
        for xx in range(width):
            r = _blur_radius(depth[y, xx], focus[f], coef[f], min_radius)
            inv_area[f, y, xx] = 1.0 / disc_rows_at(r, half, rows_of_pixel)
            for dy in range(half + 1):
                hw = rows_of_pixel[dy]
                half_width[f, dy, y, xx] = hw
                if hw > 0.0 and dy >= row_extent[f, y, xx // EXTENT_COLUMNS]:
                    row_extent[f, y, xx // EXTENT_COLUMNS] = dy + 1


@numba.njit(inline="always")
def disc_rows_at(r, half, rows):
    """Row half-widths of the model's disc of radius ``r`` into ``rows`` (``half + 1``); returns its area.

    :func:`~dfd_lite.engines._scalar.disc_half_width` for ``dy = 0 .. half``,
    each boundary's chord integral shared by the two rows it separates
    (rows ``dy`` and ``-dy`` are the same, so only ``dy >= 0`` is kept).
    """
    lower = -_disc_chord_integral(r, 0.5)
    total = 0.0
    for dy in range(half + 1):
        hw = 0.0
        if dy - 0.5 < r:  # rows past the disc's edge are empty
            upper = _disc_chord_integral(r, dy + 0.5)
            hw = min(0.5 * (upper - lower), half + 0.5)
            lower = upper
        rows[dy] = hw
        total += 2.0 * hw if dy == 0 else 4.0 * hw
    return total


@numba.njit(inline="always")
def box_ends(hws, offset, jl, jr, fl, fr):
    """Both ends of the boxes of one row of the discs of consecutive pixels.

    Pixel ``j`` of a padded row covers ``[j - 1/2, j + 1/2]``, so the row's
    running integral is ``I(t) = prefix[j] + (t + 1/2 - j) x[j]``, which is
    ``(1 - a) prefix[j] + a prefix[j + 1]`` with ``j = floor(t + 1/2)`` and
    ``a = t + 1/2 - j``: prefix sums read linearly between their samples.
    The box of half-width ``hws[i]`` around padded column ``cx = offset + i``
    sums to ``I(cx + hw) - I(cx - hw)``, fractional end pixels included.
    Stores ``j`` of the left and right ends in ``jl[i]``, ``jr[i]`` and ``a``
    in ``fl[i]``, ``fr[i]``. One formula for every width (0 gives an empty
    box) keeps the kernels' loops along a row free of branches, so they
    vectorise: half again as fast as testing each width.
    """
    for i in range(hws.size):
        centre = np.float32(offset + i) + np.float32(0.5)
        right = centre + hws[i]
        left = centre - hws[i]
        ir = np.int32(right)   # floor: both ends lie right of column 0
        il = np.int32(left)
        jr[i] = ir
        jl[i] = il
        fr[i] = right - np.float32(ir)
        fl[i] = left - np.float32(il)


@numba.njit(inline="always")
def box_buffers():
    """Scratch for :func:`box_ends`, a block of ``EXTENT_COLUMNS`` boxes: ``jl, jr, fl, fr``."""
    return (np.empty(EXTENT_COLUMNS, dtype=np.int32), np.empty(EXTENT_COLUMNS, dtype=np.int32),
            np.empty(EXTENT_COLUMNS, dtype=np.float32), np.empty(EXTENT_COLUMNS, dtype=np.float32))


@numba.njit(inline="always")
def add_box_sums(acc, prefix, jl, jr, fl, fr):
    """``acc[i] += I(right end) - I(left end)`` along a row of prefix sums (:func:`box_ends`)."""
    for i in range(acc.size):
        right = prefix[jr[i]]
        left = prefix[jl[i]]
        acc[i] += (right - left) + (fr[i] * (prefix[jr[i] + 1] - right)
                                    - fl[i] * (prefix[jl[i] + 1] - left))


@numba.njit(inline="always")
def spread_box_sums(values, prefix_adj, jl, jr, fl, fr):
    """The transpose of :func:`add_box_sums`: ``values[i]`` onto the prefix sums its box reads."""
    for i in range(values.size):
        v = values[i]
        part = fr[i] * v
        prefix_adj[jr[i]] += v - part
        prefix_adj[jr[i] + 1] += part
        part = fl[i] * v
        prefix_adj[jl[i]] -= v - part
        prefix_adj[jl[i] + 1] -= part


@numba.njit(inline="always")
def rows_reached(row_extent, y):
    """How many rows ``dy = 0 ..`` of the window any disc of image row ``y`` reaches, in any slice."""
    reach = 1
    for f in range(row_extent.shape[0]):
        for block in range(row_extent.shape[2]):
            reach = max(reach, row_extent[f, y, block])
    return reach


@numba.njit(inline="always")
def add_row_pairs(rows, centre, paired):
    """``paired[dy] = rows[centre + dy] + rows[centre - dy]`` for ``dy >= 1``, ``paired[0] = rows[centre]``.

    Rows ``dy`` and ``-dy`` of a disc are the same box, so a kernel that
    reads rows of prefix sums (or pixels) around image row ``centre`` sums
    each pair once and reads the box's ends once for both.
    """
    paired[0] = rows[centre]
    for dy in range(1, paired.shape[0]):
        below = rows[centre + dy]
        above = rows[centre - dy]
        dst = paired[dy]
        for j in range(dst.size):
            dst[j] = below[j] + above[j]


@numba.njit(parallel=True, fastmath=True, cache=True)
def disc_forward_kernel(prefix, half_width, inv_area, row_extent, out):
    # prefix[c, R, j] sums the padded image's row R (padded by K // 2 + 1 on
    # every side) up to column j. Rows dy and -dy of a disc are the same
    # box, so one job per image row y first adds the prefix sums of rows
    # y + dy and y - dy (shared by every slice), then reads each box's ends
    # once for both: half the gathers of summing the two rows apart.
    n_f, rows, height, width = half_width.shape
    n_c, wide = prefix.shape[0], prefix.shape[2]
    pad = rows  # K // 2 + 1
    for y in numba.prange(height):
        reach = rows_reached(row_extent, y)
        paired = np.empty((reach, n_c, wide), dtype=np.float32)
        for c in range(n_c):
            add_row_pairs(prefix[c], y + pad, paired[:, c])
        jl, jr, fl, fr = box_buffers()
        for f in range(n_f):
            acc = out[f, :, y]
            acc[:] = 0.0
            hws = half_width[f, :, y]
            for x0 in range(0, width, EXTENT_COLUMNS):
                x1 = min(x0 + EXTENT_COLUMNS, width)
                # rows that no disc of these columns reaches are skipped: the
                # window is sized for the widest blur of the searched range,
                # most discs are smaller
                for dy in range(row_extent[f, y, x0 // EXTENT_COLUMNS]):
                    box_ends(hws[dy, x0:x1], x0 + pad, jl, jr, fl, fr)
                    for c in range(n_c):
                        add_box_sums(acc[c, x0:x1], paired[dy, c], jl, jr, fl, fr)
            scale = inv_area[f, y]
            for c in range(n_c):
                for xx in range(width):
                    acc[c, xx] *= scale[xx]


@numba.njit(parallel=True, fastmath=True, cache=True)
def scaled_residual_kernel(ystack, minus, subtract, inv_area, out):
    """``out = (ystack - minus) * inv_area`` (or ``ystack * inv_area``), per slice and pixel.

    What the disc adjoint spreads: each output pixel's value over its
    disc's area, formed once here rather than once for every PSF row
    that reads it.
    """
    n_f, n_c, height, width = ystack.shape
    for job in numba.prange(n_f * height):
        f = job // height
        y = job % height
        scale = inv_area[f, y]
        for c in range(n_c):
            yrow = ystack[f, c, y]
            orow = out[f, c, y]
            if subtract:
                mrow = minus[f, c, y]
                for i in range(width):
                    orow[i] = (yrow[i] - mrow[i]) * scale[i]
            else:
                for i in range(width):
                    orow[i] = yrow[i] * scale[i]


def adjoint_band(height, kernel_size):
    """Image rows per band of :func:`disc_adjoint_kernel`: at least ``K``, so bands of one colour never share a row.

    A band's discs reach ``K // 2`` rows past it on either side, and bands
    of one colour are one band apart. Otherwise as many bands as make one
    per thread and colour, so both colours keep every thread busy.
    """
    return max(kernel_size, -(-height // (2 * numba.get_num_threads())))


@numba.njit(parallel=True, fastmath=True, cache=True)
def disc_adjoint_kernel(scaled, half_width, row_extent, band, outpad):
    # The transpose of disc_forward_kernel, in its three steps: each output
    # row py spreads ``scaled`` (the stack over each disc's area,
    # scaled_residual_kernel) onto the paired prefix sums at its boxes'
    # ends; the paired row dy goes to padded rows py + dy and py - dy; and
    # each padded row's prefix sums go back to its pixels (x[i] is in
    # prefix[j] for every j > i: a running sum from the right).
    # Output rows are taken in bands, alternately coloured: one colour's
    # bands run in parallel and never write the same padded row.
    n_f, rows, height, width = half_width.shape
    n_c = scaled.shape[1]
    pad = rows  # K // 2 + 1
    wide = outpad.shape[2] + 1
    prefix_adj = np.zeros((n_c, outpad.shape[1], wide), dtype=np.float32)
    n_bands = -(-height // band)
    for colour in range(2):
        for half_index in numba.prange((n_bands - colour + 1) // 2):
            first = (2 * half_index + colour) * band
            paired = np.empty((rows, n_c, wide), dtype=np.float32)
            jl, jr, fl, fr = box_buffers()
            for py in range(first, min(first + band, height)):
                reach = rows_reached(row_extent, py)
                paired[:reach] = 0.0
                for f in range(n_f):
                    hws = half_width[f, :, py]
                    for x0 in range(0, width, EXTENT_COLUMNS):
                        x1 = min(x0 + EXTENT_COLUMNS, width)
                        for dy in range(row_extent[f, py, x0 // EXTENT_COLUMNS]):
                            box_ends(hws[dy, x0:x1], x0 + pad, jl, jr, fl, fr)
                            for c in range(n_c):
                                spread_box_sums(scaled[f, c, py, x0:x1], paired[dy, c],
                                                jl, jr, fl, fr)
                for dy in range(reach):
                    for c in range(n_c):
                        src = paired[dy, c]
                        below = prefix_adj[c, py + pad + dy]
                        for j in range(wide):
                            below[j] += src[j]
                        if dy > 0:
                            above = prefix_adj[c, py + pad - dy]
                            for j in range(wide):
                                above[j] += src[j]
    for job in numba.prange(n_c * outpad.shape[1]):
        c = job // outpad.shape[1]
        big_r = job % outpad.shape[1]
        src = prefix_adj[c, big_r]
        dst = outpad[c, big_r]
        run = 0.0   # float64, as prefix_sums accumulates
        for j in range(wide - 1, 0, -1):
            run += src[j]
            dst[j - 1] = run


@numba.njit(parallel=True, fastmath=True, cache=True)
def disc_bank_losses_kernel(xpad, prefix, b, hw, inv_area, lower, weight, out):
    # The constant-depth losses of the disc: hw[u, a] and inv_area[u] are
    # the rows of bank radius u's disc (row a at offset a - K // 2), the same
    # at every pixel. Each image row sums its pairs of rows dy and -dy once
    # (add_row_pairs, shared by every bank radius), blurs its bank rows from
    # them, then reads them for every candidate (bank_loss_rows).
    n_u, k = hw.shape
    n_c, height, width = b.shape[1:]
    half = k // 2
    pad = half + 1
    reach = 1   # rows dy = 0 .. reach - 1 hold some bank disc
    for dy in range(half + 1):
        for u in range(n_u):
            if hw[u, half + dy] > 0.0:
                reach = max(reach, dy + 1)
    for y in numba.prange(height):
        pre_pairs = np.empty((reach, n_c, prefix.shape[2]), dtype=np.float32)
        src_pairs = np.empty((reach, n_c, xpad.shape[2]), dtype=np.float32)
        for c in range(n_c):
            add_row_pairs(prefix[c], y + pad, pre_pairs[:, c])
            add_row_pairs(xpad[c], y + pad, src_pairs[:, c])
        bank = np.zeros((n_u, n_c, width), dtype=np.float32)
        for u in range(n_u):
            for c in range(n_c):
                pred = bank[u, c]
                for dy in range(reach):
                    h = hw[u, half + dy]
                    if h == 0.0:
                        continue
                    pre = pre_pairs[dy, c]
                    src = src_pairs[dy, c]
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
                scale = inv_area[u]
                for xx in range(width):
                    pred[xx] *= scale
        bank_loss_rows(bank, b, lower, weight, y, out)


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
