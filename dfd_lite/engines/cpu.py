"""The CPU engine: Numba kernels on NumPy arrays.

Arrays are planar float32: images ``(C, H, W)``, stacks ``(F, C, H, W)``,
per-pixel 1-D weights ``(F, K, H, W)``. The innermost loops run along image
rows so that they vectorise, and the image is zero-padded once outside the
kernels so that they need no bounds tests. Parallel loops are over rows (or
slices times rows), so no two threads write the same pixel.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.ndimage as ndi

from . import DiscWeights, Optics, _scalar, radius_bank
from ._cpu_disc import (EXTENT_COLUMNS, adjoint_band, bank_loss_rows, disc_adjoint_kernel,
                        disc_bank_losses_kernel, disc_forward_kernel, disc_weights_kernel,
                        prefix_sums, scaled_residual_kernel)

__all__ = ["CpuEngine"]

_blur_radius = numba.njit(inline="always")(_scalar.blur_radius)
_gaussian_exponent = numba.njit(inline="always")(_scalar.gaussian_exponent)
_golden_init = numba.njit(_scalar.golden_init)
_golden_advance = numba.njit(_scalar.golden_advance)
_fold_min = numba.njit(_scalar.fold_min)
_keep_better = numba.njit(_scalar.keep_better)
_tv_grad_at = numba.njit(inline="always")(_scalar.tv_grad_at)
_tv_div_at = numba.njit(inline="always")(_scalar.tv_div_at)
_tv_norm_at = numba.njit(inline="always")(_scalar.tv_norm_at)
_tv_project_at = numba.njit(inline="always")(_scalar.tv_project_at)

# Bytes of loss maps the grid search holds at once (one map per candidate).
_VOLUME_BYTES = 256 * 2**20


# ---------------------------------------------------------------------------
# Blur operator
# ---------------------------------------------------------------------------

@numba.njit(parallel=True, fastmath=True, cache=True)
def _weights_kernel(depth, focus, coef, min_radius, out):
    # out[f, a, y, x]: normalised 1-D Gaussian tap a of pixel (y, x) in slice f.
    n_f, k, height, width = out.shape
    half = k // 2
    for job in numba.prange(n_f * height):
        f = job // height
        y = job % height
        inv = np.empty(width, dtype=np.float32)
        total = np.zeros(width, dtype=np.float32)
        for xx in range(width):
            inv[xx] = _gaussian_exponent(_blur_radius(depth[y, xx], focus[f], coef[f], min_radius))
        for a in range(k):
            o2 = np.float32((a - half) * (a - half))
            row = out[f, a, y]
            for xx in range(width):
                g = np.exp(inv[xx] * o2)
                row[xx] = g
                total[xx] += g
        for a in range(k):
            row = out[f, a, y]
            for xx in range(width):
                row[xx] /= total[xx]


@numba.njit(parallel=True, fastmath=True, cache=True)
def _forward_kernel(xpad, wts, out):
    n_f, k, height, width = wts.shape
    n_c = xpad.shape[0]
    for job in numba.prange(n_f * height):
        f = job // height
        y = job % height
        row = np.empty(width, dtype=np.float32)
        for c in range(n_c):
            acc = out[f, c, y]
            acc[:] = 0.0
            for a in range(k):
                src = xpad[c, y + a]
                for xx in range(width):
                    row[xx] = 0.0
                for b in range(k):
                    wb = wts[f, b, y]
                    for xx in range(width):
                        row[xx] += wb[xx] * src[xx + b]
                wa = wts[f, a, y]
                for xx in range(width):
                    acc[xx] += wa[xx] * row[xx]


@numba.njit(parallel=True, fastmath=True, cache=True)
def _adjoint_kernel(ystack, minus, subtract, wts, outpad, margin):
    # The scatter A^T (y - minus) written as a gather over output rows: the
    # thread that owns padded output row R collects every input row that
    # reaches it, so no two threads ever write the same pixel. Only the
    # frame and ``margin`` rows around it are wanted; the rest is left zero.
    n_f, k, height, width = wts.shape
    n_c = ystack.shape[1]
    half = k // 2
    for rr in numba.prange(height + 2 * margin):
        big_r = rr + half - margin
        t = np.empty(width, dtype=np.float32)
        for c in range(n_c):
            dst = outpad[c, big_r]
            dst[:] = 0.0
            for f in range(n_f):
                for a in range(k):
                    py = big_r - a
                    if py < 0 or py >= height:
                        continue
                    wa = wts[f, a, py]
                    src = ystack[f, c, py]
                    ref = minus[f, c, py]
                    for xx in range(width):
                        v = src[xx] - ref[xx] if subtract else src[xx]
                        t[xx] = wa[xx] * v
                    for b in range(k):
                        wb = wts[f, b, py]
                        for xx in range(width):
                            dst[xx + b] += t[xx] * wb[xx]


def _pad(x, shape, half):
    """``x`` with exactly ``half`` pixels around the ``shape`` frame: zeros added or margin cut.

    An image may carry a margin of its own (the part of the scene beyond the
    frame that a solve estimates); the kernels read it where they reach it
    and zeros beyond.
    """
    c = x.shape[0]
    h, w = shape
    have = (x.shape[1] - h) // 2
    if have == half:
        return np.ascontiguousarray(x, dtype=np.float32)
    if have > half:
        cut = have - half
        return np.ascontiguousarray(x[:, cut:x.shape[1] - cut, cut:x.shape[2] - cut])
    xpad = np.zeros((c, h + 2 * half, w + 2 * half), dtype=np.float32)
    add = half - have
    xpad[:, add:add + x.shape[1], add:add + x.shape[2]] = x
    return xpad


def margin_of(image_shape, frame_shape):
    """The margin ``m`` of an image ``(..., H + 2m, W + 2m)`` around an ``(H, W)`` frame."""
    m = (image_shape[-2] - frame_shape[0]) // 2
    if m < 0 or image_shape[-2] != frame_shape[0] + 2 * m or \
            image_shape[-1] != frame_shape[1] + 2 * m:
        raise ValueError(f"an image of shape {tuple(image_shape[-2:])} is not the frame "
                         f"{tuple(frame_shape)} with an equal margin on every side")
    return m


# ---------------------------------------------------------------------------
# Depth search
# ---------------------------------------------------------------------------

@numba.njit(parallel=True, fastmath=True, cache=True)
def _sq_err_kernel(pred, b, out):
    n_f, n_c, height, width = b.shape
    for y in numba.prange(height):
        row = out[y]
        row[:] = 0.0
        for f in range(n_f):
            for c in range(n_c):
                p = pred[f, c, y]
                q = b[f, c, y]
                for xx in range(width):
                    d = p[xx] - q[xx]
                    row[xx] += d * d


@numba.njit(parallel=True, fastmath=True, cache=True)
def _gaussian_bank_losses_kernel(xpad, b, taps, lower, weight, out):
    # The constant-depth losses of the Gaussian: each image row blurs its
    # bank rows with the 1-D taps[u] along columns, then rows, and reads
    # them for every candidate (bank_loss_rows).
    n_u, k = taps.shape
    n_c, height, width = b.shape[1:]
    wide = width + k - 1
    for y in numba.prange(height):
        v = np.empty(wide, dtype=np.float32)
        bank = np.zeros((n_u, n_c, width), dtype=np.float32)
        for u in range(n_u):
            for c in range(n_c):
                v[:] = 0.0
                for a in range(k):
                    wa = taps[u, a]
                    src = xpad[c, y + a]
                    for q in range(wide):
                        v[q] += wa * src[q]
                pred = bank[u, c]
                for bb in range(k):
                    wb = taps[u, bb]
                    for xx in range(width):
                        pred[xx] += wb * v[xx + bb]
        bank_loss_rows(bank, b, lower, weight, y, out)


@numba.njit(parallel=True, fastmath=True, cache=True)
def _sum_sq_kernel(a, b, subtract):
    # sum (a - b)^2 over flat arrays, each thread's share accumulated in float64
    total = 0.0
    for i in numba.prange(a.size):
        v = np.float64(a[i] - b[i]) if subtract else np.float64(a[i])
        total += v * v
    return total


@numba.njit(parallel=True, cache=True)
def _fold_min_kernel(volume, n0, best, index):
    for i in numba.prange(best.size):
        _fold_min(volume, n0, best, index, i)


@numba.njit(parallel=True, cache=True)
def _golden_init_kernel(state, cands, index):
    for i in numba.prange(index.size):
        _golden_init(state, i, cands, index[i])


@numba.njit(parallel=True, cache=True)
def _golden_advance_kernel(state, loss):
    for i in numba.prange(loss.size):
        _golden_advance(state, i, loss[i])


@numba.njit(parallel=True, cache=True)
def _keep_better_kernel(depth, loss, prev_depth, prev_loss, kept):
    for i in numba.prange(depth.size):
        _keep_better(depth, loss, prev_depth, prev_loss, kept, i)


# ---------------------------------------------------------------------------
# Total variation (the regularised image step)
# ---------------------------------------------------------------------------

@numba.njit(parallel=True, cache=True)
def _tv_grad_kernel(x, out):
    for y in numba.prange(x.shape[1]):
        for xx in range(x.shape[2]):
            _tv_grad_at(x, y, xx, out)


@numba.njit(parallel=True, cache=True)
def _tv_div_kernel(p, out):
    for y in numba.prange(p.shape[2]):
        for c in range(p.shape[1]):
            for xx in range(p.shape[3]):
                out[c, y, xx] = _tv_div_at(p, c, y, xx)


@numba.njit(parallel=True, cache=True)
def _tv_project_kernel(p, bound):
    for y in numba.prange(p.shape[2]):
        for xx in range(p.shape[3]):
            _tv_project_at(p, y, xx, bound)


@numba.njit(parallel=True, cache=True)
def _tv_norm_kernel(g, out):
    for y in numba.prange(g.shape[2]):
        for xx in range(g.shape[3]):
            out[y, xx] = _tv_norm_at(g, y, xx)


# ---------------------------------------------------------------------------
# Vector operations of the image step: one pass over memory each, in the
# order of operations NumPy's ufuncs would use (the same float32 results)
# ---------------------------------------------------------------------------

@numba.njit(parallel=True, cache=True)
def _lincomb_kernel(a, alpha, b, beta, out):
    for i in numba.prange(a.size):
        out[i] = alpha * a[i] + beta * b[i]


@numba.njit(parallel=True, cache=True)
def _extrapolate_kernel(new, old, beta, out):
    for i in numba.prange(new.size):
        out[i] = (new[i] - old[i]) * beta + new[i]


@numba.njit(parallel=True, cache=True)
def _prox_kernel(y, g, minus_step, lo, hi, out):
    for i in numba.prange(y.size):
        v = g[i] * minus_step + y[i]
        if v < lo:      # as np.clip: a NaN stays NaN
            v = lo
        elif v > hi:
            v = hi
        out[i] = v


def _flat(a):
    return a.reshape(a.shape[0], -1) if a.ndim == 3 else a.reshape(-1)


def _flat_views(*arrays):
    """1-D views of float32 C-contiguous arrays of one size, or None (then NumPy does it)."""
    if all(a.flags.c_contiguous and a.dtype == np.float32 and a.size == arrays[0].size
           for a in arrays):
        return [a.reshape(-1) for a in arrays]
    return None


class CpuEngine:
    """The primitives of :mod:`dfd_lite.engines` with Numba on the CPU."""

    name = "cpu"

    # -- arrays ------------------------------------------------------------
    def asarray(self, a, dtype=np.float32):
        return np.ascontiguousarray(a, dtype=dtype)

    def to_host(self, a):
        return np.asarray(a)

    def empty(self, shape, dtype=np.float32):
        return np.empty(shape, dtype=dtype)

    def full(self, shape, value, dtype=np.float32):
        return np.full(shape, value, dtype=dtype)

    def copy(self, a):
        return a.copy()

    def scratch(self, name, shape, dtype=np.float32):
        # Host memory is cheap to allocate: nothing is kept between calls.
        return np.empty(shape, dtype=dtype)

    def optics(self, coefficients, psf="gaussian"):
        focus, coef, min_radius = coefficients
        return Optics(np.asarray(focus, dtype=np.float32), np.asarray(coef, dtype=np.float32),
                      np.float32(min_radius), psf)

    # -- blur operator -----------------------------------------------------
    def weights(self, depth, optics, k, out=None):
        focus, coef, min_radius, psf = optics
        shape = (focus.size, k) + depth.shape
        if psf == "disc":
            if out is None:
                out = DiscWeights(np.empty((focus.size, k // 2 + 1) + depth.shape,
                                           dtype=np.float32),
                                  np.empty((focus.size,) + depth.shape, dtype=np.float32), k,
                                  np.empty((focus.size, depth.shape[0],
                                            -(-depth.shape[1] // EXTENT_COLUMNS)),
                                           dtype=np.int32))
            disc_weights_kernel(depth, focus, coef, min_radius, out.half_width, out.inv_area,
                                out.row_extent)
            return out
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        _weights_kernel(depth, focus, coef, min_radius, out)
        return out

    def forward(self, x, weights, out=None):
        n_f, k, h, w = weights.shape
        if out is None:
            out = np.empty((n_f, x.shape[0], h, w), dtype=np.float32)
        if isinstance(weights, DiscWeights):
            xpad = _pad(x, (h, w), k // 2 + 1)
            disc_forward_kernel(prefix_sums(xpad), weights.half_width, weights.inv_area,
                                weights.row_extent, out)
            return out
        _forward_kernel(_pad(x, (h, w), k // 2), weights, out)
        return out

    def adjoint(self, y, weights, out=None, minus=None, margin=0):
        n_f, k, h, w = weights.shape
        if out is not None:
            margin = margin_of(out.shape, (h, w))
        disc = isinstance(weights, DiscWeights)
        half = k // 2 + 1 if disc else k // 2
        outpad = np.zeros((y.shape[1], h + 2 * half, w + 2 * half), dtype=np.float32)
        ref = y if minus is None else minus
        if disc:
            scaled = np.empty(y.shape, dtype=np.float32)
            scaled_residual_kernel(y, ref, minus is not None, weights.inv_area, scaled)
            disc_adjoint_kernel(scaled, weights.half_width, weights.row_extent,
                                adjoint_band(h, k), outpad)
        else:
            _adjoint_kernel(y, ref, minus is not None, weights, outpad, min(margin, half))
        result = _pad(outpad, (h, w), margin)
        if out is None:
            return result
        out[...] = result
        return out

    # -- vector operations -------------------------------------------------
    def prox_step(self, y, g, step, lo, hi, out):
        flat = _flat_views(y, g, out)
        if flat is not None:
            _prox_kernel(*flat[:2], np.float32(-step), np.float32(lo), np.float32(hi), flat[2])
            return out
        np.multiply(g, np.float32(-step), out=out)
        out += y
        return np.clip(out, np.float32(lo), np.float32(hi), out=out)

    def extrapolate(self, new, old, beta, out):
        beta = np.float32(beta)  # a float64 scalar would promote the iterate
        if out is new:
            raise ValueError("extrapolate cannot write over its first argument")
        flat = _flat_views(new, old, out)
        if flat is not None:
            _extrapolate_kernel(flat[0], flat[1], beta, flat[2])
            return out
        np.subtract(new, old, out=out)
        out *= beta
        out += new
        return out

    def scale(self, a, factor, out):
        return np.multiply(a, np.float32(factor), out=out)

    def multiply(self, a, m, out):
        return np.multiply(a, m, out=out)

    def lincomb(self, a, alpha, b, beta, out):
        # alpha a + beta b; out may be a or b (b's term is formed first)
        flat = _flat_views(a, b, out)
        if flat is not None:
            _lincomb_kernel(flat[0], np.float32(alpha), flat[1], np.float32(beta), flat[2])
            return out
        term = np.float32(beta) * b
        np.multiply(a, np.float32(alpha), out=out)
        out += term
        return out

    # -- total variation ---------------------------------------------------
    def tv_grad(self, x, out):
        _tv_grad_kernel(x, out)
        return out

    def tv_div(self, p, out):
        _tv_div_kernel(p, out)
        return out

    def tv_project(self, p, bound):
        _tv_project_kernel(p, np.float32(bound))
        return p

    def tv_norm(self, x):
        g = np.empty((2,) + x.shape, dtype=np.float32)
        norms = np.empty(x.shape[1:], dtype=np.float32)
        _tv_norm_kernel(self.tv_grad(x, g), norms)
        return float(norms.sum(dtype=np.float64))

    def sum_sq(self, a, b=None):
        return float(_sum_sq_kernel(a.reshape(-1), (a if b is None else b).reshape(-1),
                                    b is not None))

    # -- depth search ------------------------------------------------------
    def pixel_loss(self, x, b, depth, optics, k, out=None):
        pred = self.forward(x, self.weights(depth, optics, k))
        if out is None:
            out = np.empty(depth.shape, dtype=np.float32)
        _sq_err_kernel(pred, b, out)
        return out

    def constant_depth_losses(self, x, b, radii, k, out, psf="gaussian", radius_step=None):
        # One blur per radius of the bank (every candidate whose blur is
        # clamped to min_radius shares one, and with radius_step all
        # candidates and slices share a few), then each candidate reads it.
        bank = radius_bank(radii, radius_step)
        if psf == "disc":
            hw, inv_area = _scalar.disc_bank_rows(bank.radii, k)           # (U, K), (U,)
            xpad = _pad(x, b.shape[2:], k // 2 + 1)
            disc_bank_losses_kernel(xpad, prefix_sums(xpad), b, hw, inv_area, bank.lower,
                                    bank.weight, out)
        else:
            _gaussian_bank_losses_kernel(_pad(x, b.shape[2:], k // 2), b,
                                         _scalar.gaussian_taps(bank.radii, k), bank.lower,
                                         bank.weight, out)
        return out

    def box_mean(self, volume, window):
        volume[...] = ndi.uniform_filter(volume, size=(1, window, window), mode="nearest")
        return volume

    def guided_mean(self, volume, guide, window, eps):
        # He, Sun and Tang's guided filter of every map, guided by one image
        def box(a):
            return ndi.uniform_filter(a, size=(1, window, window)[-a.ndim:], mode="nearest")
        mean_i = box(guide)
        var_i = box(guide * guide) - mean_i * mean_i
        mean_p = box(volume)
        a = (box(volume * guide) - mean_i * mean_p) / (var_i + np.float32(eps))
        b = mean_p - a * mean_i
        volume[...] = box(a) * guide + box(b)
        return volume

    def fold_min(self, volume, n0, best, index):
        _fold_min_kernel(_flat(volume), n0, _flat(best), _flat(index))

    def golden_init(self, state, cands, index):
        _golden_init_kernel(_flat(state), cands, _flat(index))

    def golden_search(self, x, b, state, optics, k, evaluations):
        # Each evaluation is one whole-image pass (weights, blur, squared
        # error), vectorised along rows, then one update of every pixel.
        loss = np.empty(state.shape[1:], dtype=np.float32)
        for _ in range(evaluations):
            self.pixel_loss(x, b, state[_scalar.Z_NEXT], optics, k, out=loss)
            _golden_advance_kernel(_flat(state), _flat(loss))

    def keep_better(self, depth, loss, prev_depth, prev_loss, kept):
        _keep_better_kernel(_flat(depth), _flat(loss), _flat(prev_depth), _flat(prev_loss),
                            _flat(kept))

    def grid_chunk(self, n_candidates, shape, n_f, n_c):
        per_map = 4 * shape[0] * shape[1]
        return int(max(1, min(n_candidates, _VOLUME_BYTES // per_map)))

    def __repr__(self):
        return "CpuEngine()"
