"""Public focal-stack data sets, read from the files their authors publish.

Nothing is downloaded: each loader takes the path of a copy on disk.

NYU Depth v2 (labeled subset)
    ``nyu_depth_v2_labeled.mat``, 1449 indoor RGB-D images. The paper
    renders its NYUv2 focal stacks from them with its own blur model
    (:func:`load_nyuv2`), at half resolution, with :meth:`~dfd_lite.optics.Camera.nyuv2`.

The mobile-phone focal stacks of Suwajanakorn, Hernandez and Seitz
    "Depth from focus with your mobile phone" (CVPR 2015): aligned real
    focal stacks with calibrated focus distances, read in the layout the
    paper's code reads (:func:`load_mobile_depth`).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import _validate as V
from .blur import render_stack
from .data import Scene
from .io import read_slices
from .optics import Camera
from .render import render_physical

__all__ = ["NYUV2_RESOLUTIONS", "nyuv2_count", "nyuv2_camera", "nyuv2_scene", "load_nyuv2",
           "MOBILE_DEPTH_SCENES", "load_mobile_depth"]

#: ``resolution`` values of the NYUv2 loaders: ``"half"`` is 240 x 320
#: (the paper's setting), ``"full"`` the file's 480 x 640.
NYUV2_RESOLUTIONS = ("half", "full")

# The paper clips NYUv2 depths to this range (metres) before rendering.
_NYUV2_DEPTH_LIMITS = (0.1, 10.0)

#: Scenes of the mobile-phone data set that have a calibration (``bucket``
#: and ``kitchen`` have none, so they cannot be loaded).
MOBILE_DEPTH_SCENES = ("keyboard", "bottles", "fruits", "metals", "plants", "telephone",
                       "window", "largemotion", "smallmotion", "zeromotion", "balls")

# Scenes whose calibration folder is not named after the scene.
_MOBILE_CALIBRATION_FOLDERS = (("largemotion", "GTLarge"), ("smallmotion", "GTSmall"),
                               ("zeromotion", "GT"), ("metals", "metal"))
_MOBILE_UNCALIBRATED = ("bucket", "kitchen")
# The paper's settings for these stacks, in the calibration's own length
# unit: pixel pitch at full resolution, the depth search range, and the
# smallest blur radius (pixels).
_MOBILE_PIXEL_SIZE = 0.75
_MOBILE_DEPTH_RANGE = (1.0, 800.0)
_MOBILE_MIN_RADIUS = 0.1


def _check_resolution(resolution):
    if not isinstance(resolution, str) or resolution not in NYUV2_RESOLUTIONS:
        raise ValueError(f"resolution must be one of {NYUV2_RESOLUTIONS}, got {resolution!r}")
    return resolution


def _half_size(img):
    """``img`` resized to ``(H // 2, W // 2)``, bilinear and anti-aliased (float64)."""
    from skimage.transform import resize

    h, w = img.shape[:2]
    if h < 2 or w < 2:
        raise ValueError(f"an image of {h} x {w} pixels cannot be halved")
    return resize(img, (h // 2, w // 2) + img.shape[2:], order=1, anti_aliasing=True,
                  preserve_range=True)


# --------------------------------------------------------------------------- NYUv2


@contextmanager
def _nyuv2_datasets(path):
    """Open the labeled NYUv2 file; yield its ``images`` and ``depths`` datasets, checked."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise ImportError("reading NYUv2's .mat file needs h5py (pip install h5py)") from None

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"NYUv2 file {path}: not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"NYUv2 file {path}: not an HDF5 file ({exc}); the labeled data set "
                         f"nyu_depth_v2_labeled.mat is a MATLAB v7.3 file, which is HDF5")\
            from None
    with f:
        found = {}
        for key in ("images", "depths"):
            if not isinstance(f.get(key), h5py.Dataset):
                raise ValueError(f"NYUv2 file {path}: no {key!r} dataset; expected the labeled "
                                 f"data set nyu_depth_v2_labeled.mat, which holds 'images' "
                                 f"and 'depths'")
            found[key] = f[key]
        images, depths = found["images"], found["depths"]
        # MATLAB stores column-major: its (H, W, 3, N) arrays read as (N, 3, W, H)
        if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"NYUv2 file {path}: 'images' is {images.dtype} of shape "
                             f"{images.shape}; expected uint8 of shape (N, 3, W, H) (MATLAB's "
                             f"H x W x 3 x N)")
        n, _, w, h = images.shape
        if depths.ndim != 3 or depths.shape != (n, w, h) or depths.dtype.kind != "f":
            raise ValueError(f"NYUv2 file {path}: 'depths' is {depths.dtype} of shape "
                             f"{depths.shape}; expected floats of shape {(n, w, h)} (N, W, H), "
                             f"matching 'images'")
        yield images, depths


def _check_index(index, count, path):
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"index must be an integer, got {type(index).__name__}")
    if not 0 <= index < count:
        raise ValueError(f"index {index} is out of range: NYUv2 file {path} holds {count} "
                         f"images (index 0 to {count - 1})")
    return int(index)


def nyuv2_count(path) -> int:
    """The number of images in NYUv2's labeled file.

    Parameters
    ----------
    path : str or Path
        ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3, read with h5py).

    Returns
    -------
    int
        1449 for the published file.

    Raises
    ------
    ValueError
        Missing file, not HDF5, or no well-formed ``images`` and
        ``depths`` datasets.
    """
    with _nyuv2_datasets(path) as (images, _):
        return int(images.shape[0])


def nyuv2_camera(*, resolution="half") -> Camera:
    """The camera of the paper's NYUv2 focal stacks at a given resolution.

    At half resolution (240 x 320) this is :meth:`~dfd_lite.optics.Camera.nyuv2`: f = 50 mm,
    f/8, 12 um pixels, focus at 1, 1.5, 2.5, 4 and 6 m, minimum blur radius
    2 px. The paper defines the setting only there. At full resolution
    (480 x 640) the choice here keeps the same lens and sensor sampled
    twice as finely: the pixels are 6 um and the minimum blur radius 4 px,
    so every blur is the same size in metres on the sensor (twice as many
    pixels), and a full-resolution stack halved matches the half-resolution
    one.

    Parameters
    ----------
    resolution : {"half", "full"}

    Returns
    -------
    Camera
    """
    camera = Camera.nyuv2()
    if _check_resolution(resolution) == "full":
        camera = replace(camera, pixel_size=camera.pixel_size / 2,
                         min_radius=camera.min_radius * 2)
    return camera


def nyuv2_scene(path, index, *, resolution="half") -> Scene:
    """One image of NYUv2's labeled set with its depth, as the paper prepares it.

    The image is divided by 255; the depth is clipped to [0.1, 10] m. At
    half resolution both are first resized to ``(H // 2, W // 2)``
    (bilinear, anti-aliased); the depth is resized before clipping, as in
    the paper.

    Parameters
    ----------
    path : str or Path
        ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3, read with h5py).
    index : int
        Which image, from 0 to ``nyuv2_count(path) - 1``.
    resolution : {"half", "full"}
        ``"half"`` (240 x 320, the paper's) or ``"full"`` (480 x 640).

    Returns
    -------
    Scene
        ``name`` like ``"nyuv2-0045"``; ``aif`` (H, W, 3) float32 in
        [0, 1]; ``depth`` (H, W) float32 in metres; ``valid`` (H, W) bool,
        where the raw depth is positive. The labeled depths are in-painted,
        so nearly every pixel is valid. At half resolution a pixel is valid
        when most of its footprint is.

    Raises
    ------
    ValueError
        A bad file (see :func:`nyuv2_count`), an index out of range or an
        unknown resolution.
    TypeError
        A non-integer index.
    """
    _check_resolution(resolution)
    with _nyuv2_datasets(path) as (images, depths):
        index = _check_index(index, images.shape[0], path)
        # (3, W, H) -> (H, W, 3) and (W, H) -> (H, W): undo MATLAB's column-major order
        rgb = np.asarray(images[index]).transpose(2, 1, 0).astype(np.float64) / 255.0
        raw = np.asarray(depths[index], dtype=np.float64).T
    finite = np.isfinite(raw)
    valid = finite & (raw > 0)
    raw = np.where(finite, raw, 0.0)  # NaN would spread through the resize
    if resolution == "half":
        rgb = _half_size(rgb)
        raw = _half_size(raw)
        valid = _half_size(valid.astype(np.float64)) > 0.5  # mostly measured
    aif = np.clip(rgb, 0.0, 1.0).astype(np.float32)
    depth = np.clip(raw, *_NYUV2_DEPTH_LIMITS).astype(np.float32)
    return Scene(f"nyuv2-{index:04d}", aif, depth, valid)


def load_nyuv2(path, index, *, resolution="half", physical=False, noise_std=0.0, seed=0):
    """The paper's focal stack of one NYUv2 image, and its camera.

    The scene is :func:`nyuv2_scene`, the camera :func:`nyuv2_camera`
    (:meth:`~dfd_lite.optics.Camera.nyuv2` at half resolution). By default the stack is
    rendered with the paper's own model (:func:`~dfd_lite.blur.render_stack`: Gaussian
    PSF, the default PSF window), so the solver's model is exact.

    With ``physical=True`` it is rendered by :func:`~dfd_lite.render.render_physical` with
    a disc PSF of the thin-lens radius (``camera.with_psf("disc")``), so
    the solver meets a real model error. The camera returned is still the
    Gaussian one, what a user who knows only the optics would tell the
    solver: fit its blur with :func:`~dfd_lite.calibrate.calibrate_blur`, or pass
    ``camera.with_psf("disc")``, to solve with the true PSF.

    Parameters
    ----------
    path : str or Path
        ``nyu_depth_v2_labeled.mat``.
    index : int
        Which image, from 0 to ``nyuv2_count(path) - 1``.
    resolution : {"half", "full"}
    physical : bool
        Render with the physical disc model instead of the paper's.
    noise_std : float
        Standard deviation of additive Gaussian noise (image units; the
        read noise of the physical renderer), clipped to [0, 1].
    seed : int or numpy.random.Generator
        Seed of the noise.

    Returns
    -------
    stack : ndarray, shape (5, H, W, 3), float32
    camera : Camera

    See Also
    --------
    nyuv2_scene : the ground truth (all-in-focus image and depth).
    """
    # checked here so that the message names this function's parameter
    noise_std = V.as_real(noise_std, "noise_std", at_least=0.0)
    scene = nyuv2_scene(path, index, resolution=resolution)
    camera = nyuv2_camera(resolution=resolution)
    if physical:
        stack = render_physical(scene.aif, scene.depth, camera.with_psf("disc"),
                                read_noise=noise_std, seed=seed)
    else:
        stack = render_stack(scene.aif, scene.depth, camera, noise_std=noise_std, seed=seed)
    return stack, camera


# --------------------------------------------------------------------------- mobile phone


def _mobile_scene_name(scene):
    if not isinstance(scene, str):
        raise TypeError(f"scene must be a string, got {type(scene).__name__}")
    if scene in _MOBILE_UNCALIBRATED:
        raise ValueError(f"scene {scene!r} has no calibration in the data set, so its focus "
                         f"distances are unknown; the scenes with one are "
                         f"{', '.join(MOBILE_DEPTH_SCENES)}")
    if scene not in MOBILE_DEPTH_SCENES:
        raise ValueError(f"unknown scene {scene!r}; the known scenes are "
                         f"{', '.join(MOBILE_DEPTH_SCENES)}")
    return scene


def _mobile_scene_folder(root, scene):
    """The folder ``root/aligned-focus-stack/Aligned/<group>/<scene>``."""
    aligned = root / "aligned-focus-stack" / "Aligned"
    if not aligned.is_dir():
        raise ValueError(f"mobile-depth root {root}: no folder aligned-focus-stack/Aligned "
                         f"(expected {aligned})")
    groups = sorted(p for p in aligned.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = [g / scene for g in groups if (g / scene).is_dir()]
    if not found:
        raise ValueError(f"scene {scene!r}: no folder named {scene!r} in any sub-folder of "
                         f"{aligned} (searched {', '.join(g.name for g in groups) or 'none'})")
    if len(found) > 1:
        raise ValueError(f"scene {scene!r}: found in several sub-folders of {aligned} "
                         f"({', '.join(str(p.relative_to(aligned)) for p in found)}); keep one")
    return found[0]


def _read_mobile_calibration(path):
    """``(focus_distances, aperture, focal_length)`` from a ``calibrated.txt``.

    One line ``focus_distance aperture`` per image, then a line with the
    focal length alone. Blank lines are ignored; anything else is an error
    naming the file and the line.
    """
    if not path.is_file():
        raise ValueError(f"calibration file {path}: not found")
    rows = []  # (line number, numbers)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        values = []
        for token in tokens:
            try:
                v = float(token)
            except ValueError:
                raise ValueError(f"calibration file {path}, line {number}: {token!r} is not "
                                 f"a number") from None
            if not math.isfinite(v) or v <= 0:
                raise ValueError(f"calibration file {path}, line {number}: {token!r} must "
                                 f"be a positive finite number")
            values.append(v)
        rows.append((number, values))
    if not rows:
        raise ValueError(f"calibration file {path}: empty; expected lines 'focus_distance "
                         f"aperture' and a last line with the focal length")
    last_number, last = rows[-1]
    if len(last) != 1:
        raise ValueError(f"calibration file {path}, line {last_number}: the last line must "
                         f"hold the focal length alone, got {len(last)} numbers")
    if len(rows) == 1:
        raise ValueError(f"calibration file {path}: no 'focus_distance aperture' lines "
                         f"before the focal length")
    for number, values in rows[:-1]:
        if len(values) != 2:
            raise ValueError(f"calibration file {path}, line {number}: expected two numbers "
                             f"'focus_distance aperture', got {len(values)}")
    focus = [values[0] for _, values in rows[:-1]]
    apertures = sorted({values[1] for _, values in rows[:-1]})
    if not math.isclose(apertures[0], apertures[-1], rel_tol=1e-9):
        raise ValueError(f"calibration file {path}: the apertures differ ({apertures}); "
                         f"one aperture for the whole stack is expected")
    return focus, apertures[0], last[0]


def load_mobile_depth(root, scene, *, resolution="half", rotate=True):
    """A real focal stack of the mobile-phone data set, as the paper's code reads it.

    The data set of Suwajanakorn, Hernandez and Seitz, "Depth from focus
    with your mobile phone" (CVPR 2015), unpacked under ``root``:

    - ``root/aligned-focus-stack/Aligned/<group>/<scene>/a*.jpg``: the
      aligned slices, in file-name order (other files are ignored);
    - ``root/photos-calibration-results/calibration/<calib>/calibrated.txt``:
      one line ``focus_distance aperture`` per slice, in the same order,
      then the focal length. ``<calib>`` is the scene's name, except
      largemotion -> GTLarge, smallmotion -> GTSmall, zeromotion -> GT and
      metals -> metal.

    As in the paper's code, the slices are sorted by increasing focus
    distance; the f-number is focal length / aperture; the pixel size is
    0.75 at full resolution and 1.5 at half resolution (twice as large,
    even where an odd side makes the halving inexact); the minimum blur
    radius is 0.1 px and the depth range [1, 800]. The calibration has an
    unknown global scale: focal length, aperture, focus distances, pixel
    size and depths share one arbitrary length unit, not metres.

    Parameters
    ----------
    root : str or Path
        The folder holding ``aligned-focus-stack`` and
        ``photos-calibration-results``.
    scene : str
        One of :data:`MOBILE_DEPTH_SCENES`.
    resolution : {"half", "full"}
        ``"half"`` resizes every slice to ``(H // 2, W // 2)`` (bilinear,
        anti-aliased), as the paper does.
    rotate : bool
        Turn every slice a quarter clockwise (``np.rot90(img, k=-1)``):
        the files are stored rotated.

    Returns
    -------
    stack : ndarray, shape (F, H, W, 3), float32 in [0, 1]
        ``(F, H, W)`` for grayscale files. In increasing focus distance;
        ``(H, W)`` is the files' ``(W, H)`` (halved at half resolution)
        when ``rotate``.
    camera : Camera
        Gaussian PSF, in the calibration's units.
    depth_range : (float, float)
        ``(1.0, 800.0)``, the paper's search range, same units.

    Raises
    ------
    ValueError
        Missing root, unknown scene (the message lists the known ones),
        no scene folder, a missing or malformed calibration file (the
        message names the file and line), a count of calibration lines
        that does not match the slices, or slices of different sizes.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"mobile-depth root {root}: not found (or not a folder)")
    scene = _mobile_scene_name(scene)
    _check_resolution(resolution)
    folder = _mobile_scene_folder(root, scene)
    calib = dict(_MOBILE_CALIBRATION_FOLDERS).get(scene, scene)
    calib_path = root / "photos-calibration-results" / "calibration" / calib / "calibrated.txt"
    focus, aperture, focal_length = _read_mobile_calibration(calib_path)

    paths = sorted((p for p in folder.iterdir()
                    if p.is_file() and p.name.startswith("a") and p.name.endswith(".jpg")),
                   key=lambda p: p.name)
    if not paths:
        raise ValueError(f"scene folder {folder}: no aligned slices (files a*.jpg)")
    if len(paths) != len(focus):
        raise ValueError(f"calibration file {calib_path} has {len(focus)} focus distances "
                         f"but scene folder {folder} holds {len(paths)} slices (a*.jpg); "
                         f"they must match")
    slices = read_slices(paths, label=f"scene folder {folder}")
    order = np.argsort(focus, kind="stable")
    pixel_size = _MOBILE_PIXEL_SIZE
    out = []
    for i in order:
        img = slices[i]
        if resolution == "half":
            img = np.clip(_half_size(img), 0.0, 1.0)
        if rotate:
            img = np.rot90(img, k=-1)
        out.append(img)
    if resolution == "half":
        pixel_size *= 2
    stack = np.ascontiguousarray(np.stack(out), dtype=np.float32)
    try:
        camera = Camera(focal_length, focal_length / aperture, pixel_size,
                        tuple(focus[i] for i in order), _MOBILE_MIN_RADIUS)
    except ValueError as exc:
        raise ValueError(f"calibration file {calib_path}: {exc}") from None
    return stack, camera, _MOBILE_DEPTH_RANGE
