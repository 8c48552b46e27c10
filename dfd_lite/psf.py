"""Point-spread functions as images: what a defocused point looks like on the sensor.

These are shift-invariant 2-D kernels for one blur radius, computed with
care (supersampled pixel coverage for the disc, the Gaussian integrated
over each pixel) and never truncated. The physical renderer
(:mod:`dfd_lite.render`) and the calibration use them; the solver's
operator (:mod:`dfd_lite.blur`) has its own fast per-pixel form, and the
tests compare the two.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from . import _validate as V
from .optics import PSF_SHAPES

__all__ = ["disc_psf", "gaussian_psf", "psf_image", "psf_half_width"]


def _radius(radius, name="radius"):
    r = V.as_real(radius, name, at_least=0.0)
    if r > 1e4:
        raise ValueError(f"{name} must be at most 1e4 pixels, got {r:g}")
    return r


def psf_half_width(radius: float, psf: str) -> int:
    """Half the side of a window that holds the whole PSF, in pixels.

    ``ceil(r + 1)`` for the disc (its edge pixels included), ``ceil(4 sigma)``
    for the Gaussian (the tails beyond hold less than 1e-4 of the energy), at
    least 1.
    """
    if psf == "disc":
        return max(1, math.ceil(radius + 1.0))
    return max(1, math.ceil(4.0 * radius))


def disc_psf(radius, *, supersample: int = 8):
    """A uniform disc of the given radius, anti-aliased by pixel coverage.

    Each pixel's weight is the fraction of ``supersample**2`` points spread
    evenly over its area that fall inside the disc; the kernel is then
    normalised to sum to 1. A radius too small to cover any sample point
    gives a single pixel (a delta).

    Parameters
    ----------
    radius : float
        Disc radius in pixels (>= 0).
    supersample : int
        Sample points per pixel along each axis.

    Returns
    -------
    ndarray, shape (K, K), float64
        ``K = 2 ceil(radius + 1) + 1``, centred.
    """
    r = _radius(radius)
    s = V.as_positive_int(supersample, "supersample")
    half = psf_half_width(r, "disc")
    sub = (np.arange(s) + 0.5) / s - 0.5                       # sample offsets in a pixel
    coords = (np.arange(-half, half + 1)[:, None] + sub[None, :]).reshape(-1)
    inside = (coords[:, None] ** 2 + coords[None, :] ** 2) <= r * r
    k = 2 * half + 1
    cover = inside.reshape(k, s, k, s).mean(axis=(1, 3))
    total = cover.sum()
    if total == 0:
        cover[half, half] = 1.0
        total = 1.0
    return cover / total


def gaussian_psf(sigma, *, truncate: float = 4.0):
    """A 2-D Gaussian of standard deviation ``sigma``, integrated over each pixel.

    Parameters
    ----------
    sigma : float
        Standard deviation in pixels (>= 0; 0 gives a delta).
    truncate : float
        Half-width of the window in standard deviations.

    Returns
    -------
    ndarray, shape (K, K), float64
        ``K = 2 ceil(truncate sigma) + 1`` (at least 3), sums to 1.
    """
    sig = _radius(sigma, "sigma")
    trunc = V.as_real(truncate, "truncate", above=0.0)
    half = max(1, math.ceil(trunc * sig))
    edges = np.arange(-half, half + 2) - 0.5
    if sig == 0:
        row = (np.arange(-half, half + 1) == 0).astype(np.float64)
    else:
        row = np.diff(erf(edges / (math.sqrt(2.0) * sig)))       # mass of each pixel
    row = row / row.sum()
    return np.outer(row, row)


def psf_image(radius, psf: str, *, supersample: int = 8):
    """The 2-D kernel of a PSF of the given shape and size (see
    :data:`~dfd_lite.optics.PSF_SHAPES`)."""
    if psf not in PSF_SHAPES:
        raise ValueError(f"psf must be one of {PSF_SHAPES}, got {psf!r}")
    if psf == "disc":
        return disc_psf(radius, supersample=supersample)
    return gaussian_psf(radius)
