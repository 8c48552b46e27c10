"""Error measures for depth maps and images."""

from __future__ import annotations

import numpy as np

from . import _validate as V

__all__ = ["depth_metrics", "psnr"]


def _valid(pred, gt, mask, name_pred, name_gt):
    p = V.as_numeric_array(pred, name_pred).astype(np.float64)
    g = V.as_numeric_array(gt, name_gt).astype(np.float64)
    if p.shape != g.shape:
        raise ValueError(f"{name_pred} has shape {p.shape} but {name_gt} has {g.shape}")
    valid = np.isfinite(g) & np.isfinite(p)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != g.shape:
            raise ValueError(f"mask has shape {m.shape}, expected {g.shape}")
        valid &= m.astype(bool)
    if not valid.any():
        raise ValueError("no valid pixels to compare (check mask and NaNs)")
    return p[valid], g[valid]


def depth_metrics(pred, gt, *, mask=None):
    """Standard depth-estimation errors over the valid pixels.

    Parameters
    ----------
    pred, gt : array_like, shape (H, W)
        Predicted and true depth in metres.
    mask : array_like of bool, shape (H, W), optional
        Pixels to include; NaN or inf in ``gt`` are always excluded.

    Returns
    -------
    dict
        ``rmse`` (m), ``mae`` (m), ``absrel`` (mean ``|p - g| / g``), and
        ``delta1``, ``delta2``, ``delta3``: the fraction of pixels with
        ``max(p / g, g / p) < 1.25 ** k``.
    """
    p, g = _valid(pred, gt, mask, "pred", "gt")
    if np.any(g <= 0):
        raise ValueError("gt depths must be positive")
    err = p - g
    ratio = np.maximum(p / g, g / np.maximum(p, 1e-12))
    out = {
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "mae": float(np.mean(np.abs(err))),
        "absrel": float(np.mean(np.abs(err) / g)),
    }
    for k in (1, 2, 3):
        out[f"delta{k}"] = float(np.mean(ratio < 1.25 ** k))
    return out


def psnr(image, reference, *, data_range: float = 1.0, mask=None):
    """Peak signal-to-noise ratio in dB.

    Parameters
    ----------
    image, reference : array_like, shape (H, W) or (H, W, C)
    data_range : float
        Peak value (1.0 for [0, 1] images, 255 for 8-bit).
    mask : array_like of bool, shape (H, W), optional

    Returns
    -------
    float
    """
    data_range = V.as_real(data_range, "data_range", above=0.0)
    a = V.as_numeric_array(image, "image").astype(np.float64)
    b = V.as_numeric_array(reference, "reference").astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"image has shape {a.shape} but reference has {b.shape}")
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != a.shape[:2]:
            raise ValueError(f"mask has shape {m.shape}, expected {a.shape[:2]}")
        a, b = a[m], b[m]
    mse = float(np.mean((a - b) ** 2))
    # in logs: data_range ** 2 overflows for absurd ranges
    return float("inf") if mse == 0 else float(20 * np.log10(data_range) - 10 * np.log10(mse))
