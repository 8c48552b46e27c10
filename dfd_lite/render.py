"""A physically-minded focal-stack renderer that is *not* the solver's model.

:func:`~dfd_lite.blur.render_stack` renders with the operator the solver inverts,
so a solver tested on its stacks meets no model error at all (the "inverse
crime"). This module renders the way light does, as far as a thin lens
allows:

* each scene point spreads into its own PSF (scatter, not the solver's
  gather), never truncated, with supersampled pixel coverage;
* the scene is cut into depth layers, each spreading its light with the
  PSF of its own depth, so a near object's blur spreads over the background
  (the solver gathers with the PSF of each output pixel's depth instead);
  the sum is divided by the coverage, what a white scene would give, so
  the brightness stays right at depth edges. Occlusion, a near object
  hiding part of the aperture from what lies behind it, is not modelled;
* the scene continues beyond the frame (mirrored), as a real one does,
  where the solver assumes zeros;
* optional sensor effects: Poisson shot noise, Gaussian read noise, 8-bit
  (or any) quantisation, and focus breathing (the image scale changing
  from slice to slice as the lens refocuses).

It is slower than the operator (FFT convolutions per layer and slice) and
meant for tests, benchmarks and the book.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft
import scipy.ndimage as ndi

from . import _validate as V
from .optics import PSF_SHAPES, Camera, psf_radius
from .psf import psf_half_width, psf_image

__all__ = ["render_physical", "thin_lens_magnification"]


def thin_lens_magnification(camera: Camera):
    """Focus breathing of a lens that focuses by moving as a whole.

    The sensor sits at ``v = f Zf / (Zf - f)`` behind a thin lens focused
    at ``Zf``, and the image of the scene scales with ``v``. Returns, per
    slice, the scale relative to the slice focused farthest away.

    Returns
    -------
    ndarray, shape (F,), float64
        ``v_i / min(v)``, all >= 1.
    """
    V.check_camera(camera)
    zf = np.asarray(camera.focus_distances, dtype=np.float64)
    f = camera.focal_length
    v = f * zf / (zf - f)
    return v / v.min()


def _layers(inv_depth, camera, psf_scale, radius_step):
    """Bins of inverse depth over which no slice's PSF radius changes by more than ``radius_step``.

    The radius is piecewise linear in ``1/Z`` with slope ``coef * Zf``, so
    equal bins in ``1/Z`` of that width do. Returns the bin index of every
    pixel and, per non-empty bin, its mean inverse depth (far to near).
    """
    zf = np.asarray(camera.focus_distances, dtype=np.float64)
    f = camera.focal_length
    slope = psf_scale * camera.aperture * f / (zf - f) / (2 * camera.pixel_size) * zf
    width = radius_step / float(slope.max())
    lo = float(inv_depth.min())
    index = np.floor((inv_depth - lo) / width).astype(np.int64)
    used, index = np.unique(index, return_inverse=True)
    index = index.reshape(inv_depth.shape)
    means = ndi.mean(inv_depth, labels=index + 1, index=np.arange(1, used.size + 1))
    return index, np.asarray(means, dtype=np.float64)


def _breathe(img, scale):
    """Magnify ``img`` (H, W, C) by ``scale`` about its centre (cubic, mirrored border)."""
    if scale == 1.0:
        return img
    h, w = img.shape[:2]
    centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    matrix = np.array([1.0 / scale, 1.0 / scale])
    offset = centre - matrix * centre
    out = np.empty_like(img)
    for c in range(img.shape[2]):
        out[..., c] = ndi.affine_transform(img[..., c], matrix, offset=offset, order=3,
                                           mode="mirror")
    return out


_PAD_MODES = {"mirror": "symmetric", "zero": "constant"}
SPREADS = ("scatter", "gather")


def render_physical(aif, depth, camera: Camera, *, psf="disc", spread="scatter",
                    boundary="mirror", supersample: int = 8, radius_step: float = 0.1,
                    photons=None, read_noise: float = 0.0, bit_depth=None, breathing=None,
                    seed=0):
    """Render a focal stack with untruncated PSFs, light spread by depth layers, and sensor effects.

    Parameters
    ----------
    aif : array_like, shape (H, W, C) or (H, W)
        Sharp image, values in [0, 1] (uint8 is scaled).
    depth : array_like, shape (H, W)
        Depth in metres.
    camera : Camera
        Optics and focus distances. The PSF radius is
        ``camera.blur_scale * coc_radius`` (never below
        ``blur_scale * camera.min_radius``), as in the solver.
    psf : {"disc", "gaussian"}, optional
        The true PSF shape; the disc (geometric optics) by default,
        whatever ``camera.psf`` says, so that a solver using the camera's
        model meets a real model error unless it is told the truth.
    spread : {"scatter", "gather"}, optional
        ``"scatter"`` (default): every scene point spreads its light with
        the PSF of its own depth, which is how light behaves on surfaces
        that do not hide one another (occlusion at depth edges is not
        modelled beyond keeping the brightness right). ``"gather"``: every
        pixel is blurred with the PSF of its own depth, the solver's
        assumption, so only the PSF's shape, size, truncation and the
        boundary differ from the solver's model.
    boundary : {"mirror", "zero"}, optional
        What lies beyond the frame: the scene mirrored (default, as a real
        scene continues) or black (the solver's assumption).
    supersample : int
        Sample points per pixel and axis for the disc's coverage.
    radius_step : float
        Largest change of PSF radius (pixels) within one depth layer.
    photons : float, optional
        Photo-electrons collected at full scale (value 1). Enables Poisson
        shot noise, whose standard deviation at value ``v`` is
        ``sqrt(v / photons)``. ``None``: no shot noise.
    read_noise : float
        Standard deviation of additive Gaussian noise, image units.
    bit_depth : int, optional
        Quantise to ``2**bit_depth`` levels (8 for 8-bit files).
    breathing : None, "thin_lens" or sequence of float, optional
        Per-slice magnification: ``"thin_lens"`` uses
        :func:`thin_lens_magnification`, a sequence gives one factor per slice.
    seed : int or numpy.random.Generator
        Seed for the noise.

    Returns
    -------
    ndarray, shape (F, H, W, C) or (F, H, W), float32
        Values in [0, 1] when any noise or quantisation is applied.
    """
    x, gray = V.as_image(aif, "aif")
    z = V.as_depth(depth, shape=x.shape[:2])
    V.check_camera(camera)
    if psf not in PSF_SHAPES:
        raise ValueError(f"psf must be one of {PSF_SHAPES}, got {psf!r}")
    supersample = V.as_positive_int(supersample, "supersample")
    radius_step = V.as_real(radius_step, "radius_step", above=0.0)
    read_noise = V.as_real(read_noise, "read_noise", at_least=0.0)
    if photons is not None:
        photons = V.as_real(photons, "photons", above=0.0)
    if bit_depth is not None:
        bit_depth = V.as_positive_int(bit_depth, "bit_depth")
        if bit_depth > 16:
            raise ValueError(f"bit_depth must be at most 16, got {bit_depth}")
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {SPREADS}, got {spread!r}")
    if boundary not in _PAD_MODES:
        raise ValueError(f"boundary must be one of {tuple(_PAD_MODES)}, got {boundary!r}")
    mags = _magnifications(breathing, camera)
    rng = np.random.default_rng(V.as_seed(seed))

    h, w, n_c = x.shape
    n_f = camera.num_planes
    index, inv_means = _layers(1.0 / z.astype(np.float64), camera, camera.blur_scale,
                               radius_step)
    radii = psf_radius(1.0 / inv_means, camera)                  # (F, layers)
    pad = max(psf_half_width(float(r), psf) for r in radii.ravel())
    shape = (sfft.next_fast_len(h + 2 * pad), sfft.next_fast_len(w + 2 * pad))
    ext = ((pad, shape[0] - h - pad), (pad, shape[1] - w - pad))
    xp = np.pad(x.astype(np.float64), ext + ((0, 0),), mode=_PAD_MODES[boundary])
    lp = np.pad(index, ext, mode="symmetric")
    kernels = {}

    def kernel(f, layer):
        key = round(float(radii[f, layer]), 6)
        if key not in kernels:
            kernels[key] = _kernel_spectrum(psf_image(key, psf, supersample=supersample), shape)
        return kernels[key]

    planes = np.moveaxis(xp, -1, 0)                              # (C, H', W')
    out = np.zeros((n_f, n_c) + shape)
    if spread == "gather":
        spectrum = sfft.rfft2(planes, axes=(-2, -1), workers=-1)
        for layer in range(inv_means.size):
            mask = lp == layer
            for f in range(n_f):
                blurred = sfft.irfft2(spectrum * kernel(f, layer), s=shape, axes=(-2, -1),
                                      workers=-1)
                out[f][:, mask] = blurred[:, mask]
    else:
        cover = np.zeros((n_f,) + shape)
        for layer in range(inv_means.size):
            mask = (lp == layer).astype(np.float64)
            spectrum = sfft.rfft2(np.concatenate([planes * mask, mask[None]]), axes=(-2, -1),
                                  workers=-1)
            for f in range(n_f):
                blurred = sfft.irfft2(spectrum * kernel(f, layer), s=shape, axes=(-2, -1),
                                      workers=-1)
                out[f] += blurred[:-1]
                cover[f] += blurred[-1]
        # Near a depth edge the near side's PSF is wider than the far side's,
        # so the light reaching a pixel does not add up to one pixel's worth;
        # dividing by the coverage (what a white scene would give) keeps the
        # brightness right there. Elsewhere the coverage is 1.
        out /= np.maximum(cover, 1e-6)[:, None]
    out = np.moveaxis(out[:, :, pad:pad + h, pad:pad + w], 1, -1)

    out = np.stack([_breathe(out[f], mags[f]) for f in range(n_f)])
    noisy = photons is not None or read_noise > 0 or bit_depth is not None
    if photons is not None:
        out = rng.poisson(np.clip(out, 0.0, None) * photons) / photons
    if read_noise > 0:
        out = out + rng.normal(0.0, read_noise, out.shape)
    if noisy:
        out = np.clip(out, 0.0, 1.0)
    if bit_depth is not None:
        levels = 2 ** bit_depth - 1
        out = np.round(out * levels) / levels
    out = out.astype(np.float32)
    return np.ascontiguousarray(out[..., 0] if gray else out)


def _kernel_spectrum(kernel, shape):
    """The FFT of ``kernel`` placed with its centre at the origin of a ``shape`` grid."""
    k = kernel.shape[0]
    half = k // 2
    grid = np.zeros(shape)
    grid[:k, :k] = kernel
    grid = np.roll(grid, (-half, -half), axis=(0, 1))
    return sfft.rfft2(grid, workers=-1)


def _magnifications(breathing, camera):
    n_f = camera.num_planes
    if breathing is None:
        return np.ones(n_f)
    if isinstance(breathing, str):
        if breathing != "thin_lens":
            raise ValueError(f"breathing must be None, 'thin_lens' or {n_f} magnifications, "
                             f"got {breathing!r}")
        return thin_lens_magnification(camera)
    mags = V.as_numeric_array(breathing, "breathing").astype(np.float64).reshape(-1)
    if mags.size != n_f:
        raise ValueError(f"breathing must give one magnification per slice ({n_f}), "
                         f"got {mags.size}")
    if not np.all(np.isfinite(mags)) or np.any(mags <= 0) or np.any(np.abs(np.log(mags)) > 1):
        raise ValueError("breathing magnifications must be finite and within [1/e, e]")
    return mags
