"""Confidence-weighted, edge-aware filling of a depth map.

Where a stack says little about the depth (textureless patches, depths the
blur barely tells apart, noise), the solver's estimate scatters, and its
``SolveResult.depth_std`` is large. :func:`fill_depth`
replaces every depth by a weighted mean over a neighbourhood, each
neighbour counted by its precision ``1 / depth_std^2`` (a confident pixel
outvotes an unsure one), by its distance, and by how similar the image is
there (a joint bilateral weight: the mean does not reach across an edge of
the image, which is where depth edges usually are). A pixel much more
confident than its neighbours keeps its own depth.
:func:`weighted_median_depth` takes the weighted median instead of the
mean, with the same weights: robust to outliers, and sharp at depth edges.

It is a prior, not a measurement: it helps where depth edges follow image
edges and the estimate is noisy, and it hurts where they do not (a texture
unrelated to the depth layout) or where the estimate is already exact.
``bench/noise.py`` measures both.
"""

from __future__ import annotations

import numba
import numpy as np

from . import _validate as V

__all__ = ["fill_depth", "weighted_median_depth", "MAX_RADIUS"]

#: The largest neighbourhood radius, in pixels, that the filters accept.
#: Each output pixel visits ``(2 radius + 1)^2`` neighbours, 40 401 at this
#: radius (the solve's median uses 81); beyond it a typo would run for hours.
MAX_RADIUS = 100


@numba.njit(fastmath=True, cache=True)
def _neighbourhood(depth, precision, image, y, x, radius, spatial_scale, color_scale, values,
                   weights):
    """The depths around ``(y, x)`` and their joint bilateral weights, into ``values`` and ``weights``."""
    height, width = depth.shape
    n = 0
    for dy in range(-radius, radius + 1):
        # beyond the border the nearest pixel stands in (edge padding)
        qy = min(max(y + dy, 0), height - 1)
        for dx in range(-radius, radius + 1):
            qx = min(max(x + dx, 0), width - 1)
            color = 0.0
            for c in range(image.shape[2]):
                diff = image[qy, qx, c] - image[y, x, c]
                color += diff * diff
            values[n] = depth[qy, qx]
            weights[n] = np.exp(-(dy * dy + dx * dx) * spatial_scale - color * color_scale) \
                * precision[qy, qx]
            n += 1


@numba.njit(parallel=True, fastmath=True, cache=True)
def _filter_kernel(depth, precision, image, radius, spatial_scale, color_scale, median, out):
    """Every depth's weighted mean (``median`` False) or weighted median (True) into ``out``."""
    size = (2 * radius + 1) ** 2
    for y in numba.prange(depth.shape[0]):
        values = np.empty(size, dtype=np.float64)
        weights = np.empty(size, dtype=np.float64)
        for x in range(depth.shape[1]):
            _neighbourhood(depth, precision, image, y, x, radius, spatial_scale, color_scale,
                           values, weights)
            if not median:
                out[y, x] = np.sum(weights * values) / np.sum(weights)
                continue
            # the smallest depth with at least half the weight at or below it
            order = np.argsort(values)
            half = 0.5 * np.sum(weights)
            acc = 0.0
            for i in order:
                acc += weights[i]
                if acc >= half:
                    out[y, x] = values[i]
                    break


def _check_guided_inputs(depth, depth_std, image, radius, sigma_color, std_floor):
    """Validated ``(depth, precision, guide, radius, spatial_scale, color_scale)`` for the kernels."""
    d = V.as_depth(depth, "depth")
    if depth_std is None:
        std = np.zeros_like(d)
    else:
        std = V.as_numeric_array(depth_std, "depth_std")
        if std.shape != d.shape:
            raise ValueError(f"depth_std has shape {std.shape}, expected {d.shape} like depth")
        if not np.all(np.isfinite(std)) or np.any(std < 0):
            raise ValueError("depth_std must be finite and non-negative (metres)")
    guide, _ = V.as_image(image, "image")
    if guide.shape[:2] != d.shape:
        raise ValueError(f"image has shape {guide.shape[:2]}, expected {d.shape} like depth")
    radius = V.as_positive_int(radius, "radius", minimum=1)
    if radius > MAX_RADIUS:
        raise ValueError(f"radius must be at most {MAX_RADIUS} px, got {radius}")
    sigma_color = V.as_real(sigma_color, "sigma_color", above=0.0)
    std_floor = V.as_real(std_floor, "std_floor", above=0.0)
    precision = (1.0 / (np.square(std.astype(np.float64)) + std_floor ** 2)).astype(np.float32)
    return (d, precision, np.ascontiguousarray(guide), radius,
            np.float32(1.0 / (2.0 * (radius / 2.0) ** 2)), np.float32(1.0 / (2.0 * sigma_color ** 2)))


def fill_depth(depth, depth_std, image, *, radius: int = 7, sigma_color: float = 0.1,
               std_floor: float = 0.01):
    """Fill unsure depths from confident neighbours that look alike.

    Parameters
    ----------
    depth : array_like, shape (H, W)
        Depth in metres, finite and positive (``SolveResult.depth``).
    depth_std : array_like, shape (H, W)
        Its uncertainty in metres, finite and non-negative
        (``SolveResult.depth_std``).
    image : array_like, shape (H, W, C) or (H, W)
        The guide, in [0, 1] (``SolveResult.aif``).
    radius : int
        Half-width of the square neighbourhood, pixels, 1 to
        :data:`MAX_RADIUS`; the spatial weight is a Gaussian of standard
        deviation ``radius / 2``.
    sigma_color : float
        Colour difference (Euclidean over channels, image units) at which a
        neighbour's weight falls to ``exp(-1/2)``.
    std_floor : float
        Added in quadrature to ``depth_std`` (metres) before taking the
        precision, so that no pixel's weight is unbounded.

    Returns
    -------
    ndarray, shape (H, W), float32
        The filled depth, metres.
    """
    if depth_std is None:
        raise TypeError("depth_std must be an array of depth uncertainties (metres), got None")
    args = _check_guided_inputs(depth, depth_std, image, radius, sigma_color, std_floor)
    out = np.empty_like(args[0])
    _filter_kernel(*args, False, out)
    return out


def weighted_median_depth(depth, image, *, depth_std=None, radius: int = 4,
                          sigma_color: float = 0.1, std_floor: float = 0.01):
    """Edge-aware weighted median of a depth map.

    Every depth becomes the weighted median of its ``(2 radius + 1)^2``
    neighbourhood, with the joint bilateral weights of :func:`fill_depth`
    (distance, image similarity and, given ``depth_std``, precision): the
    depth ``d`` that minimises ``sum_q w_q |d - d_q|``, where
    :func:`fill_depth` minimises ``sum_q w_q (d - d_q)^2``. The median
    ignores a minority of outliers instead of averaging them in, and never
    invents a depth between two layers: it is the usual last step of
    cost-volume filtering (Hosni et al.), which :func:`~dfd_lite.solve.solve`
    applies to noisy stacks.

    Parameters
    ----------
    depth : array_like, shape (H, W)
        Depth in metres, finite and positive (``SolveResult.depth``).
    image : array_like, shape (H, W, C) or (H, W)
        The guide, in [0, 1] (``SolveResult.aif``).
    depth_std : array_like, shape (H, W), optional
        Uncertainty of ``depth`` in metres, finite and non-negative
        (``SolveResult.depth_std``); each neighbour then also counts by its
        precision. Default: all neighbours equally sure.
    radius, sigma_color, std_floor : int, float, float
        The neighbourhood's half-width (pixels) and the weights' scales, as
        in :func:`fill_depth`.

    Returns
    -------
    ndarray, shape (H, W), float32
        The filtered depth, metres; every value is one of ``depth``'s.
    """
    args = _check_guided_inputs(depth, depth_std, image, radius, sigma_color, std_floor)
    out = np.empty_like(args[0])
    _filter_kernel(*args, True, out)
    return out
