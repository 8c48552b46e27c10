"""Calibrating the blur model from a photographed target.

The thin lens fixes how the blur radius changes with depth, but not how
wide a real lens's PSF is for a given radius: aberrations, diffraction and
the PSF's shape make ``sigma = k r`` with a ``k`` of the camera's own
(Pentland 1987, Subbarao 1988). The usual way to find it is to photograph a
flat, textured target at a known distance with every focus setting of the
stack, and fit.

With the target's depth known, only the blur scale ``k`` (and, optionally,
the residual blur ``min_radius``) and the target's sharp image are unknown.
For a trial ``k`` the sharp image is the least-squares fit to every slice
at once (FISTA on the constant-depth operator); the slices disagree unless
their relative blurs are right, so the fitted residual is smallest at the
true ``k``. A bounded 1-D search (or Nelder-Mead for two parameters)
minimises it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.optimize as sopt

from . import _validate as V
from . import engines
from .aif import power_iteration, run_fista
from .optics import Camera, coc_radius, support_half_width, thin_lens_coefficients

__all__ = ["calibrate_blur", "Calibration"]

#: Largest ``min_radius`` (pixels) that ``fit_min_radius`` will consider.
MAX_FITTED_MIN_RADIUS = 6.0


@dataclass(frozen=True)
class Calibration:
    """Outcome of :func:`calibrate_blur`.

    Attributes
    ----------
    camera : Camera
        The input camera with the fitted ``blur_scale`` (and ``min_radius``).
    blur_scale : float
    min_radius : float
        Pixels (unchanged unless it was fitted).
    residual : float
        RMS misfit of the fitted model per stack value, image units.
    evaluations : int
        Model fits the search made.
    """

    camera: Camera
    blur_scale: float
    min_radius: float
    residual: float
    evaluations: int


def calibrate_blur(stack, camera: Camera, depth, *, fit_min_radius: bool = False,
                   scale_bounds=(0.25, 2.0), crop: int = 64, num_iters: int = 150,
                   backend="cpu"):
    """Fit the blur scale of ``camera`` from a focal stack of a flat target.

    Parameters
    ----------
    stack : array_like, shape (F, H, W, C) or (F, H, W)
        Photographs of a flat, textured target facing the camera, one per
        focus distance of ``camera``. Strong, fine texture (a printed noise
        pattern) gives the sharpest fit.
    camera : Camera
        The optics and focus distances; its ``psf`` is the shape fitted, its
        ``blur_scale`` and ``min_radius`` the starting guess.
    depth : float
        Distance of the target in metres.
    fit_min_radius : bool
        Also fit ``min_radius`` (the blur left in focus). Needs a slice in or
        near focus to be identifiable.
    scale_bounds : (float, float)
        Search interval of the blur scale.
    crop : int
        Side of the central square used (pixels); smaller is faster.
    num_iters : int
        FISTA iterations per trial fit.
    backend : {"auto", "cpu", "cuda"} or engine

    Returns
    -------
    Calibration
    """
    V.check_camera(camera)
    b, _ = V.as_stack(stack, camera)
    z = V.as_real(depth, "depth", above=camera.focal_length)
    crop = V.as_positive_int(crop, "crop", minimum=8)
    num_iters = V.as_positive_int(num_iters, "num_iters")
    try:
        lo, hi = (V.as_real(v, "scale_bounds", above=0.0) for v in scale_bounds)
    except TypeError:
        raise TypeError("scale_bounds must be a pair (lo, hi) of positive numbers") from None
    if not lo < hi:
        raise ValueError(f"scale_bounds must be (lo, hi) with lo < hi, got {scale_bounds!r}")
    if camera.num_planes < 2:
        raise ValueError("calibrate_blur needs at least two focus distances: one slice "
                         "cannot tell the blur scale from the target's own texture")
    h, w = b.shape[1:3]
    side_y, side_x = min(crop, h), min(crop, w)
    y0, x0 = (h - side_y) // 2, (w - side_x) // 2
    data = np.ascontiguousarray(np.moveaxis(b[:, y0:y0 + side_y, x0:x0 + side_x], -1, 1))
    upper = 1.0 if float(data.max()) <= 1.0 else 255.0

    # Each trial's window holds its whole PSF (support_half_width); the sharp
    # image is fitted on a canvas wide enough for the widest trial around
    # the crop (the target continues beyond it), so the crop's edges are
    # modelled, not assumed black. A fitted min_radius is searched up to
    # MAX_FITTED_MIN_RADIUS.
    thin_lens = float(np.max(coc_radius(z, camera, clamp=False)))
    widest = hi * max(thin_lens, camera.min_radius,
                      MAX_FITTED_MIN_RADIUS if fit_min_radius else 0.0)
    margin = support_half_width(widest, camera.psf) + 1
    eng = engines.resolve(backend, psf=camera.psf)
    b_eng = eng.asarray(data)
    depth_map = eng.asarray(np.full((side_y, side_x), z, dtype=np.float32))
    start = np.pad(data.mean(axis=0), ((0, 0), (margin, margin), (margin, margin)),
                   mode="symmetric")
    evaluations = 0

    def misfit(params):
        nonlocal evaluations
        evaluations += 1
        scale = float(params[0])
        rmin = float(params[1]) if fit_min_radius else camera.min_radius
        if not lo <= scale <= hi or not 0 <= rmin <= MAX_FITTED_MIN_RADIUS:
            return np.inf
        cam = replace(camera, blur_scale=scale, min_radius=rmin)
        k = 2 * support_half_width(scale * max(thin_lens, rmin), cam.psf) + 1
        weights = eng.weights(depth_map, eng.optics(thin_lens_coefficients(cam), cam.psf), k)
        lip = power_iteration(eng, weights, start.shape[1:])
        _, objective = run_fista(eng, weights, b_eng, eng.asarray(start), num_iters=num_iters,
                                 lipschitz=lip, lo=0.0, hi=upper, monotone=True)
        return objective[-1]

    if fit_min_radius:
        x0_params = np.array([np.clip(camera.blur_scale, lo, hi), max(camera.min_radius, 0.5)])
        res = sopt.minimize(misfit, x0_params, method="Nelder-Mead",
                            options={"xatol": 1e-3, "fatol": 1e-9, "maxiter": 200})
        scale, rmin, best = float(res.x[0]), float(res.x[1]), float(res.fun)
    else:
        res = sopt.minimize_scalar(lambda s: misfit([s]), bounds=(lo, hi), method="bounded",
                                   options={"xatol": 1e-3})
        scale, rmin, best = float(res.x), camera.min_radius, float(res.fun)
    fitted = replace(camera, blur_scale=scale, min_radius=rmin)
    residual = float(np.sqrt(2.0 * best / data.size))
    return Calibration(fitted, scale, rmin, residual, evaluations)
