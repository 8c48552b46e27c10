"""CUDA kernels of the disc PSF: weights, forward, adjoint, per-pixel loss and
the blur bank of the grid search.

The disc is the CPU engine's (rows ``dy`` and ``-dy`` of the PSF of pixel
``p`` are boxes of half-width ``half_width[f, dy, p]``, anti-aliased at
their ends, times ``inv_area[f, p]``), written as direct sums: one thread
per pixel adds up its window, each pixel weighted by
:func:`~dfd_lite.engines._scalar.box_overlap`. That is O(r^2) per pixel
instead of the CPU's prefix-sum O(r), a fair trade on a GPU, where the
threads are many and a prefix sum would be a separate pass. Rows past the
disc's edge are skipped.

Images may carry a margin beyond the frame (``solve(boundary="extend")``):
``x`` is then ``(C, H + 2m, W + 2m)`` and frame pixel ``(y, x)`` is
``x[:, y + m, x + m]``; pixels beyond ``x`` are zero.
"""

from __future__ import annotations

from numba import float32

from .. import _scalar
from ._common import MAX_K, cuda

blur_radius = cuda.jit(device=True)(_scalar.blur_radius)
chord_integral = cuda.jit(device=True)(_scalar.disc_chord_integral)
box_overlap = cuda.jit(device=True)(_scalar.box_overlap)

MAX_ROWS = MAX_K // 2 + 1


@cuda.jit(device=True)
def disc_rows(r, half, rows):
    """Half-widths of rows ``dy = 0 .. half`` of the disc of radius ``r`` into ``rows``; returns ``1 / area``."""
    lower = -chord_integral(r, 0.5)
    total = 0.0
    for dy in range(half + 1):
        hw = 0.0
        if dy - 0.5 < r:
            upper = chord_integral(r, dy + 0.5)
            hw = min(0.5 * (upper - lower), half + 0.5)
            lower = upper
        rows[dy] = hw
        total += 2.0 * hw if dy == 0 else 4.0 * hw
    return 1.0 / total


@cuda.jit(device=True)
def disc_at(x, c, y, xx, margin, rows, half):
    """Sum of channel ``c`` of ``x`` over the disc with row half-widths ``rows``, centred at frame pixel ``(y, xx)`` (not yet divided by the area)."""
    height, width = x.shape[1], x.shape[2]
    acc = 0.0
    for s in range(-half, half + 1):
        hw = rows[abs(s)]
        if hw <= 0.0:
            continue
        yy = y + s + margin
        if yy < 0 or yy >= height:
            continue
        reach = min(int(hw + 0.5), half)
        for dx in range(-reach, reach + 1):
            q = xx + dx + margin
            if q >= 0 and q < width:
                acc += box_overlap(dx, hw) * x[c, yy, q]
    return acc


@cuda.jit
def disc_weights_kernel(depth, focus, coef, rmin, half_width, inv_area):
    xx, yy = cuda.grid(2)
    n_f, n_rows, height, width = half_width.shape
    if yy >= height or xx >= width:
        return
    rows = cuda.local.array(MAX_ROWS, dtype=float32)
    z = depth[yy, xx]
    for f in range(n_f):
        inv_area[f, yy, xx] = disc_rows(blur_radius(z, focus[f], coef[f], rmin), n_rows - 1,
                                        rows)
        for dy in range(n_rows):
            half_width[f, dy, yy, xx] = rows[dy]


@cuda.jit
def disc_forward_kernel(x, half_width, inv_area, out):
    xx, yy = cuda.grid(2)
    n_f, n_rows, height, width = half_width.shape
    if yy >= height or xx >= width:
        return
    half = n_rows - 1
    margin = (x.shape[1] - height) // 2
    rows = cuda.local.array(MAX_ROWS, dtype=float32)
    for f in range(n_f):
        for dy in range(n_rows):
            rows[dy] = half_width[f, dy, yy, xx]
        for c in range(x.shape[0]):
            out[f, c, yy, xx] = disc_at(x, c, yy, xx, margin, rows, half) * inv_area[f, yy, xx]


@cuda.jit
def disc_adjoint_kernel(y, b, half_width, inv_area, out, subtract):
    # out[c, q] = sum over output pixels p whose disc covers q of the weight
    # of q in p's PSF times (y - b)[f, c, p]: the transpose as a gather, one
    # thread per (margin-extended) input pixel q.
    qx, qy = cuda.grid(2)
    n_f, n_rows, height, width = half_width.shape
    if qy >= out.shape[1] or qx >= out.shape[2]:
        return
    half = n_rows - 1
    margin = (out.shape[1] - height) // 2
    fy = qy - margin          # q in frame coordinates
    fx = qx - margin
    for c in range(y.shape[1]):
        acc = 0.0
        for f in range(n_f):
            for s in range(-half, half + 1):
                py = fy - s       # q lies in row s of p's PSF
                if py < 0 or py >= height:
                    continue
                for dx in range(-half, half + 1):
                    px = fx - dx
                    if px < 0 or px >= width:
                        continue
                    hw = half_width[f, abs(s), py, px]
                    if hw <= 0.0:
                        continue
                    v = y[f, c, py, px]
                    if subtract:
                        v -= b[f, c, py, px]
                    acc += box_overlap(dx, hw) * inv_area[f, py, px] * v
        out[c, qy, qx] = acc


@cuda.jit
def disc_pixel_loss_kernel(x, b, depth, focus, coef, rmin, half, out):
    # out[p] = sum_f sum_c (b - A(depth) x)^2 at p, the disc of p made on
    # the fly from depth[p].
    xx, yy = cuda.grid(2)
    n_f, n_c, height, width = b.shape
    if yy >= height or xx >= width:
        return
    margin = (x.shape[1] - height) // 2
    rows = cuda.local.array(MAX_ROWS, dtype=float32)
    z = depth[yy, xx]
    loss = 0.0
    for f in range(n_f):
        scale = disc_rows(blur_radius(z, focus[f], coef[f], rmin), half, rows)
        for c in range(n_c):
            d = disc_at(x, c, yy, xx, margin, rows, half) * scale - b[f, c, yy, xx]
            loss += d * d
    out[yy, xx] = loss


@cuda.jit
def disc_bank_kernel(x, bank_rows, bank_inv_area, bank):
    # bank[u, c] = x blurred with disc u (rows bank_rows[u], 1 / area
    # bank_inv_area[u]), the same disc at every pixel; blockIdx.z runs over
    # (u, c). What the grid search reads for every candidate.
    xx, yy, z = cuda.grid(3)
    n_u, n_c, height, width = bank.shape
    if xx >= width or yy >= height or z >= n_u * n_c:
        return
    u = z // n_c
    c = z - u * n_c
    margin = (x.shape[1] - height) // 2
    half = bank_rows.shape[1] - 1
    bank[u, c, yy, xx] = disc_at(x, c, yy, xx, margin, bank_rows[u], half) * bank_inv_area[u]
