"""CUDA kernels of the depth search.

* ``bank_pass_kernel`` - the grid search. A candidate is one depth for the
  whole image, so its blur is separable and shared by every candidate with
  the same radius: the image is blurred once per radius of the bank
  (:func:`dfd_lite.engines.radius_bank`; two launches, columns then rows; the source is 4-D both times, because a
  kernel is typed for one rank of array).
* ``bank_loss_kernel`` - one thread per pixel walks the candidates, reading
  the bank (and mixing two of its radii where the bank is quantised,
  :func:`dfd_lite.engines.radius_bank`), and writes each candidate's loss map.
* ``box_kernel`` - one pass of a box mean along one image axis.
* ``golden_kernel`` - the whole golden-section refinement in one launch:
  each thread evaluates its pixel's loss at the depth its search asks for
  and hands it to the shared ``golden_advance``, ``evaluations`` times,
  from one staged tile of the image.
* one-thread-per-pixel wrappers around the shared per-pixel algorithms of
  :mod:`dfd_lite.engines._scalar`: running minimum, golden section, safeguard.
"""

from __future__ import annotations

from numba import float32

from .. import _scalar
from ._common import F0, F1, MAX_K, cuda
from .blur import stage_block, staged_loss

_fold_min = cuda.jit(device=True)(_scalar.fold_min)
_golden_init = cuda.jit(device=True)(_scalar.golden_init)
_golden_advance = cuda.jit(device=True)(_scalar.golden_advance)
_keep_better = cuda.jit(device=True)(_scalar.keep_better)


@cuda.jit
def bank_pass_kernel(src, wu, dst, axis):
    # dst[u, c] = src[u, c] (or src[0, c] when src holds one image) blurred
    # with the 1-D taps wu[u] along one image axis (0: columns, 1: rows),
    # zero outside src, for every bank radius u at once (blockIdx.z runs
    # over (u, c)). Called twice, columns then rows: the separable blur. src
    # may be larger than dst by a margin on each side (the image's own
    # margin beyond the frame), centred on it.
    xx, yy, z = cuda.grid(3)
    n_u, n_c, height, width = dst.shape
    if xx >= width or yy >= height or z >= n_u * n_c:
        return
    u = z // n_c
    c = z - u * n_c
    s = min(u, src.shape[0] - 1)
    k = wu.shape[1]
    half = k // 2
    my = (src.shape[2] - height) // 2
    mx = (src.shape[3] - width) // 2
    acc = F0
    for a in range(k):
        if axis == 0:
            r = yy + my + a - half
            if r >= 0 and r < src.shape[2]:
                acc += wu[u, a] * src[s, c, r, xx + mx]
        else:
            q = xx + mx + a - half
            if q >= 0 and q < src.shape[3]:
                acc += wu[u, a] * src[s, c, yy + my, q]
    dst[u, c, yy, xx] = acc


@cuda.jit
def bank_loss_kernel(bank, b, lower, weight, volume):
    # volume[j] = per-pixel loss of candidate j: slice f predicted by
    # bank[lower[j, f]], mixed with the next bank radius by weight[j, f]
    # (dfd_lite.engines.RadiusBank).
    xx, yy = cuda.grid(2)
    n_f, n_c, height, width = b.shape
    if xx >= width or yy >= height:
        return
    for j in range(lower.shape[0]):
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


@cuda.jit
def golden_kernel(x, b, state, focus, coef, rmin, k, cs, evaluations):
    # state is (STATE_ROWS, H * W). Every thread runs the same number of
    # evaluations, so the barriers inside staging are reached by all; the
    # threads past the image edge compute a loss for a clamped pixel (they
    # help stage the tile) and never touch the state.
    tile = cuda.shared.array(0, dtype=float32)
    wl = cuda.local.array(MAX_K, dtype=float32)
    geometry, qy, qx, restage = stage_block(x, b, tile, k, cs)  # one tile for every step
    i = qy * b.shape[3] + qx
    inside = qy == geometry[6] and qx == geometry[7]
    for _ in range(evaluations):
        loss = staged_loss(state[_scalar.Z_NEXT, i], x, b, tile, focus, coef, rmin, k, cs,
                           restage, qy, qx, geometry, wl)
        if inside:
            _golden_advance(state, i, loss)


@cuda.jit
def keep_better_kernel(depth, loss, prev_depth, prev_loss, kept):
    i = cuda.grid(1)
    if i < depth.size:
        _keep_better(depth, loss, prev_depth, prev_loss, kept, i)
