"""Input checks shared by the public functions.

Every public entry point converts its arrays here so that bad input fails
early with a message naming the parameter, instead of deep inside a kernel.
"""

from __future__ import annotations

import warnings

import numpy as np

from .optics import Camera


def as_numeric_array(value, name):
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except Exception:  # ragged lists and other non-arrays
            raise TypeError(f"{name} must be an array of numbers") from None
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


# Image values beyond this cannot be an image, and their squared errors
# overflow float32 sums.
MAX_ABS_VALUE = 1e6


def to_float32_image(arr, name):
    """uint8/uint16 images scaled to [0, 1]; floats kept as they are."""
    if np.issubdtype(arr.dtype, np.integer):
        if arr.dtype == np.uint8:
            return arr.astype(np.float32) / np.float32(255)
        if arr.dtype == np.uint16:
            return arr.astype(np.float32) / np.float32(65535)
        arr = arr.astype(np.float32)
    else:
        arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values")
    if arr.size and float(np.max(np.abs(arr))) > MAX_ABS_VALUE:
        raise ValueError(f"{name} has values of magnitude up to {float(np.max(np.abs(arr))):g}; "
                         f"images are expected in [0, 1] or [0, 255] (at most "
                         f"{MAX_ABS_VALUE:g}, beyond which squared errors overflow float32)")
    return arr


def check_camera(camera):
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a dfd_lite.Camera, got {type(camera).__name__}")
    return camera


def as_image(image, name="aif"):
    """Return ``(x, gray)``: x is float32 ``(H, W, C)``; gray tells if the input was 2-D."""
    arr = as_numeric_array(image, name)
    if arr.ndim == 2:
        arr, gray = arr[:, :, None], True
    elif arr.ndim == 3:
        gray = False
    else:
        raise ValueError(f"{name} must have shape (H, W) or (H, W, C), got {arr.shape}")
    if min(arr.shape) == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    _refuse_rgba(arr, name)
    return to_float32_image(arr, name), gray


def _refuse_rgba(arr, name):
    # Four channels are read as RGBA. Alpha is not light: it carries no
    # defocus, and blurring it as if it did would bias the depth. Refused
    # rather than dropped, so nothing happens to the data silently.
    if arr.ndim >= 3 and arr.shape[-1] == 4:
        raise ValueError(f"{name} has 4 channels, read as RGBA; alpha carries no defocus "
                         f"information: pass {name}[..., :3]")


def as_depth(depth, name="depth", shape=None):
    """Float32 ``(H, W)`` depth map in metres, finite and positive."""
    arr = as_numeric_array(depth, name)
    if arr.ndim != 2 or min(arr.shape) == 0:
        raise ValueError(f"{name} must have shape (H, W) with H, W >= 1, got {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} has shape {arr.shape} but the image (aif) is {tuple(shape)}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values")
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be positive (metres)")
    return arr


def as_stack(stack, camera=None, name="stack"):
    """Return ``(b, gray)``: b is float32 ``(F, H, W, C)``."""
    arr = as_numeric_array(stack, name)
    if arr.ndim == 3:
        arr, gray = arr[..., None], True
    elif arr.ndim == 4:
        gray = False
    else:
        raise ValueError(
            f"{name} must have shape (F, H, W) or (F, H, W, C), got {arr.ndim} dimensions {arr.shape}")
    if min(arr.shape) == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    _refuse_rgba(arr, name)
    if camera is not None and arr.shape[0] != camera.num_planes:
        raise ValueError(
            f"{name} has {arr.shape[0]} slices but camera.focus_distances has "
            f"{camera.num_planes}; they must match")
    return to_float32_image(arr, name), gray


def as_depth_range(depth_range, camera=None):
    try:
        lo, hi = (float(v) for v in depth_range)
    except (TypeError, ValueError):
        raise TypeError("depth_range must be a pair (near, far) of numbers in metres") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0:
        raise ValueError(f"depth_range must be finite and positive, got {depth_range!r}")
    if hi <= lo:
        raise ValueError(f"depth_range must be (near, far) with near < far, got {depth_range!r}")
    if camera is not None and lo <= camera.focal_length:
        raise ValueError(
            f"depth_range starts at {lo:g} m, not beyond the focal length "
            f"({camera.focal_length:g} m): the thin-lens model images nothing there; "
            f"choose near > {camera.focal_length:g}")
    return lo, hi


# Raw data after black-level subtraction dips below zero with noise; values
# down to this fraction of the stack's peak are clipped with a warning.
# Anything more negative cannot be an image.
NEGATIVE_TOLERANCE = 0.05


def check_stack_values(b, camera, name="stack", stacklevel=3):
    """What a stack to be *solved* must hold (float32 ``(F, H, W, C)``, finite).

    Small negatives are clipped to 0 with a ``UserWarning``; larger ones
    raise a ``ValueError``. A constant stack, or a camera with fewer than
    two distinct focus distances, carries no depth information: a
    ``UserWarning`` says so (the solver still runs). ``stacklevel`` points
    the warnings at the user's call. Returns the stack.
    """
    lo, hi = float(b.min()), float(b.max())
    if lo < 0:
        if lo < -NEGATIVE_TOLERANCE * max(hi, 1.0):
            raise ValueError(
                f"{name} has values down to {lo:g}; an image must be >= 0 (small negatives "
                f"from black-level subtraction, no lower than -{NEGATIVE_TOLERANCE:g} x the peak, "
                f"are clipped)")
        warnings.warn(f"{name} has small negative values (down to {lo:g}); they are clipped "
                      f"to 0", UserWarning, stacklevel=stacklevel)
        b = np.maximum(b, np.float32(0))
    if hi == lo:
        warnings.warn(f"{name} is constant ({lo:g} everywhere): it carries no depth "
                      f"information, so the depth map will be meaningless", UserWarning,
                      stacklevel=stacklevel)
    if len(set(camera.focus_distances)) < 2:
        warnings.warn(
            f"camera.focus_distances has fewer than two distinct values "
            f"({list(camera.focus_distances)}): depth cannot be told from one focus "
            f"setting, so the depth map will be meaningless", UserWarning, stacklevel=stacklevel)
    return b


def as_real(value, name, *, above=None, at_least=None):
    """A finite real number (not a bool), optionally ``> above`` or ``>= at_least``."""
    if isinstance(value, (bool, np.bool_)) or \
            not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if above is not None and not v > above:
        raise ValueError(f"{name} must be > {above:g}, got {value!r}")
    if at_least is not None and not v >= at_least:
        raise ValueError(f"{name} must be >= {at_least:g}, got {value!r}")
    return v


def as_seed(seed, name="seed"):
    """A seed for ``numpy.random.default_rng``: a non-negative int or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be a non-negative integer or a numpy Generator, "
                        f"got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"{name} must be >= 0, got {seed}")
    return int(seed)


def as_positive_int(value, name, minimum=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)
