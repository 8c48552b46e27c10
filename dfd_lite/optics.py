"""Thin-lens optics: the camera, the circle of confusion and the blur radius.

All lengths are in metres except blur radii, which are in pixels on the
sensor. Depths ``Z`` are distances from the lens to the scene point.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "Camera",
    "coc_diameter",
    "coc_radius",
    "psf_radius",
    "PSF_SHAPES",
    "support_half_width",
    "optics_kernel_size",
    "warn_if_truncated",
    "TRUNCATION_TOLERANCE",
    "MAX_AUTO_KERNEL",
    "default_kernel_size",
    "check_kernel_size",
    "resolve_kernel_size",
    "thin_lens_coefficients",
]


#: The point-spread functions the model knows, the paper's Gaussian and the
#: geometric-optics disc (see :class:`Camera`).
PSF_SHAPES = ("gaussian", "disc")


def _real_array(name, value):
    """``value`` as a float64 array of finite numbers, or an error naming ``name``."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):  # ragged sequences
        arr = np.asarray(None)
    if arr.dtype.kind not in "iuf":  # not bool, complex, strings or objects
        raise TypeError(f"{name} must be real numbers, got {type(value).__name__} "
                        f"of dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def _positive_finite(name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


@dataclass(frozen=True)
class Camera:
    """A thin-lens camera that recorded a focal stack.

    Parameters
    ----------
    focal_length : float
        Focal length ``f`` in metres.
    f_number : float
        Aperture f-number ``N``; the aperture diameter is ``f / N``.
    pixel_size : float
        Pixel pitch on the sensor in metres.
    focus_distances : sequence of float
        Distance ``Zf`` in metres at which each slice of the stack is in
        focus, one per slice, in stack order. Each must exceed ``f``.
    min_radius : float, optional
        Blur radii (pixels) below this are raised to it. It models the
        residual blur of real optics and keeps the PSF well sampled.
    psf : {"gaussian", "disc"}, optional
        Shape of the point-spread function of a point whose blur radius is
        ``r`` pixels. ``"gaussian"`` (the paper's model, the default) is a
        Gaussian of standard deviation ``blur_scale * r``; ``"disc"`` is a
        uniform disc of radius ``blur_scale * r``, the geometric image of a
        defocused point, anti-aliased by pixel coverage.
    blur_scale : float, optional
        Multiplies the thin-lens radius to give the PSF's size, the ``k``
        of ``sigma = k r`` (Pentland 1987, Subbarao 1988), found by
        calibration. 1 is the paper's convention; a disc of radius ``r``
        has a per-axis standard deviation of ``r / 2``, so a Gaussian that
        stands for the geometric disc has ``blur_scale = 0.5``.

    Examples
    --------
    >>> cam = Camera.nyuv2()
    >>> cam.num_planes
    5
    """

    focal_length: float
    f_number: float
    pixel_size: float
    focus_distances: tuple
    min_radius: float = 0.0
    psf: str = "gaussian"
    blur_scale: float = 1.0

    def __post_init__(self):
        f = _positive_finite("focal_length", self.focal_length)
        n = _positive_finite("f_number", self.f_number)
        ps = _positive_finite("pixel_size", self.pixel_size)
        try:
            fd = np.asarray(self.focus_distances, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError("focus_distances must be a sequence of numbers") from None
        if fd.ndim != 1 or fd.size == 0:
            raise ValueError(
                f"focus_distances must be a non-empty 1-D sequence, got shape {fd.shape}")
        if not np.all(np.isfinite(fd)):
            raise ValueError("focus_distances must be finite")
        if np.any(fd <= f):
            raise ValueError(
                f"every focus distance must be beyond the focal length ({f} m); "
                f"got focus_distances={fd.tolist()}")
        if isinstance(self.min_radius, (bool, np.bool_)) or not np.isscalar(self.min_radius):
            raise TypeError("min_radius must be a real number")
        rmin = float(self.min_radius)
        if not np.isfinite(rmin) or rmin < 0:
            raise ValueError(f"min_radius must be >= 0 and finite, got {rmin!r}")
        if not isinstance(self.psf, str) or self.psf not in PSF_SHAPES:
            raise ValueError(f"psf must be one of {PSF_SHAPES}, got {self.psf!r}")
        scale = _positive_finite("blur_scale", self.blur_scale)
        # frozen dataclass: normalise the stored values through object.__setattr__
        object.__setattr__(self, "focal_length", f)
        object.__setattr__(self, "f_number", n)
        object.__setattr__(self, "pixel_size", ps)
        object.__setattr__(self, "focus_distances", tuple(float(z) for z in fd))
        object.__setattr__(self, "min_radius", rmin)
        object.__setattr__(self, "blur_scale", scale)

    @property
    def aperture(self) -> float:
        """Aperture diameter ``D = f / N`` in metres."""
        return self.focal_length / self.f_number

    @property
    def num_planes(self) -> int:
        """Number of focus settings ``F`` (slices of the stack)."""
        return len(self.focus_distances)

    def with_focus(self, focus_distances) -> "Camera":
        """The same optics with other focus distances."""
        return replace(self, focus_distances=focus_distances)

    def with_psf(self, psf=None, *, blur_scale=None) -> "Camera":
        """The same optics with another PSF shape and/or blur scale.

        >>> Camera.nyuv2().with_psf("disc").psf
        'disc'
        """
        return replace(self, psf=self.psf if psf is None else psf,
                       blur_scale=self.blur_scale if blur_scale is None else blur_scale)

    @classmethod
    def nyuv2(cls) -> "Camera":
        """The synthetic-defocus NYUv2 setting: f = 50 mm, f/8, 12 um pixels,
        focus at 1, 1.5, 2.5, 4 and 6 m, minimum blur radius 2 px."""
        return cls(0.05, 8.0, 1.2e-5, (1.0, 1.5, 2.5, 4.0, 6.0), 2.0)

    @classmethod
    def make3d(cls, focal_length: float = 0.035, f_number: float = 2.8,
               pixel_size: float = 1.2e-5) -> "Camera":
        """The synthetic Make3D setting: focus at 1, 2, 4, ..., 64 m (7 slices),
        minimum blur radius 0.5 px.

        Make3D takes ``f`` and ``N`` from each photo's EXIF data; the
        defaults here are placeholders to be replaced by those values.
        """
        return cls(focal_length, f_number, pixel_size,
                   (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0), 0.5)

    @classmethod
    def fod500(cls, pixel_size: float = 5.6e-6) -> "Camera":
        """The FoD500 / DefocusNet setting: f = 2.9 mm, f/1, focus at 0.1,
        0.15, 0.3, 0.7 and 1.5 m.

        The dataset description does not fix the pixel pitch used here; the
        default is an assumption, pass the real one when it is known.
        """
        return cls(2.9e-3, 1.0, pixel_size, (0.1, 0.15, 0.3, 0.7, 1.5), 0.0)


def coc_diameter(depth, focus_distance, focal_length, aperture):
    """Circle-of-confusion diameter on the sensor, in metres.

    ``CoC = D |Z - Zf| / Z * f / (Zf - f)``, from the thin-lens equation
    ``1/f = 1/Z + 1/z`` and similar triangles behind the lens.

    Parameters
    ----------
    depth : array_like
        Scene depth ``Z`` in metres (> 0).
    focus_distance : float or array_like
        Focus distance ``Zf`` in metres (> f); broadcasts against ``depth``.
    focal_length, aperture : float
        ``f`` and ``D`` in metres.

    Returns
    -------
    ndarray
        CoC diameter in metres, same shape as the broadcast inputs.
    """
    z = _real_array("depth", depth)
    zf = _real_array("focus_distance", focus_distance)
    f = _positive_finite("focal_length", focal_length)
    d = _positive_finite("aperture", aperture)
    if np.any(z <= 0):
        raise ValueError("depth must be positive (metres)")
    if np.any(zf <= f):
        raise ValueError(f"focus_distance must be beyond the focal length ({f} m)")
    return d * np.abs(z - zf) / z * f / (zf - f)


def coc_radius(depth, camera: Camera, clamp: bool = True):
    """Gaussian blur radius (sigma) in pixels for every focus setting.

    Parameters
    ----------
    depth : array_like
        Depth map in metres, any shape ``S`` (a scalar, ``(N,)``, ``(H, W)``).
    camera : Camera
    clamp : bool, optional
        Raise radii below ``camera.min_radius`` to it (the model used by the
        solver). ``False`` gives the raw thin-lens value, zero in focus.

    Returns
    -------
    ndarray, shape ``(F,) + S``, float64
        ``r = CoC / (2 * pixel_size)`` for each of the F focus distances.

    See Also
    --------
    psf_radius : the PSF's size, ``camera.blur_scale * r``.
    """
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a dfd_lite.Camera, got {type(camera).__name__}")
    z = _real_array("depth", depth)
    if np.any(z <= 0):
        raise ValueError("depth must be finite and positive (metres)")
    zf = np.asarray(camera.focus_distances).reshape((-1,) + (1,) * z.ndim)
    r = coc_diameter(z[None], zf, camera.focal_length, camera.aperture) / (2 * camera.pixel_size)
    if clamp:
        r = np.maximum(r, camera.min_radius)
    return r


def psf_radius(depth, camera: Camera):
    """The size parameter of the PSF in pixels: ``camera.blur_scale * coc_radius(depth, camera)``.

    The Gaussian's standard deviation for ``camera.psf == "gaussian"``, the
    disc's radius for ``"disc"``. Same shapes as :func:`coc_radius`.
    """
    return camera.blur_scale * coc_radius(depth, camera)


def thin_lens_coefficients(camera: Camera):
    """The numbers the kernels need to turn a depth into a blur radius.

    The PSF radius in slice ``i`` is ``max(coef[i] |Z - Zf[i]| / Z, min_radius)``
    with ``coef = s D f / (Zf - f) / (2 ps)`` and ``s = camera.blur_scale``:
    :func:`psf_radius` folded into one multiply, so a kernel evaluates it
    per pixel without the camera.

    Returns
    -------
    focus : ndarray, shape (F,), float64
        Focus distances ``Zf`` in metres.
    coef : ndarray, shape (F,), float64
        Pixels of PSF radius per unit of ``|Z - Zf| / Z``.
    min_radius : float
        ``blur_scale * camera.min_radius`` in pixels.
    """
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a dfd_lite.Camera, got {type(camera).__name__}")
    focus = np.asarray(camera.focus_distances, dtype=np.float64)
    f = camera.focal_length
    scale = camera.blur_scale
    coef = scale * camera.aperture * f / (focus - f) / (2.0 * camera.pixel_size)
    return focus, coef, scale * camera.min_radius


def default_kernel_size(height: int, width: int) -> int:
    """The reference implementation's PSF window: ``odd(max(7, round(0.039 (W + H) / 2)))``.

    11 for 240 x 320 images, 23 for 480 x 640. Blurs wider than about
    ``K / 4`` are truncated by this window.
    """
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be a positive integer, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    k = max(7, int(round(0.039 * (int(width) + int(height)) / 2)))
    return k if k % 2 == 1 else k + 1


#: The widest PSF window :func:`optics_kernel_size` picks on its own.
MAX_AUTO_KERNEL = 41


def support_half_width(radius: float, psf: str) -> int:
    """Half-width (pixels) of the window that holds the model's PSF of ``radius``.

    The disc's rows reach ``ceil(r - 1/2)`` pixels from the centre (the
    whole disc, nothing truncated); the Gaussian is kept to three standard
    deviations (each 1-D tap set then holds 99.7 % of its mass). At least 1.
    """
    r = float(radius)
    if psf == "disc":
        return max(1, math.ceil(r - 0.5))
    return max(1, math.ceil(3.0 * r))


def optics_kernel_size(camera: "Camera", depth_range, *, cap: int = MAX_AUTO_KERNEL) -> int:
    """The PSF window that holds the widest blur over a depth range, up to ``cap``.

    The blur radius grows away from each focus distance, so the widest blur
    over ``[near, far]`` is at one of its ends. The window is
    ``2 support_half_width(r_max) + 1`` (:func:`support_half_width`: the whole
    disc, or 3 sigma of the Gaussian), but at most ``cap``. A capped window
    truncates the blur of depths near the ends of a wide range, which
    matters only if the scene has such depths: :func:`warn_if_truncated`
    checks the depth map a solve finds.
    """
    near, far = (float(v) for v in depth_range)
    widest = float(np.max(psf_radius(np.array([near, far]), camera)))
    return min(2 * support_half_width(widest, camera.psf) + 1, int(cap))


#: The fraction of pixels with truncated blur :func:`warn_if_truncated` lets pass.
TRUNCATION_TOLERANCE = 0.01


def warn_if_truncated(depth, camera: "Camera", kernel_size: int, *, stacklevel: int = 2):
    """Warn when PSFs of ``depth`` are wider than a ``kernel_size`` window.

    Returns the fraction of pixels whose PSF, in at least one slice, does
    not fit the window (0 when none). A few stray pixels (at most
    :data:`TRUNCATION_TOLERANCE` of them, typically outliers of a depth
    estimate) do not warn.
    """
    radii = psf_radius(depth, camera)
    limit = _largest_radius_held(kernel_size // 2, camera.psf)
    fraction = float(np.mean(np.any(radii > limit, axis=0)))
    if fraction > TRUNCATION_TOLERANCE:
        warnings.warn(
            f"{100 * fraction:.1f} % of the pixels have blur radii beyond {limit:.1f} px, the "
            f"widest the PSF window (kernel_size={kernel_size}) holds, up to "
            f"{float(radii.max()):.1f} px: their blur is truncated. Pass a larger kernel_size "
            f"(the automatic window stops at MAX_AUTO_KERNEL={MAX_AUTO_KERNEL}).",
            UserWarning, stacklevel=stacklevel + 1)
    return fraction


def _largest_radius_held(half: int, psf: str) -> float:
    """The largest radius whose PSF fits ``half`` (inverse of :func:`support_half_width`)."""
    return half + 0.5 if psf == "disc" else half / 3.0


def check_kernel_size(kernel_size) -> int:
    """Validate a PSF window size: an odd integer >= 3."""
    if isinstance(kernel_size, (bool, np.bool_)) or not isinstance(kernel_size, (int, np.integer)):
        raise TypeError(f"kernel_size must be an odd integer, got {type(kernel_size).__name__}")
    k = int(kernel_size)
    if k < 3 or k % 2 == 0:
        raise ValueError(f"kernel_size must be an odd integer >= 3, got {k}")
    return k


def resolve_kernel_size(kernel_size, shape) -> int:
    """The PSF window for images of ``shape`` ``(H, W)``.

    ``None`` gives :func:`default_kernel_size`, capped at ``2 max(H, W) + 1``
    (and at least 3). A given size is checked (:func:`check_kernel_size`)
    and refused beyond that cap: wider windows only read the zero padding,
    at a cost quadratic in the width.
    """
    h, w = (int(v) for v in shape)
    largest = 2 * max(h, w) + 1
    if kernel_size is None:
        return max(3, min(default_kernel_size(h, w), largest))
    k = check_kernel_size(kernel_size)
    if k > largest:
        raise ValueError(f"kernel_size {k} is wider than a {h} x {w} image can use (at most "
                         f"{largest}): the extra taps would only read the zero padding")
    return k
