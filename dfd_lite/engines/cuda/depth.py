"""CUDA kernels of the depth search.

* ``gaussian_bank_kernel`` - the grid search. A candidate is one depth for
  the whole image, so its blur is separable and shared by every candidate
  with the same radius: the image is blurred once per radius of the bank
  (:func:`dfd_lite.engines.radius_bank`). Each block stages its tile once
  and blurs it, columns then rows, in shared memory for several radii.
* ``bank_loss_kernel`` - one thread per pixel and candidate reads the bank
  (mixing two of its radii where the bank is quantised) and writes that
  candidate's loss.
* ``box_kernel`` - one pass of a box mean along one image axis.
* ``golden_kernel(k)`` - the whole golden-section refinement in one launch:
  each thread evaluates its pixel's loss at the depth its search asks for
  and hands it to the shared ``golden_advance``, ``evaluations`` times,
  from one staged tile of the image. Compiled once per window size ``k``
  (as is ``gaussian_bank_kernel(k)``), so that its tap loops unroll.
* one-thread-per-pixel wrappers around the shared per-pixel algorithms of
  :mod:`dfd_lite.engines._scalar`: running minimum, golden section, safeguard.
"""

from __future__ import annotations

import functools

from numba import float32

from .. import _scalar
from ._common import F0, F1, cuda, device_function, tuned_kernel
from .blur import stage, stage_block, staged_loss

_fold_min = device_function(_scalar.fold_min)
_golden_init = device_function(_scalar.golden_init)
_golden_advance = device_function(_scalar.golden_advance)
_keep_better = device_function(_scalar.keep_better)


# Outputs per thread along the blurred axis in the bank's two passes: a
# thread reads k + BANK_RUN - 1 staged pixels for BANK_RUN outputs.
BANK_RUN = 4


@functools.lru_cache(maxsize=None)
def gaussian_bank_kernel(k):
    """The grid search's Gaussian blur bank, for PSF windows of ``k`` pixels.

    ``k`` is a compile-time constant, as in :func:`golden_kernel`.
    """
    run = BANK_RUN

    def kernel(x, wu, bank, cs, per_block):
        # bank[u, c] = image x blurred with the 1-D taps wu[u] along columns,
        # then rows, zero outside x, for the bank radii u of this block
        # (blockIdx.z * per_block onwards). The block stages its tile of x
        # (plus a k // 2 halo, cs channels at a time) in shared memory once,
        # then for each radius blurs the tile's columns into a second shared
        # buffer and its rows from there: every pixel of x is read from global
        # memory once per block, not once per radius and pass. Each thread
        # makes `run` neighbouring outputs of a pass from one sliding window
        # of k + run - 1 staged values, held in registers.
        n_u, n_c, height, width = bank.shape
        half = k // 2
        smem = cuda.shared.array(0, dtype=float32)
        taps = cuda.local.array(k, dtype=float32)   # registers, once unrolled
        acc = cuda.local.array(run, dtype=float32)
        side = cuda.blockDim.x                      # a multiple of run
        groups = side // run
        y0 = cuda.blockIdx.y * side
        x0 = cuda.blockIdx.x * side
        span = side + 2 * half                      # the tile's rows and columns
        col_base = cs * span * span                 # the column pass's buffer: (cs, side, span)
        tid = cuda.threadIdx.y * side + cuda.threadIdx.x
        nth = side * side
        margin = (x.shape[1] - height) // 2
        u0 = cuda.blockIdx.z * per_block
        for c0 in range(0, n_c, cs):
            n_s = min(cs, n_c - c0)
            stage(x, smem, c0, cs, y0, x0, half, span, span, margin)
            for u in range(u0, min(n_u, u0 + per_block)):
                for a in range(k):
                    taps[a] = wu[u, a]
                # columns: item (ci, g, j) makes rows g * run .. + run - 1 of
                # tile column j (neighbouring threads: neighbouring columns)
                for item in range(tid, n_s * groups * span, nth):
                    ci = item // (groups * span)
                    rest = item - ci * groups * span
                    g = rest // span
                    j = rest - g * span
                    src = ci * span * span + g * run * span + j
                    for r in range(run):
                        acc[r] = F0
                    for m in range(k + run - 1):
                        v = smem[src + m * span]
                        for r in range(run):
                            if m - r >= 0 and m - r < k:
                                acc[r] += taps[m - r] * v
                    dst = col_base + ci * side * span + g * run * span + j
                    for r in range(run):
                        smem[dst + r * span] = acc[r]
                cuda.syncthreads()
                # rows: item (ci, i, g) makes pixels g * run .. + run - 1 of
                # row i (neighbouring threads: a row's groups, then rows)
                for item in range(tid, n_s * side * groups, nth):
                    ci = item // (side * groups)
                    rest = item - ci * side * groups
                    i = rest // groups
                    g = rest - i * groups
                    src = col_base + ci * side * span + i * span + g * run
                    for r in range(run):
                        acc[r] = F0
                    for m in range(k + run - 1):
                        v = smem[src + m]
                        for r in range(run):
                            if m - r >= 0 and m - r < k:
                                acc[r] += taps[m - r] * v
                    py = y0 + i
                    if py < height:
                        for r in range(run):
                            px = x0 + g * run + r
                            if px < width:
                                bank[u, c0 + ci, py, px] = acc[r]
                cuda.syncthreads()  # the next radius overwrites the column buffer
    # Four blocks of 256 threads per multiprocessor: 64 registers a thread
    # and no spilling at k = 11 and 23 (ptxas for sm_90; 123 and 168
    # unbounded, which would leave room for two blocks and one).
    return tuned_kernel(kernel, (256, 4))


@cuda.jit
def bank_loss_kernel(bank, b, lower, weight, volume):
    # volume[j] = per-pixel loss of candidate j: slice f predicted by
    # bank[lower[j, f]], mixed with the next bank radius by weight[j, f]
    # (dfd_lite.engines.RadiusBank). A thread per pixel and candidate
    # (blockIdx.z, striding by the grid's depth): many independent reads
    # in flight.
    xx, yy = cuda.grid(2)
    n_f, n_c, height, width = b.shape
    if xx >= width or yy >= height:
        return
    for j in range(cuda.blockIdx.z, lower.shape[0], cuda.gridDim.z):
        loss = F0
        for f in range(n_f):
            u = lower[j, f]
            t = weight[j, f]
            for c in range(n_c):
                p = bank[u, c, yy, xx]
                if t > F0:
                    p += t * (bank[u + 1, c, yy, xx] - p)
                d = p - b[f, c, yy, xx]
                loss += d * d
        volume[j, yy, xx] = loss


@cuda.jit
def box_kernel(src, dst, half, axis):
    # Mean over 2*half+1 pixels along one image axis (0: rows, 1: columns),
    # edges repeated, for every map of a (N, H, W) volume: one pass of
    # scipy.ndimage.uniform_filter(mode="nearest").
    xx, yy = cuda.grid(2)
    n_maps, height, width = src.shape
    if yy >= height or xx >= width:
        return
    scale = F1 / float32(2 * half + 1)
    for n in range(n_maps):
        acc = F0
        for j in range(-half, half + 1):
            if axis == 0:
                acc += src[n, min(max(yy + j, 0), height - 1), xx]
            else:
                acc += src[n, yy, min(max(xx + j, 0), width - 1)]
        dst[n, yy, xx] = acc * scale


@cuda.jit
def times_guide_kernel(volume, guide, out):
    # out[n] = volume[n] * guide, for every map n
    xx, yy = cuda.grid(2)
    if yy < guide.shape[0] and xx < guide.shape[1]:
        g = guide[yy, xx]
        for n in range(volume.shape[0]):
            out[n, yy, xx] = volume[n, yy, xx] * g


@cuda.jit
def guided_coeffs_kernel(mean_p, mean_ip, stats, eps):
    # stats[0] = box(I), stats[1] = box(I^2): mean_p becomes b, mean_ip
    # becomes a, the guided filter's local linear coefficients
    xx, yy = cuda.grid(2)
    if yy < stats.shape[1] and xx < stats.shape[2]:
        mi = stats[0, yy, xx]
        var = stats[1, yy, xx] - mi * mi
        for n in range(mean_p.shape[0]):
            a = (mean_ip[n, yy, xx] - mi * mean_p[n, yy, xx]) / (var + eps)
            mean_ip[n, yy, xx] = a
            mean_p[n, yy, xx] = mean_p[n, yy, xx] - a * mi


@cuda.jit
def guided_apply_kernel(mean_a, mean_b, guide, out):
    xx, yy = cuda.grid(2)
    if yy < guide.shape[0] and xx < guide.shape[1]:
        g = guide[yy, xx]
        for n in range(out.shape[0]):
            out[n, yy, xx] = mean_a[n, yy, xx] * g + mean_b[n, yy, xx]


@cuda.jit
def fold_min_kernel(volume, n0, best, index):
    i = cuda.grid(1)
    if i < best.size:
        _fold_min(volume, n0, best, index, i)


@cuda.jit
def golden_advance_kernel(state, loss):
    i = cuda.grid(1)
    if i < loss.size:
        _golden_advance(state, i, loss[i])


@cuda.jit
def golden_init_kernel(state, cands, index):
    i = cuda.grid(1)
    if i < index.size:
        _golden_init(state, i, cands, index[i])


@functools.lru_cache(maxsize=None)
def golden_kernel(k):
    """The whole golden-section refinement in one launch, for PSF windows of ``k`` pixels.

    ``k`` is a compile-time constant of the kernel (one is compiled per
    window size, on first use): the helpers it calls are inlined, their
    tap loops unroll and the taps stay in registers instead of a
    per-thread array in memory.
    """
    def kernel(x, b, state, focus, coef, rmin, cs, evaluations):
        # state is (STATE_ROWS, H * W). Every thread runs the same number of
        # evaluations, so the barriers inside staging are reached by all; the
        # threads past the image edge compute a loss for a clamped pixel (they
        # help stage the tile) and never touch the state.
        tile = cuda.shared.array(0, dtype=float32)
        wl = cuda.local.array(k, dtype=float32)
        geometry, qy, qx, restage = stage_block(x, b, tile, k, cs)  # one tile for every step
        i = qy * b.shape[3] + qx
        inside = qy == geometry[6] and qx == geometry[7]
        for _ in range(evaluations):
            loss = staged_loss(state[_scalar.Z_NEXT, i], x, b, tile, focus, coef, rmin, k, cs,
                               restage, qy, qx, geometry, wl)
            if inside:
                _golden_advance(state, i, loss)
    # Three blocks of 256 threads per multiprocessor: 80 registers a thread
    # (113 unbounded; at k = 11 a few bytes spill). On an H200 that took
    # the kernel from 1.31 to 0.99 ms at 240 x 320, k = 11 (bench/README.md).
    return tuned_kernel(kernel, (256, 3))


@cuda.jit
def keep_better_kernel(depth, loss, prev_depth, prev_loss, kept):
    i = cuda.grid(1)
    if i < depth.size:
        _keep_better(depth, loss, prev_depth, prev_loss, kept, i)
