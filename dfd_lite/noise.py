"""The noise level of a focal stack.

Every defocused slice is smooth at the scale of a pixel, so what varies
from pixel to pixel at the finest scale is mostly sensor noise. The
estimator is scikit-image's :func:`skimage.restoration.estimate_sigma`
(Donoho and Johnstone's wavelet rule: the median absolute value of the
finest diagonal wavelet coefficients over 0.6745), applied to every slice;
the median over slices is robust to one slice that is sharp everywhere.
"""

from __future__ import annotations

import numpy as np

from . import _validate as V

__all__ = ["estimate_noise"]


def estimate_noise(stack) -> float:
    """Standard deviation of the additive noise in a focal stack, in its own units.

    Parameters
    ----------
    stack : array_like, shape (F, H, W, C) or (F, H, W)
        uint8/uint16 stacks are scaled to [0, 1] first, as everywhere in
        the package, so the estimate is in those units.

    Returns
    -------
    float
        The median over slices of the per-slice estimate (channels
        averaged). On the bundled scenes it is within a few per cent of the
        true standard deviation for 0.2 to 3 % noise; a noise-free stack
        gives a small value set by the finest image detail (about 1e-4 on
        Middlebury, 1e-3 on the synthetic texture).

    Examples
    --------
    >>> import dfd_lite as dl
    >>> scene = dl.synthetic_scene((64, 64))
    >>> stack = dl.focal_stack(scene, dl.Camera.nyuv2(), noise_std=0.01)
    >>> round(dl.estimate_noise(stack), 3)
    0.01
    """
    from skimage.restoration import estimate_sigma

    b, gray = V.as_stack(stack)
    if min(b.shape[1:3]) < 4:
        raise ValueError(f"stack images must be at least 4 x 4 pixels to estimate noise, "
                         f"got {b.shape[1:3]}")
    per_slice = [estimate_sigma(b[f, ..., 0], channel_axis=None) if gray else
                 estimate_sigma(b[f], channel_axis=-1, average_sigmas=True)
                 for f in range(b.shape[0])]
    # scikit-image ignores zero wavelet coefficients, so a slice without any
    # fine detail (a constant image) has no estimate: it shows no noise
    return float(np.median(np.nan_to_num(per_slice, nan=0.0)))
