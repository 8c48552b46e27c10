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

It is a prior, not a measurement: it helps where depth edges follow image
edges and the estimate is noisy, and it hurts where they do not (a texture
unrelated to the depth layout) or where the estimate is already exact.
``bench/noise.py`` measures both.
"""

from __future__ import annotations

import numba
import numpy as np

from . import _validate as V

__all__ = ["fill_depth"]


@numba.njit(parallel=True, fastmath=True, cache=True)
def _fill_kernel(depth, precision, image, radius, spatial_scale, color_scale, out):
    height, width = depth.shape
    n_c = image.shape[2]
    for y in numba.prange(height):
        for x in range(width):
            num = 0.0
            den = 0.0
            for dy in range(-radius, radius + 1):
                # beyond the border the nearest pixel stands in (edge padding)
                qy = min(max(y + dy, 0), height - 1)
                for dx in range(-radius, radius + 1):
                    qx = min(max(x + dx, 0), width - 1)
                    color = 0.0
                    for c in range(n_c):
                        diff = image[qy, qx, c] - image[y, x, c]
                        color += diff * diff
                    weight = np.exp(-(dy * dy + dx * dx) * spatial_scale - color * color_scale) \
                        * precision[qy, qx]
                    num += weight * depth[qy, qx]
                    den += weight
            out[y, x] = num / den


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
        Half-width of the square neighbourhood, pixels; the spatial weight
        is a Gaussian of standard deviation ``radius / 2``.
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
    d = V.as_depth(depth, "depth")
    std = V.as_numeric_array(depth_std, "depth_std")
    if std.shape != d.shape:
        raise ValueError(f"depth_std has shape {std.shape}, expected {d.shape} like depth")
    if not np.all(np.isfinite(std)) or np.any(std < 0):
        raise ValueError("depth_std must be finite and non-negative (metres)")
    guide, _ = V.as_image(image, "image")
    if guide.shape[:2] != d.shape:
        raise ValueError(f"image has shape {guide.shape[:2]}, expected {d.shape} like depth")
    radius = V.as_positive_int(radius, "radius", minimum=1)
    sigma_color = V.as_real(sigma_color, "sigma_color", above=0.0)
    std_floor = V.as_real(std_floor, "std_floor", above=0.0)
    precision = (1.0 / (np.square(std.astype(np.float64)) + std_floor ** 2)).astype(np.float32)
    out = np.empty_like(d)
    _fill_kernel(d, precision, np.ascontiguousarray(guide), radius,
                 np.float32(1.0 / (2.0 * (radius / 2.0) ** 2)),
                 np.float32(1.0 / (2.0 * sigma_color ** 2)), out)
    return out
