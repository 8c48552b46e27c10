"""The depth step: all-in-focus image fixed, search each pixel's depth.

In the gather model the prediction at pixel ``p`` depends on the depth at
``p`` alone, so the depth problem splits into one 1-D problem per pixel::

    Z(p) = argmin_Z  sum_i sum_c (b_i(p) - [A(Z) x]_i(p))^2

Solved in three moves:

1. :func:`grid_search` - try ``num_Z`` candidate depths. Every candidate is
   the same depth everywhere, so each is a separable blur; a running
   minimum keeps memory at a few ``(H, W)`` maps.
2. :func:`golden_section_refine` - golden-section search inside
   ``[Z_{k-1}, Z_{k+1}]`` around the grid minimum, all pixels at once: each
   step is one spatially varying forward pass.
3. A safeguard keeps the previous depth wherever it has the lower loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import scipy.ndimage as ndi

from . import _validate as V
from .blur import _pad, forward_planar, gaussian_weights, planar_weights
from .optics import Camera, check_kernel_size, coc_radius, default_kernel_size

__all__ = [
    "depth_candidates",
    "golden_section_search",
    "pixel_loss",
    "depth_loss_volume",
    "grid_search",
    "golden_section_refine",
    "depth_step",
    "DepthResult",
]

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618...: the bracket shrinks by this per step


def depth_candidates(depth_range, num_depths: int = 100, spacing: str = "linear"):
    """Candidate depths for the grid search, in metres.

    Parameters
    ----------
    depth_range : (float, float)
        ``(near, far)`` in metres, near < far.
    num_depths : int
        Number of candidates (>= 2).
    spacing : {"linear", "inverse"}
        ``"linear"`` as in the reference; ``"inverse"`` spaces candidates
        evenly in 1/Z, which matches how blur changes with depth.

    Returns
    -------
    ndarray, shape (num_depths,), float64, increasing
    """
    lo, hi = V.as_depth_range(depth_range)
    n = V.as_positive_int(num_depths, "num_depths", minimum=2)
    if spacing == "linear":
        return np.linspace(lo, hi, n)
    if spacing == "inverse":
        return np.sort(1.0 / np.linspace(1.0 / lo, 1.0 / hi, n))
    raise ValueError(f"spacing must be 'linear' or 'inverse', got {spacing!r}")


def golden_section_search(fn, lo: float, hi: float, tol: float = 1e-2, max_iter: int = 200):
    """Minimise a 1-D function on ``[lo, hi]`` by golden-section search.

    The plain scalar algorithm, for teaching and as the oracle of the
    vectorised :func:`golden_section_refine`. Assumes ``fn`` is unimodal on
    the bracket; otherwise it finds a local minimum.

    Parameters
    ----------
    fn : callable
        ``fn(z) -> float``.
    lo, hi : float
        The bracket.
    tol : float
        Stop when the bracket is narrower than this.
    max_iter : int

    Returns
    -------
    (float, float)
        The best point evaluated and its value.
    """
    if not hi > lo:
        raise ValueError(f"need lo < hi, got lo={lo!r}, hi={hi!r}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}")
    c = hi - GOLDEN * (hi - lo)
    d = lo + GOLDEN * (hi - lo)
    fc, fd = fn(c), fn(d)
    for _ in range(max_iter):
        if hi - lo <= tol:
            break
        if fc <= fd:  # the minimum is in [lo, d]
            hi, d, fd = d, c, fc
            c = hi - GOLDEN * (hi - lo)
            fc = fn(c)
        else:         # the minimum is in [c, hi]
            lo, c, fc = c, d, fd
            d = lo + GOLDEN * (hi - lo)
            fd = fn(d)
    return (c, fc) if fc <= fd else (d, fd)


# ---------------------------------------------------------------------------
# Numba kernels (planar layout, see blur.py)
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


def _pixel_loss_planar(pred, b):
    out = np.empty(b.shape[2:], dtype=np.float32)
    _sq_err_kernel(pred, b, out)
    return out


@numba.njit(parallel=True, fastmath=True, cache=True)
def _constant_depth_loss_kernel(xpad, b, wk, use, loss):
    # Adds to loss[y, x] the squared error of every slice f with use[f],
    # blurring with the 1-D weights wk[f] along columns, then along rows.
    n_f, n_c, height, width = b.shape
    k = wk.shape[1]
    wide = width + k - 1
    for y in numba.prange(height):
        v = np.empty(wide, dtype=np.float32)
        pred = np.empty(width, dtype=np.float32)
        lrow = loss[y]
        for f in range(n_f):
            if not use[f]:
                continue
            for c in range(n_c):
                v[:] = 0.0
                for a in range(k):
                    wa = wk[f, a]
                    src = xpad[c, y + a]
                    for j in range(wide):
                        v[j] += wa * src[j]
                pred[:] = 0.0
                for bb in range(k):
                    wb = wk[f, bb]
                    for xx in range(width):
                        pred[xx] += wb * v[xx + bb]
                brow = b[f, c, y]
                for xx in range(width):
                    d = pred[xx] - brow[xx]
                    lrow[xx] += d * d


def _prepare(aif, stack, camera, kernel_size):
    V.check_camera(camera)
    b, _ = V.as_stack(stack, camera)
    x, _ = V.as_image(aif, "aif")
    if x.shape != b.shape[1:]:
        raise ValueError(f"aif has shape {x.shape} but the stack's images are {b.shape[1:]}")
    h, w = x.shape[:2]
    k = check_kernel_size(default_kernel_size(h, w) if kernel_size is None else kernel_size)
    return (np.ascontiguousarray(np.moveaxis(x, -1, 0)),
            np.ascontiguousarray(np.moveaxis(b, -1, 1)), k)


def _check_window(window):
    window = V.as_positive_int(window, "window")
    if window % 2 == 0:
        raise ValueError(f"window must be odd, got {window}")
    return window


def _box(loss, window):
    return loss if window == 1 else ndi.uniform_filter(loss, window, mode="nearest")


class _ConstantDepthLoss:
    """Per-pixel loss of a constant depth, for many candidate depths.

    Slices whose radius is clamped to ``min_radius`` give the same blur for
    every such candidate: their loss is computed once and reused.
    """

    def __init__(self, x, b, camera, k):
        self.x, self.b, self.camera, self.k = x, b, camera, k
        self.xpad = _pad(x, k // 2)
        n_f = camera.num_planes
        rmin = np.full(n_f, camera.min_radius)
        self.w_min = gaussian_weights(rmin, k)
        self.clamped_loss = np.zeros((n_f,) + b.shape[2:], dtype=np.float32)
        if camera.min_radius > 0:
            for f in range(n_f):
                use = np.zeros(n_f, dtype=np.bool_)
                use[f] = True
                _constant_depth_loss_kernel(self.xpad, b, self.w_min, use, self.clamped_loss[f])

    def __call__(self, z):
        raw = coc_radius(float(z), self.camera, clamp=False)
        clamped = raw <= self.camera.min_radius
        loss = np.zeros(self.b.shape[2:], dtype=np.float32)
        if self.camera.min_radius > 0:
            for f in np.flatnonzero(clamped):
                loss += self.clamped_loss[f]
        else:
            clamped[:] = False
        wk = gaussian_weights(np.maximum(raw, self.camera.min_radius), self.k)
        _constant_depth_loss_kernel(self.xpad, self.b, wk, ~clamped, loss)
        return loss


def pixel_loss(aif, stack, depth, camera: Camera, kernel_size=None):
    """Per-pixel data loss ``sum_i sum_c (b_i(p) - [A(Z) x]_i(p))^2``.

    Parameters
    ----------
    aif : array_like, shape (H, W, C) or (H, W)
    stack : array_like, shape (F, H, W, C) or (F, H, W)
    depth : array_like, shape (H, W)
    camera : Camera
    kernel_size : int, optional

    Returns
    -------
    ndarray, shape (H, W), float32
    """
    x, b, k = _prepare(aif, stack, camera, kernel_size)
    z = V.as_depth(depth, shape=x.shape[1:])
    return _pixel_loss_planar(forward_planar(x, planar_weights(z, camera, k)), b)


def depth_loss_volume(aif, stack, camera: Camera, candidates, kernel_size=None):
    """The per-pixel loss of every candidate depth, as one volume.

    For teaching and plots on small images: the solver never stores this.

    Returns
    -------
    ndarray, shape (len(candidates), H, W), float32
    """
    x, b, k = _prepare(aif, stack, camera, kernel_size)
    cands = np.asarray(candidates, dtype=np.float64)
    if cands.ndim != 1 or cands.size == 0 or np.any(cands <= 0) or not np.all(np.isfinite(cands)):
        raise ValueError("candidates must be a non-empty 1-D array of positive depths")
    loss_of = _ConstantDepthLoss(x, b, camera, k)
    return np.stack([loss_of(z) for z in cands])


def _grid_search_planar(x, b, camera, k, cands, window):
    loss_of = _ConstantDepthLoss(x, b, camera, k)
    best = np.full(b.shape[2:], np.inf, dtype=np.float32)
    index = np.zeros(b.shape[2:], dtype=np.int64)
    for i, z in enumerate(cands):
        loss = _box(loss_of(z), window)
        better = loss < best
        best[better] = loss[better]
        index[better] = i
    return index, best


def grid_search(aif, stack, camera: Camera, candidates, kernel_size=None, window: int = 1,
                backend: str = "auto"):
    """Best candidate depth at every pixel.

    Parameters
    ----------
    aif : array_like, shape (H, W, C) or (H, W)
        Current all-in-focus estimate.
    stack : array_like, shape (F, H, W, C) or (F, H, W)
    camera : Camera
    candidates : array_like, shape (N,)
        Increasing candidate depths in metres (:func:`depth_candidates`).
    kernel_size : int, optional
    window : int
        Odd side of a box over which the per-pixel loss is averaged before
        the comparison (1 = no averaging). Larger windows steady the depth
        in weakly textured regions at the price of detail.
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    index : ndarray, shape (H, W), int64
        Index of the best candidate.
    loss : ndarray, shape (H, W), float32
        Its (windowed) loss.
    """
    from .backend import resolve_backend

    x, b, k = _prepare(aif, stack, camera, kernel_size)
    cands = _check_candidates(candidates)
    window = _check_window(window)
    if resolve_backend(backend) == "cuda":
        from . import cuda as _cuda
        return _cuda.grid_search_planar(x, b, camera, k, cands, window)
    return _grid_search_planar(x, b, camera, k, cands, window)


def _check_candidates(candidates):
    cands = np.asarray(candidates, dtype=np.float64)
    if cands.ndim != 1 or cands.size < 2:
        raise ValueError("candidates must be a 1-D array of at least 2 depths")
    if not np.all(np.isfinite(cands)) or np.any(cands <= 0) or np.any(np.diff(cands) <= 0):
        raise ValueError("candidates must be finite, positive and strictly increasing")
    return cands


def _golden_planar(x, b, camera, k, lo, hi, z0, f0, tol):
    """Vectorised golden-section search over all pixels at once.

    Returns the best depth evaluated at each pixel (``z0`` included) and
    its loss, so the result is never worse than the starting point.
    """
    def loss_at(z):
        return _pixel_loss_planar(forward_planar(x, planar_weights(z, camera, k)), b)

    lo = lo.astype(np.float64)
    hi = hi.astype(np.float64)
    best_z, best_f = z0.astype(np.float64), f0.copy()
    c = hi - GOLDEN * (hi - lo)
    d = lo + GOLDEN * (hi - lo)
    fc, fd = loss_at(c), loss_at(d)
    width = float(np.max(hi - lo)) if lo.size else 0.0
    steps = max(0, math.ceil(math.log(tol / width) / math.log(GOLDEN))) if width > tol else 0
    for _ in range(steps):
        left = fc <= fd  # the minimum lies in [lo, d] here, in [c, hi] elsewhere
        hi = np.where(left, d, hi)
        lo = np.where(left, lo, c)
        new_c = np.where(left, hi - GOLDEN * (hi - lo), d)
        new_d = np.where(left, c, lo + GOLDEN * (hi - lo))
        f_keep = np.where(left, fc, fd)
        z_new = np.where(left, new_c, new_d)
        f_new = loss_at(z_new)
        fc = np.where(left, f_new, f_keep)
        fd = np.where(left, f_keep, f_new)
        c, d = new_c, new_d
    for z, f in ((c, fc), (d, fd)):
        better = f < best_f
        best_z[better] = z[better]
        best_f[better] = f[better]
    return best_z, best_f


def golden_section_refine(aif, stack, camera: Camera, candidates, index, kernel_size=None,
                          tol: float = 1e-2, backend: str = "auto"):
    """Refine grid-search depths by golden-section search in ``[Z_{k-1}, Z_{k+1}]``.

    Parameters
    ----------
    aif, stack, camera, candidates, kernel_size
        As for :func:`grid_search`.
    index : array_like, shape (H, W), int
        The grid minimum at each pixel.
    tol : float
        Stop when every bracket is narrower than this (metres).
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    depth : ndarray, shape (H, W), float32
    loss : ndarray, shape (H, W), float32
        Per-pixel loss at ``depth``; never above the loss at the grid depth.
    """
    from .backend import resolve_backend

    x, b, k = _prepare(aif, stack, camera, kernel_size)
    cands = _check_candidates(candidates)
    idx = np.asarray(index)
    if idx.shape != x.shape[1:] or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"index must be an integer array of shape {x.shape[1:]}")
    if idx.min() < 0 or idx.max() >= cands.size:
        raise ValueError("index is out of range of candidates")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}")
    if resolve_backend(backend) == "cuda":
        from . import cuda as _cuda
        return _cuda.golden_refine_planar(x, b, camera, k, cands, idx, tol)
    return _refine_planar(x, b, camera, k, cands, idx, tol)


def _refine_planar(x, b, camera, k, cands, idx, tol):
    n = cands.size
    lo = cands[np.maximum(idx - 1, 0)]
    hi = cands[np.minimum(idx + 1, n - 1)]
    z0 = cands[idx]
    f0 = _pixel_loss_planar(forward_planar(x, planar_weights(z0, camera, k)), b)
    z, f = _golden_planar(x, b, camera, k, lo, hi, z0, f0, tol)
    return z.astype(np.float32), f


@dataclass
class DepthResult:
    """Output of :func:`depth_step`.

    Attributes
    ----------
    depth : ndarray, shape (H, W), float32
    loss : ndarray, shape (H, W), float32
        Per-pixel loss at ``depth``.
    grid_index : ndarray, shape (H, W), int64
        The grid-search minimum before refinement.
    kept_previous : ndarray, shape (H, W), bool
        Where the safeguard kept the previous depth.
    """

    depth: np.ndarray
    loss: np.ndarray
    grid_index: np.ndarray
    kept_previous: np.ndarray


def depth_step(aif, stack, camera: Camera, candidates, kernel_size=None, window: int = 1,
               tol: float = 1e-2, previous_depth=None, refine: bool = True,
               backend: str = "auto"):
    """One depth update: grid search, golden-section refinement, safeguard.

    Parameters
    ----------
    aif : array_like, shape (H, W, C) or (H, W)
    stack : array_like, shape (F, H, W, C) or (F, H, W)
    camera : Camera
    candidates : array_like, shape (N,)
    kernel_size : int, optional
    window : int
        Box window of the grid-search loss (see :func:`grid_search`). The
        refinement and the safeguard use the per-pixel loss.
    tol : float
        Golden-section tolerance in metres.
    previous_depth : array_like, shape (H, W), optional
        Kept wherever its loss under this ``aif`` is lower, so the loss of
        the depth step never increases.
    refine : bool
        Skip the golden-section step when False.
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    DepthResult
    """
    from .backend import resolve_backend

    x, b, k = _prepare(aif, stack, camera, kernel_size)
    cands = _check_candidates(candidates)
    window = _check_window(window)
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}")
    prev = None if previous_depth is None else V.as_depth(previous_depth, "previous_depth",
                                                          shape=x.shape[1:])
    if resolve_backend(backend) == "cuda":
        from . import cuda as _cuda
        return _cuda.depth_step_planar(x, b, camera, k, cands, window, tol, prev, refine)
    return _depth_step_planar(x, b, camera, k, cands, window, tol, prev, refine)


def _depth_step_planar(x, b, camera, k, cands, window, tol, prev, refine):
    idx, _ = _grid_search_planar(x, b, camera, k, cands, window)
    if refine:
        depth, loss = _refine_planar(x, b, camera, k, cands, idx, tol)
    else:
        depth = cands[idx].astype(np.float32)
        loss = _pixel_loss_planar(forward_planar(x, planar_weights(depth, camera, k)), b)
    return apply_safeguard(x, b, camera, k, depth, loss, idx, prev)


def apply_safeguard(x, b, camera, k, depth, loss, idx, prev):
    """Keep ``prev`` wherever its loss is lower (planar inputs)."""
    kept = np.zeros(depth.shape, dtype=bool)
    if prev is not None:
        prev_loss = _pixel_loss_planar(forward_planar(x, planar_weights(prev, camera, k)), b)
        kept = prev_loss < loss
        depth = np.where(kept, prev, depth).astype(np.float32)
        loss = np.where(kept, prev_loss, loss)
    return DepthResult(depth, loss, idx, kept)
