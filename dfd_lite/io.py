"""Focal stacks on disk: a folder of images plus a ``camera.toml``.

The folder format is what a camera gives: one image file per focus setting
(PNG, JPEG or TIFF; 8- or 16-bit; grayscale or RGB) and a small TOML file
with the optics::

    focal_length = 0.05              # metres
    f_number = 8.0
    pixel_size = 1.2e-5              # metres, at the images' resolution
    focus_distances = [1.0, 1.5, 2.5, 4.0, 6.0]   # metres, one per image
    images = ["near.png", "mid.png", ...]          # optional: the order
    min_radius = 2.0                 # optional, pixels
    psf = "disc"                     # optional: "gaussian" (default) or "disc"
    blur_scale = 1.0                 # optional
    depth_range = [0.5, 10.0]        # optional, metres: where to search

Without ``images`` the slices are the folder's image files in natural
file-name order (``img2`` before ``img10``). ``focal_length``, ``f_number``
and ``pixel_size`` may be left out when the first image's EXIF data holds
them (Pillow reads it). :func:`load_stack_folder` reads such a folder,
:func:`save_stack_folder` writes one, so the two round-trip.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _validate as V
from .optics import PSF_SHAPES, Camera

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["IMAGE_SUFFIXES", "CameraFile", "read_image", "read_camera", "write_camera",
           "load_stack_folder", "save_stack_folder", "resize_stack", "exif_optics",
           "write_png", "read_slices", "read_depth", "natural_key",
           "image_files"]

#: File suffixes read as images (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

_REQUIRED_OPTICS = ("focal_length", "f_number", "pixel_size")
_KNOWN_KEYS = set(_REQUIRED_OPTICS) | {"focus_distances", "images", "min_radius", "psf",
                                       "blur_scale", "depth_range"}


def read_image(path, *, name=None):
    """Read one image file as float32 values in [0, 1].

    Parameters
    ----------
    path : str or Path
        A PNG, JPEG or TIFF file, 8- or 16-bit, grayscale, RGB or RGBA
        (alpha is accepted only when fully opaque, and dropped).
    name : str, optional
        How error messages call the file (default: its path).

    Returns
    -------
    ndarray, shape (H, W) or (H, W, 3), float32
        uint8 divided by 255, uint16 by 65535; float TIFFs must already lie
        in [0, 1].
    """
    path = Path(path)
    label = name or str(path)
    if not path.is_file():
        raise ValueError(f"{label}: no such image file")
    try:
        arr = _read_pixels(path)
    except Exception as exc:  # imageio raises many types for a bad file
        raise ValueError(f"{label}: cannot be read as an image ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 4:
        opaque = np.iinfo(arr.dtype).max if arr.dtype.kind == "u" else 1
        if np.any(arr[..., 3] != opaque):
            raise ValueError(f"{label}: has a transparent alpha channel; a photograph of a "
                             f"focal stack has none (save it as RGB)")
        arr = arr[..., :3]
    if arr.ndim == 3 and arr.shape[-1] == 2:  # gray + alpha
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
        raise ValueError(f"{label}: expected a grayscale or RGB image, got an array of "
                         f"shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype.kind == "u" and arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{label}: {arr.dtype} images are not supported (8- or 16-bit)")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"{label}: a floating-point image must hold finite values in "
                             f"[0, 1]")
    elif arr.dtype.kind not in "u":
        raise ValueError(f"{label}: {arr.dtype} images are not supported (8- or 16-bit)")
    return V.to_float32_image(arr, label)


def _read_pixels(path):
    """The file's pixels as stored (uint8, uint16 or float), any channels."""
    import imageio.v3 as iio

    if _is_png16_color(path):
        return _read_png16(path)
    # name the plugin: imageio would otherwise try every format it knows
    plugin = "tifffile" if Path(path).suffix.lower() in (".tif", ".tiff") else "pillow"
    return np.asarray(iio.imread(path, plugin=plugin))


def _is_png16_color(path):
    # Pillow reads 16-bit colour PNGs as 8-bit without a word; pypng does not.
    # The IHDR chunk starts the file: bit depth at byte 24, colour type at 25.
    with open(path, "rb") as f:
        head = f.read(26)
    return head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16 and head[25] in (2, 6)


def _read_png16(path):
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    arr = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return arr.reshape(height, width, info["planes"])


def write_png(path, img):
    """A uint8 or uint16 (H, W) or (H, W, 3) array as PNG (pypng: Pillow cannot write 16-bit RGB)."""
    import png

    h, w = img.shape[:2]
    planes = 1 if img.ndim == 2 else img.shape[2]
    writer = png.Writer(w, h, greyscale=planes == 1, bitdepth=8 * img.dtype.itemsize)
    with open(path, "wb") as f:
        writer.write(f, img.reshape(h, w * planes))


def exif_optics(path):
    """Focal length, f-number and pixel pitch from an image's EXIF data.

    The pixel pitch comes from the focal-plane resolution tags, scaled from
    the sensor's full width (``ExifImageWidth``) to the file's width, so a
    downsized JPEG gets its larger pixels.

    Returns
    -------
    dict
        Any of ``focal_length`` (m), ``f_number`` and ``pixel_size`` (m)
        the file records; empty when it has no EXIF data.
    """
    from PIL import Image

    found = {}
    try:
        with Image.open(path) as img:
            width = img.width
            exif = img.getexif().get_ifd(0x8769)  # the Exif sub-IFD
    except Exception:
        return found
    focal_mm = _positive(exif.get(0x920A))                      # FocalLength, mm
    f_number = _positive(exif.get(0x829D))                      # FNumber
    plane_res = _positive(exif.get(0xA20E))                     # FocalPlaneXResolution
    unit = {2: 0.0254, 3: 0.01, 4: 0.001, 5: 1e-6}.get(exif.get(0xA210, 2))  # per unit, m
    if focal_mm:
        found["focal_length"] = focal_mm * 1e-3
    if f_number:
        found["f_number"] = f_number
    if plane_res and unit:
        full_width = _positive(exif.get(0xA002)) or width       # ExifImageWidth
        found["pixel_size"] = unit / plane_res * full_width / width
    return found


def _positive(value):
    try:
        v = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return v if math.isfinite(v) and v > 0 else None


@dataclass(frozen=True)
class CameraFile:
    """What a ``camera.toml`` holds.

    Attributes
    ----------
    camera : Camera
    images : tuple of str or None
        The image files in slice order, when the file lists them.
    depth_range : tuple of float or None
        ``(near, far)`` in metres, when given.
    """

    camera: Camera
    images: tuple = None
    depth_range: tuple = None


def read_camera(path, *, exif_image=None) -> CameraFile:
    """Read a ``camera.toml``.

    Parameters
    ----------
    path : str or Path
    exif_image : str or Path, optional
        An image whose EXIF data fills in ``focal_length``, ``f_number`` or
        ``pixel_size`` when the file leaves them out.

    Returns
    -------
    CameraFile

    Raises
    ------
    ValueError
        Missing file, bad TOML, or a field missing or malformed; the
        message names the file and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"camera file {path}: not found")
    try:
        fields = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"camera file {path}: not valid TOML ({exc})") from None
    unknown = sorted(set(fields) - _KNOWN_KEYS)
    if unknown:
        raise ValueError(f"camera file {path}: unknown field(s) {unknown}; the fields are "
                         f"{sorted(_KNOWN_KEYS)}")
    missing = [k for k in _REQUIRED_OPTICS if k not in fields]
    if missing and exif_image is not None:
        from_exif = exif_optics(exif_image)
        for key in missing:
            if key in from_exif:
                fields[key] = from_exif[key]
        missing = [k for k in _REQUIRED_OPTICS if k not in fields]
    if missing:
        source = " (nor in the images' EXIF data)" if exif_image is not None else ""
        raise ValueError(f"camera file {path}: {missing[0]} is missing{source}")
    if "focus_distances" not in fields:
        raise ValueError(f"camera file {path}: focus_distances is missing (metres, one per "
                         f"image)")

    def number(key):
        value = fields[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"camera file {path}: {key} must be a number, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"camera file {path}: {key} must be positive, got {value!r}")
        return float(value)

    def numbers(key):
        value = fields[key]
        if not isinstance(value, list) or not value or \
                any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
            raise ValueError(f"camera file {path}: {key} must be a list of numbers, "
                             f"got {value!r}")
        if any(not math.isfinite(v) or v <= 0 for v in value):
            raise ValueError(f"camera file {path}: {key} must be positive, got {value!r}")
        return [float(v) for v in value]

    focal_length = number("focal_length")
    focus = numbers("focus_distances")
    if min(focus) <= focal_length:
        raise ValueError(f"camera file {path}: every focus distance must be beyond the focal "
                         f"length ({focal_length:g} m); got focus_distances={focus}")
    kwargs = {}
    if "min_radius" in fields:
        value = fields["min_radius"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or value < 0:
            raise ValueError(f"camera file {path}: min_radius must be a number >= 0, "
                             f"got {value!r}")
        kwargs["min_radius"] = float(value)
    if "psf" in fields:
        if fields["psf"] not in PSF_SHAPES:
            raise ValueError(f"camera file {path}: psf must be one of {PSF_SHAPES}, "
                             f"got {fields['psf']!r}")
        kwargs["psf"] = fields["psf"]
    if "blur_scale" in fields:
        kwargs["blur_scale"] = number("blur_scale")
    camera = Camera(focal_length, number("f_number"), number("pixel_size"), tuple(focus),
                    **kwargs)

    images = None
    if "images" in fields:
        images = fields["images"]
        if not isinstance(images, list) or not all(isinstance(v, str) for v in images):
            raise ValueError(f"camera file {path}: images must be a list of file names")
        if len(images) != len(focus):
            raise ValueError(f"camera file {path}: images lists {len(images)} files but "
                             f"focus_distances has {len(focus)} values; they must match")
        images = tuple(images)
    depth_range = None
    if "depth_range" in fields:
        near_far = numbers("depth_range")
        if len(near_far) != 2 or near_far[0] >= near_far[1]:
            raise ValueError(f"camera file {path}: depth_range must be [near, far] with "
                             f"near < far, got {fields['depth_range']!r}")
        try:
            depth_range = V.as_depth_range(near_far, camera)
        except ValueError as exc:
            raise ValueError(f"camera file {path}: {exc}") from None
    return CameraFile(camera, images, depth_range)


def write_camera(path, camera: Camera, *, images=None, depth_range=None):
    """Write ``camera`` (and optionally the image order and depth range) as TOML."""
    V.check_camera(camera)
    lines = [
        "# dfd_lite camera file: lengths in metres, radii in pixels",
        f"focal_length = {camera.focal_length!r}",
        f"f_number = {camera.f_number!r}",
        f"pixel_size = {camera.pixel_size!r}",
        f"focus_distances = [{', '.join(repr(z) for z in camera.focus_distances)}]",
        f"min_radius = {camera.min_radius!r}",
        f'psf = "{camera.psf}"',
        f"blur_scale = {camera.blur_scale!r}",
    ]
    if images is not None:
        names = [str(n) for n in images]
        if len(names) != camera.num_planes:
            raise ValueError(f"images lists {len(names)} files but the camera has "
                             f"{camera.num_planes} focus distances")
        lines.append("images = [" + ", ".join(_toml_string(n) for n in names) + "]")
    if depth_range is not None:
        near, far = V.as_depth_range(depth_range, camera)
        lines.append(f"depth_range = [{near!r}, {far!r}]")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _toml_string(text):
    # A TOML basic string: backslashes and quotes escaped, control characters refused.
    if any(ord(c) < 32 for c in text):
        raise ValueError(f"file name {text!r} contains control characters")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_depth(path):
    """Read a depth map: ``.npy`` in metres, or a one-channel 16-bit PNG/TIFF in millimetres.

    Returns
    -------
    ndarray, shape (H, W), float32
        Metres; every value positive and finite (else ``ValueError``).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"depth file {path}: not found")
    if path.suffix.lower() == ".npy":
        try:
            depth = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ValueError(f"depth file {path}: not a NumPy array file ({exc})") from None
        if depth.dtype.kind not in "iuf":
            raise ValueError(f"depth file {path}: holds {depth.dtype}, expected numbers (metres)")
        depth = depth.astype(np.float32)
    else:
        try:
            raw = _read_pixels(path)
        except Exception as exc:
            raise ValueError(f"depth file {path}: cannot be read ({type(exc).__name__})") \
                from None
        if raw.dtype != np.uint16 or raw.ndim != 2:
            raise ValueError(f"depth file {path}: an image depth map must be a one-channel "
                             f"16-bit PNG/TIFF in millimetres, got {raw.dtype} of shape "
                             f"{raw.shape}")
        depth = raw.astype(np.float32) / 1000.0
    if depth.ndim != 2:
        raise ValueError(f"depth file {path}: must be 2-D (H, W), got shape {depth.shape}")
    if not np.all(np.isfinite(depth)) or np.any(depth <= 0):
        bad = int(np.sum(~np.isfinite(depth) | (depth <= 0)))
        raise ValueError(f"depth file {path}: {bad} pixels are not positive finite depths")
    return depth


def natural_key(name):
    """Sort key for natural file-name order: ``img2`` before ``img10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def image_files(folder):
    """The image files of ``folder`` (:data:`IMAGE_SUFFIXES`, not hidden), in natural order."""
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def load_stack_folder(folder, camera=None, *, max_size=None):
    """Load a focal stack from a folder of images and a camera file.

    Parameters
    ----------
    folder : str or Path
        The folder holding one image per focus setting.
    camera : str, Path, Camera or None
        The camera file (default ``folder / "camera.toml"``), or a
        :class:`~dfd_lite.optics.Camera` whose focus distances follow the images' natural
        file-name order.
    max_size : int, optional
        Downsample (anti-aliased) so that the longer side is at most this
        many pixels. The pixel size grows by the same factor.

    Returns
    -------
    stack : ndarray, shape (F, H, W, 3) or (F, H, W), float32 in [0, 1]
    camera : Camera
        With ``pixel_size`` adjusted for ``max_size``.
    depth_range : tuple of float or None
        From the camera file, when it gives one.

    Raises
    ------
    ValueError
        Missing folder or files, unreadable images, images of different
        sizes or kinds, fewer than 2 slices, or a count of focus distances
        that does not match the images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"stack folder {folder}: not found (or not a folder)")
    depth_range = None
    if isinstance(camera, Camera):
        cam, names = camera, None
    else:
        camera_path = Path(camera) if camera is not None else folder / "camera.toml"
        files = image_files(folder)
        first = files[0] if files else None
        parsed = read_camera(camera_path, exif_image=first)
        cam, names, depth_range = parsed.camera, parsed.images, parsed.depth_range
    if names is not None:
        paths = [folder / n for n in names]
        for p in paths:
            if not p.is_file():
                raise ValueError(f"stack folder {folder}: image {p.name!r} (listed in the "
                                 f"camera file) not found")
    else:
        paths = image_files(folder)
        if not paths:
            raise ValueError(f"stack folder {folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
        if len(paths) != cam.num_planes:
            raise ValueError(f"stack folder {folder}: {len(paths)} images but "
                             f"{cam.num_planes} focus distances; they must match (list the "
                             f"files in the camera file's images = [...] to choose)")
    if len(paths) < 2:
        raise ValueError(f"stack folder {folder}: a focal stack needs at least 2 slices, "
                         f"got {len(paths)}")
    stack = read_slices(paths, label=f"stack folder {folder}")
    if max_size is not None:
        stack, cam = resize_stack(stack, cam, max_size=max_size)
    return stack, cam, depth_range


def read_slices(paths, *, label):
    """Read image files of one size into a stack (``label`` starts the error messages).

    Returns
    -------
    ndarray, shape (F, H, W, 3) or (F, H, W), float32
        Values in [0, 1].
    """
    paths = [Path(p) for p in paths]
    slices = [read_image(p, name=f"{p.parent.name}/{p.name}") for p in paths]
    if len({s.shape for s in slices}) > 1:
        detail = ", ".join(f"{p.name}: {s.shape}" for p, s in zip(paths, slices))
        raise ValueError(f"{label}: images differ in size or channels ({detail})")
    return np.stack(slices)


def resize_stack(stack, camera: Camera, *, max_size):
    """Downsample a stack so its longer side is at most ``max_size`` pixels.

    Anti-aliased (scikit-image's ``rescale``); the camera's pixel size
    grows by the factor actually applied. A stack already small enough is
    returned as it is.

    Returns
    -------
    stack : ndarray, float32
    camera : Camera
    """
    b, gray = V.as_stack(stack, V.check_camera(camera))
    max_size = V.as_positive_int(max_size, "max_size", minimum=16)
    h, w = b.shape[1:3]
    if max(h, w) <= max_size:
        return (b[..., 0] if gray else b), camera
    from skimage.transform import resize

    factor = max_size / max(h, w)
    shape = (max(1, round(h * factor)), max(1, round(w * factor)))
    small = np.stack([resize(s, shape + (b.shape[3],), order=1, anti_aliasing=True,
                             preserve_range=True) for s in b]).astype(np.float32)
    from dataclasses import replace

    # the width ratio, not the requested factor: the rows and columns were rounded
    cam = replace(camera, pixel_size=camera.pixel_size * w / shape[1])
    return (small[..., 0] if gray else small), cam


def save_stack_folder(folder, stack, camera: Camera, *, bit_depth: int = 16, depth_range=None,
                      prefix="slice"):
    """Write a focal stack as PNG files plus ``camera.toml`` (read by :func:`load_stack_folder`).

    Parameters
    ----------
    folder : str or Path
        Created if missing; existing slice files of the same names are replaced.
    stack : array_like, shape (F, H, W, C) or (F, H, W)
        Values in [0, 1] (clipped).
    camera : Camera
    bit_depth : {8, 16}
        PNG sample depth; 16 keeps noise and fine gradations.
    depth_range : (float, float), optional
        ``(near, far)`` in metres, recorded in the camera file for the solver.

    Returns
    -------
    list of Path
        The image files, in slice order.
    """
    b, gray = V.as_stack(stack, V.check_camera(camera))
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype, top = (np.uint8, 255) if bit_depth == 8 else (np.uint16, 65535)
    width = max(2, len(str(b.shape[0] - 1)))
    paths = []
    for i, s in enumerate(b):
        img = np.round(np.clip(s, 0.0, 1.0) * top).astype(dtype)
        path = folder / f"{prefix}_{i:0{width}d}.png"
        write_png(path, img[..., 0] if gray else img)
        paths.append(path)
    write_camera(folder / "camera.toml", camera, images=[p.name for p in paths],
                 depth_range=depth_range)
    return paths
