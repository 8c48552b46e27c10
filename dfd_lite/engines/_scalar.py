"""Per-pixel algorithms written once, compiled for every backend.

Each function here is plain Python on scalars and array elements. The CPU
engine compiles it with ``numba.njit`` and calls it from its parallel loops;
the CUDA engine compiles the *same* source with ``cuda.jit(device=True)``
and calls it from one thread per pixel. So the thin-lens radius, the
Gaussian's exponent, the golden-section state machine, the running minimum
and the safeguard exist once, and the two backends cannot drift apart.

Arrays passed in are flat: ``state`` is ``(STATE_ROWS, n)``, ``volume``
``(m, n)``, the rest ``(n,)``, with ``n = H * W`` pixels; the total
variation helpers take planar images ``(C, H, W)`` and fields ``(2, C, H, W)``.
"""

from __future__ import annotations

import math

import numpy as np

# Below this radius the Gaussian is a delta at the window's centre; the
# floor keeps exp(-o^2 / 2 sigma^2) from dividing by zero.
MIN_SIGMA = np.float32(1e-3)
# The bracket of a golden-section search shrinks by this factor per step.
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_GOLDEN32 = np.float32(GOLDEN)
_MINUS_HALF = np.float32(-0.5)

# Rows of the golden-section state (one column per pixel).
LO, HI, C, D, FC, FD, BEST_Z, BEST_F, Z_NEXT, PHASE = range(10)
STATE_ROWS = 10
# PHASE: which loss the next call to golden_advance brings.
_WAIT_START, _WAIT_C, _WAIT_D, _WAIT_NEW_C, _WAIT_NEW_D = 0.0, 1.0, 2.0, 3.0, 4.0


def blur_radius(z, focus, coef, rmin):
    """Thin-lens blur radius in pixels: ``max(coef |z - focus| / z, rmin)``.

    ``coef = D f / (focus - f) / (2 ps)`` comes from
    :func:`dfd_lite.optics.thin_lens_coefficients`.
    """
    return max(coef * abs(z - focus) / z, rmin)


def gaussian_exponent(radius):
    """``-1 / (2 sigma^2)``: the 1-D Gaussian tap at offset ``o`` is ``exp(o^2 * this)``."""
    sigma = max(radius, MIN_SIGMA)
    return _MINUS_HALF / (sigma * sigma)


def disc_chord_integral(radius, t):
    """``G(t) = t sqrt(R^2 - t^2) + R^2 asin(t / R)``, ``t`` clipped to ``[-R, R]``.

    The area of the disc of radius ``R`` (centred at 0) between heights 0
    and ``t``: the antiderivative of the chord length ``2 sqrt(R^2 - t^2)``,
    so the disc's area between heights ``t0 < t1`` is ``G(t1) - G(t0)``.
    ``R`` is floored at 1e-3 px.
    """
    r = max(radius, 1e-3)
    u = min(max(t, -r), r)
    return u * math.sqrt(max(r * r - u * u, 0.0)) + r * r * math.asin(min(max(u / r, -1.0), 1.0))


def disc_half_width(radius, dy, half):
    """Half-width of row ``dy`` of the model's disc PSF of ``radius`` (pixels), at most ``half + 0.5``.

    Row ``dy`` of the disc is replaced by a centred box holding the same
    area (the exact strip of the disc between ``dy - 1/2`` and ``dy + 1/2``),
    anti-aliased at its two ends by pixel coverage. Row sums, and so the
    total, are exact; only the spread of each row's ends differs from true
    pixel coverage. ``half`` is the half-width of the window: a wider row is
    truncated to it. (The kernels compute the same from
    :func:`disc_chord_integral` at the rows' shared boundaries.)
    """
    area = disc_chord_integral(radius, dy + 0.5) - disc_chord_integral(radius, dy - 0.5)
    return min(0.5 * area, half + 0.5)


def box_overlap(dx, half_width):
    """Length of pixel ``[dx - 1/2, dx + 1/2]`` inside the interval ``[-half_width, half_width]``."""
    return max(min(dx + 0.5, half_width) - max(dx - 0.5, -half_width), 0.0)


def golden_init(state, i, cands, j):
    """Start pixel ``i``'s search in ``[cands[j-1], cands[j+1]]`` around grid minimum ``j``.

    The first loss asked for is the grid point's own, so the answer can
    never be worse than the grid search's.
    """
    n = cands.shape[0]
    lo = cands[max(j - 1, 0)]
    hi = cands[min(j + 1, n - 1)]
    state[LO, i] = lo
    state[HI, i] = hi
    state[C, i] = hi - _GOLDEN32 * (hi - lo)
    state[D, i] = lo + _GOLDEN32 * (hi - lo)
    state[BEST_Z, i] = cands[j]
    state[BEST_F, i] = np.inf
    state[Z_NEXT, i] = cands[j]
    state[PHASE, i] = _WAIT_START


def golden_advance(state, i, loss):
    """Take the loss at ``state[Z_NEXT, i]`` and choose the next depth to try.

    The order of evaluations is the textbook one: the grid point, the two
    interior points ``c < d``, then one new point per step, the bracket
    shrinking to ``[lo, d]`` when ``f(c) <= f(d)`` and to ``[c, hi]``
    otherwise. Every evaluated point competes for ``BEST_Z``.
    """
    z = state[Z_NEXT, i]
    if loss < state[BEST_F, i]:
        state[BEST_F, i] = loss
        state[BEST_Z, i] = z
    phase = state[PHASE, i]
    if phase == _WAIT_START:
        state[Z_NEXT, i] = state[C, i]
        state[PHASE, i] = _WAIT_C
        return
    if phase == _WAIT_C:
        state[FC, i] = loss
        state[Z_NEXT, i] = state[D, i]
        state[PHASE, i] = _WAIT_D
        return
    if phase == _WAIT_NEW_C:
        state[FC, i] = loss
    else:  # the loss of d, the first one or a new one
        state[FD, i] = loss
    lo = state[LO, i]
    hi = state[HI, i]
    if state[FC, i] <= state[FD, i]:  # the minimum lies in [lo, d]
        hi = state[D, i]
        state[D, i] = state[C, i]
        state[FD, i] = state[FC, i]
        state[C, i] = hi - _GOLDEN32 * (hi - lo)
        state[Z_NEXT, i] = state[C, i]
        state[PHASE, i] = _WAIT_NEW_C
    else:                             # the minimum lies in [c, hi]
        lo = state[C, i]
        state[C, i] = state[D, i]
        state[FC, i] = state[FD, i]
        state[D, i] = lo + _GOLDEN32 * (hi - lo)
        state[Z_NEXT, i] = state[D, i]
        state[PHASE, i] = _WAIT_NEW_D
    state[LO, i] = lo
    state[HI, i] = hi


def tv_grad_at(x, y, xx, out):
    """Forward differences of every channel of ``x`` (C, H, W) at ``(y, xx)`` into ``out`` (2, C, H, W).

    ``out[0]`` along rows, ``out[1]`` along columns, zero at the last row
    or column (the image does not continue: Neumann boundary).
    """
    n_c, height, width = x.shape
    for c in range(n_c):
        v = x[c, y, xx]
        out[0, c, y, xx] = x[c, y + 1, xx] - v if y + 1 < height else 0.0
        out[1, c, y, xx] = x[c, y, xx + 1] - v if xx + 1 < width else 0.0


def tv_div_at(p, c, y, xx):
    """The divergence of ``p`` (2, C, H, W) at ``(c, y, xx)``: minus the adjoint of :func:`tv_grad_at`."""
    height, width = p.shape[2], p.shape[3]
    d = 0.0
    if y + 1 < height:
        d += p[0, c, y, xx]
    if y > 0:
        d -= p[0, c, y - 1, xx]
    if xx + 1 < width:
        d += p[1, c, y, xx]
    if xx > 0:
        d -= p[1, c, y, xx - 1]
    return d


def tv_norm_at(g, y, xx):
    """``sqrt(sum over directions and channels of g^2)`` at one pixel of a (2, C, H, W) field."""
    acc = 0.0
    for d in range(2):
        for c in range(g.shape[1]):
            v = g[d, c, y, xx]
            acc += v * v
    return math.sqrt(acc)


def tv_project_at(p, y, xx, bound):
    """Scale ``p`` (2, C, H, W) at one pixel onto the ball of radius ``bound``: the dual of vectorial TV."""
    acc = 0.0  # tv_norm_at, written out: a device function cannot call a plain helper
    for d in range(2):
        for c in range(p.shape[1]):
            v = p[d, c, y, xx]
            acc += v * v
    norm = math.sqrt(acc)
    if norm > bound:
        s = bound / norm
        for d in range(2):
            for c in range(p.shape[1]):
                p[d, c, y, xx] *= s


def fold_min(volume, n0, best, index, i):
    """Fold candidates ``n0, n0 + 1, ...`` (rows of ``volume``) into pixel ``i``'s running minimum.

    ``n0 == 0`` starts the minimum: ``best`` and ``index`` are written, not
    read (so they need no filling first). Strict comparison: of equal
    losses the first candidate wins.
    """
    if n0 == 0:
        cur = np.float32(np.inf)
        cur_i = 0
    else:
        cur = best[i]
        cur_i = index[i]
    for j in range(volume.shape[0]):
        v = volume[j, i]
        if v < cur:
            cur = v
            cur_i = n0 + j
    best[i] = cur
    index[i] = cur_i


def keep_better(depth, loss, prev_depth, prev_loss, kept, i):
    """The safeguard at pixel ``i``: keep the previous depth if its loss is lower."""
    if prev_loss[i] < loss[i]:
        depth[i] = prev_depth[i]
        loss[i] = prev_loss[i]
        kept[i] = True
    else:
        kept[i] = False


def gaussian_taps(radius, kernel_size):
    """Normalised 1-D Gaussian taps for radii of any shape, on the host.

    Returns float32 ``radius.shape + (kernel_size,)``; the taps of each
    radius sum to 1 over the window. The host counterpart of the per-pixel
    weights the engines compute with :func:`gaussian_exponent`.
    """
    sigma = np.maximum(np.asarray(radius, dtype=np.float64), float(MIN_SIGMA))[..., None]
    offsets = np.arange(kernel_size, dtype=np.float64) - kernel_size // 2
    g = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (g / g.sum(-1, keepdims=True)).astype(np.float32)


def disc_rows(radius, kernel_size):
    """Row half-widths of the model's disc for radii of any shape, on the host.

    Returns float64 ``radius.shape + (kernel_size,)`` (see
    :func:`disc_half_width`); row ``a`` is offset ``a - kernel_size // 2``.
    """
    r = np.asarray(radius, dtype=np.float64)
    half = kernel_size // 2
    out = np.empty(r.shape + (kernel_size,))
    flat_r, flat_out = r.reshape(-1), out.reshape(-1, kernel_size)
    for i, ri in enumerate(flat_r):
        for a in range(kernel_size):
            flat_out[i, a] = disc_half_width(float(ri), a - half, half)
    return out


def disc_bank_rows(radius, kernel_size):
    """Row half-widths and ``1 / area`` of the model's disc for a 1-D array of radii, on the host.

    Returns float32 ``(U, K)`` (:func:`disc_rows`) and ``(U,)``: every row
    ``a`` is a box of width ``2 * hw[a]``, so the area is their sum. What the
    engines' constant-depth blur banks read.
    """
    hw = disc_rows(radius, kernel_size)
    return hw.astype(np.float32), (1.0 / (2.0 * hw.sum(-1))).astype(np.float32)


def psf_taps(radius, kernel_size, psf):
    """The model's 2-D PSF in a ``kernel_size`` window, for radii of any shape, on the host.

    Returns float32 ``radius.shape + (K, K)``, each summing to 1: the outer
    product of :func:`gaussian_taps` for ``"gaussian"``, the row boxes of
    :func:`disc_rows` for ``"disc"``.
    """
    if psf == "gaussian":
        g = gaussian_taps(radius, kernel_size)
        return g[..., :, None] * g[..., None, :]
    hw = disc_rows(radius, kernel_size)[..., :, None]
    offsets = np.arange(kernel_size, dtype=np.float64) - kernel_size // 2
    cover = np.clip(np.minimum(offsets + 0.5, hw) - np.maximum(offsets - 0.5, -hw), 0.0, 1.0)
    return (cover / cover.sum(axis=(-2, -1), keepdims=True)).astype(np.float32)


def golden_steps(cands, depth_tol):
    """Steps that shrink the widest bracket ``[cands[j-1], cands[j+1]]`` below ``depth_tol``."""
    n = cands.size
    j = np.arange(n)
    width = float(np.max(cands[np.minimum(j + 1, n - 1)] - cands[np.maximum(j - 1, 0)]))
    if width <= depth_tol:
        return 0
    return math.ceil(math.log(depth_tol / width) / math.log(GOLDEN))
