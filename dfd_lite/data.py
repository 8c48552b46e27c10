"""Scenes with ground truth, and focal stacks rendered from them.

Nothing is downloaded: the synthetic scene is generated, and the real one
(Middlebury 2014 "Motorcycle", left view and ground-truth disparity) ships
inside scikit-image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

from . import _validate as V
from .blur import render_stack
from .optics import Camera

__all__ = ["Scene", "synthetic_scene", "middlebury_scene", "focal_stack",
           "save_stack", "load_stack", "MIDDLEBURY_CALIBRATION"]

#: Calibration of the Middlebury 2014 Motorcycle pair - focal length (px),
#: baseline (m) and the disparity offset between the two principal points (px).
MIDDLEBURY_CALIBRATION = {"focal_px": 994.978, "baseline_m": 0.193001, "doffs_px": 31.086}


@dataclass
class Scene:
    """An all-in-focus image with its true depth.

    Attributes
    ----------
    name : str
    aif : ndarray, shape (H, W, 3), float32
        Values in [0, 1].
    depth : ndarray, shape (H, W), float32
        In metres.
    valid : ndarray, shape (H, W), bool
        Where ``depth`` is measured rather than filled in.
    """

    name: str
    aif: np.ndarray
    depth: np.ndarray
    valid: np.ndarray

    @property
    def shape(self):
        return self.depth.shape


def _check_shape(shape):
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise TypeError(f"shape must be a pair (height, width), got {shape!r}") from None
    if h < 8 or w < 8:
        raise ValueError(f"shape must be at least (8, 8), got {shape!r}")
    return h, w


def _texture(h, w, rng):
    """Colour texture with detail at every scale (sum of smoothed noise)."""
    img = np.zeros((h, w, 3))
    for sigma, amp in ((0.7, 1.0), (2.0, 0.8), (6.0, 0.6)):
        layer = ndi.gaussian_filter(rng.standard_normal((h, w, 3)), (sigma, sigma, 0))
        img += amp * layer / layer.std()
    img = 0.5 + 0.12 * img
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def synthetic_scene(shape=(96, 128), *, seed: int = 0, flat_patch: bool = False):
    """A textured scene of planes and steps at known depths (1 - 5.5 m).

    The background is a plane slanting from 4.5 m (top) to 5.5 m (bottom);
    in front stand a box at 1.2 m (left), a block at 2.5 m (centre) and a
    plane tilted from 3 m to 4 m (right). All depths sit in the NYUv2
    preset's range.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)``.
    seed : int
        Seed of the texture.
    flat_patch : bool
        Paint a uniform grey disc at the centre: a region with no texture,
        where defocus carries no depth information.

    Returns
    -------
    Scene
    """
    h, w = _check_shape(shape)
    rng = np.random.default_rng(V.as_seed(seed))
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    depth = 4.5 + 1.0 * yy
    depth = np.where((xx > 0.06) & (xx < 0.32) & (yy > 0.15) & (yy < 0.85), 1.2, depth)
    depth = np.where((xx > 0.40) & (xx < 0.62) & (yy > 0.30) & (yy < 0.70), 2.5, depth)
    right = (xx > 0.70) & (xx < 0.94) & (yy > 0.10) & (yy < 0.90)
    depth = np.where(right, 3.0 + (yy - 0.10) / 0.80, depth)
    aif = _texture(h, w, rng)
    if flat_patch:
        disc = (yy - 0.5) ** 2 + ((xx - 0.5) * w / h) ** 2 < 0.12 ** 2
        aif[disc] = 0.5
    return Scene("synthetic", aif, depth.astype(np.float32), np.ones((h, w), dtype=bool))


def _resize(img, shape, order):
    from skimage.transform import resize
    return resize(img, shape, order=order, anti_aliasing=order > 0, preserve_range=True)


def middlebury_scene(shape=(240, 320), *, fill_invalid: bool = True):
    """The Middlebury 2014 Motorcycle scene with depth from its ground-truth disparity.

    Depth is ``Z = f B / (d + doffs)`` with the pair's calibration
    (:data:`MIDDLEBURY_CALIBRATION`), 2.1 - 5.0 m. About 7 % of the
    disparities are unknown (occlusions); they are filled from the nearest
    known pixel; ``valid`` marks output pixels whose footprint is mostly measured. The image is centre-cropped to
    4:3 and resized to ``shape``.

    Parameters
    ----------
    shape : (int, int)
        Output ``(H, W)``; 4:3 keeps the scene undistorted.
    fill_invalid : bool
        Fill unknown depths (else they are NaN).

    Returns
    -------
    Scene
    """
    from skimage.data import stereo_motorcycle

    h, w = _check_shape(shape)
    left, _, disp = stereo_motorcycle()
    full_h, full_w = disp.shape
    crop_w = min(full_w, int(round(full_h * 4 / 3)))
    x0 = (full_w - crop_w) // 2
    left, disp = left[:, x0:x0 + crop_w], disp[:, x0:x0 + crop_w]
    cal = MIDDLEBURY_CALIBRATION
    valid = np.isfinite(disp)
    depth = np.full(disp.shape, np.nan)
    depth[valid] = cal["focal_px"] * cal["baseline_m"] / (disp[valid] + cal["doffs_px"])
    # fill every unknown pixel from its nearest known neighbour
    _, (iy, ix) = ndi.distance_transform_edt(~valid, return_indices=True)
    filled = depth[iy, ix]
    aif = np.clip(_resize(left / 255.0, (h, w, 3), 1), 0, 1).astype(np.float32)
    depth_small = _resize(filled, (h, w), 1).astype(np.float32)
    valid_small = _resize(valid.astype(float), (h, w), 1) > 0.5  # mostly measured
    if not fill_invalid:
        depth_small[~valid_small] = np.nan
    return Scene("middlebury-motorcycle", aif, depth_small, valid_small)


def focal_stack(scene: Scene, camera: Camera, *, kernel_size=None, noise_std: float = 0.0,
                seed=0, backend="auto"):
    """Render a scene's focal stack with a camera (see :func:`~dfd_lite.blur.render_stack`).

    Returns
    -------
    ndarray, shape (F, H, W, 3), float32
    """
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a dfd_lite.Scene, got {type(scene).__name__}")
    depth = scene.depth
    if not np.all(np.isfinite(depth)):
        raise ValueError("scene.depth has unknown (NaN) pixels; load it with fill_invalid=True")
    return render_stack(scene.aif, depth, camera, kernel_size=kernel_size, noise_std=noise_std,
                        seed=seed, backend=backend)


def save_stack(path, stack, camera: Camera, *, depth=None, aif=None):
    """Save a focal stack with its camera (and optional ground truth) as ``.npz``."""
    b, _ = V.as_stack(stack, V.check_camera(camera))
    arrays = {"stack": b, "focus_distances": np.asarray(camera.focus_distances),
              "optics": np.array([camera.focal_length, camera.f_number, camera.pixel_size,
                                  camera.min_radius, camera.blur_scale]),
              "psf": np.array(camera.psf)}
    if depth is not None:
        arrays["depth"] = V.as_depth(depth, shape=b.shape[1:3])
    if aif is not None:
        arrays["aif"] = V.as_image(aif)[0]
    np.savez_compressed(path, **arrays)


def load_stack(path):
    """Load a file written by :func:`save_stack`.

    Returns
    -------
    dict
        ``stack`` (F, H, W, C) float32, ``camera`` and, when saved,
        ``depth`` and ``aif``.
    """
    with np.load(path) as f:
        missing = {"stack", "focus_distances", "optics"} - set(f.files)
        if missing:
            raise ValueError(f"{path} is not a dfd_lite stack file: missing {sorted(missing)}")
        optics = [float(v) for v in f["optics"]]
        # files from version 0.2 have no PSF: they used the paper's Gaussian
        fl, n, ps, rmin, scale = optics if len(optics) == 5 else optics + [1.0]
        psf = str(f["psf"]) if "psf" in f.files else "gaussian"
        out = {"stack": f["stack"].astype(np.float32),
               "camera": Camera(fl, n, ps, tuple(f["focus_distances"]), rmin, psf, scale)}
        for key in ("depth", "aif"):
            if key in f.files:
                out[key] = f[key]
    return out
