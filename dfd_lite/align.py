"""Aligning the slices of a focal stack that "breathes".

A real lens changes its magnification as it refocuses (focus breathing),
so the slices of a focal stack do not line up, and a solver that compares
slices pixel by pixel reads the misregistration as defocus.
:func:`align_stack` estimates, per slice, a similarity transform (scale,
rotation, translation) onto a reference slice and warps every slice into
the reference's frame, with scikit-image's optical flow, transform fit and
warp.

The difficulty is that every slice is blurred differently: the slice
focused near sees the background through a blur of ten pixels, the one
focused far the foreground. Between such slices an optical flow is noisy
and, near the image edge, biased. What the function does about it, each
choice measured on stacks from :func:`~dfd_lite.render.render_physical` with
``breathing=`` (and on crops of larger renders, where the scene goes on
beyond the frame as it does for a camera):

* every slice is registered to its **neighbour** in the stack, whose blur
  is the most alike, and the steps are composed. Registering every slice
  straight to the reference was several times less accurate;
* the grey images are smoothed by a Gaussian (``smoothing``, 3 px) that
  damps the finest detail and the contrast inversions of a disc PSF;
* a first estimate comes from a TV-L1 flow at half resolution
  (:func:`skimage.registration.optical_flow_tvl1`), which follows the few
  pixels of displacement. The slice is warped by it, the sharper image of
  the pair is blurred to look most like the other (one Gaussian, chosen
  by the squared difference: a symmetric blur moves nothing) and what is
  left is measured with Lucas-Kanade flow in 16 px windows
  (:func:`~skimage.registration.optical_flow_ilk`). TV-L1 alone carried a
  bias from the image edge far into the image (a uniformly blurred pair
  read as 0.2 - 1 % apart in scale); the local flow keeps it within one
  window, which is left out of the fit. Matching the blur halved the
  worst error;
* the similarity is fitted to the flow on the textured half of the
  pixels (:meth:`skimage.transform.SimilarityTransform.from_estimate`),
  trimmed of outliers (occlusion edges) and refitted.

Rotation is estimated rather than fixed at zero: breathing does not rotate
the image, but a camera nudged between shots does, and a fit without
rotation would leave that as misregistration. On breathing alone the
estimated rotations stay below 0.1 degree.

Measured scale errors relative to the reference, over synthetic and
Middlebury scenes, clean and with noise: at most 0.1 % at 240 x 320 with
the NYUv2 preset (disc PSFs up to 11 px radius), 0.08 % at 120 x 160 with
that blur halved (f/16), and up to 0.25 % at 120 x 160 with the full
blur, where the near-focused slices hold little detail. Up to about 10 %
of magnification between neighbouring slices is followed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

from . import _validate as V

__all__ = ["Alignment", "align_stack", "IMPLAUSIBLE"]

#: Smallest image side (pixels) that can be registered. On 16 - 24 px
#: images the estimate of a 2 px shift was off by 0.3 to 2 px.
MIN_SIDE = 32

#: Images at least this large get their first estimate at half resolution.
HALF_RES_SIDE = 64

#: Beyond this change of scale (or rotation, in radians) an estimate is
#: not focus breathing, which is a few per cent; a warning says so.
IMPLAUSIBLE = 0.1

# Fraction of the pixels, the most textured, that the flow is fitted on.
_TEXTURED_FRACTION = 0.5

# TV-L1 with two warps per pyramid level instead of five: as accurate for a
# first estimate, in half the time.
_TVL1 = {"num_warp": 2}

# Window radius (pixels) of the Lucas-Kanade flow; 12 and 24 did worse.
_ILK_RADIUS = 16

# Gaussians (pixels) tried on the sharper slice of a pair to match the other.
_MATCH_SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0)


@dataclass(frozen=True)
class Alignment:
    """Outcome of :func:`align_stack`.

    Slice ``f`` is modelled as the reference magnified by ``scale[f]`` and
    turned by ``rotation[f]`` about the image centre
    ``c = ((H - 1) / 2, (W - 1) / 2)``, then moved by ``shift[f]``: the
    reference's pixel ``p`` lies in the slice at
    ``c + scale[f] R(rotation[f]) (p - c) + shift[f]``.

    Attributes
    ----------
    stack : ndarray, shape (F, H, W, C) or (F, H, W), float32
        Every slice resampled in the reference's frame (cubic
        interpolation, clipped to the slice's range); the reference as it
        was. Units of the input (uint8/uint16 scaled to [0, 1]). Outside
        ``valid`` a slice's edge pixels are repeated.
    scale : ndarray, shape (F,), float64
        Magnification of each slice relative to the reference (1 there).
        With ``reference="largest"`` all are <= 1.
    rotation : ndarray, shape (F,), float64
        Radians, positive when the slice is turned counter-clockwise as
        displayed (the convention of :func:`skimage.transform.rotate`).
    shift : ndarray, shape (F, 2), float64
        ``(rows, cols)``, pixels: where the reference's centre lies in the
        slice, relative to the centre. Zero for breathing about the centre.
    residual : ndarray, shape (F,), float64
        Misregistration left after alignment, pixels: the RMS length of
        the TV-L1 optical flow from the reference to the aligned slice over
        the textured half of the pixels in ``valid``, away from the edge.
        Both images are prepared as for the estimate (grey, smoothed, the
        sharper one blurred to match the other); the flow is measured at
        half resolution on images of at least 64 px and given in
        full-resolution pixels. 0 for the reference. What unequal blur still leaves reads
        as flow: a well aligned stack measures about 0.1 - 0.3 px, an
        unaligned one about its displacement (``residual_before``).
    residual_before : ndarray, shape (F,), float64
        The same measure between the input slices and the reference.
    reference : int
        Index of the reference slice.
    valid : ndarray, shape (H, W), bool
        Pixels that every warped slice covers with its own data.
    """

    stack: np.ndarray
    scale: np.ndarray
    rotation: np.ndarray
    shift: np.ndarray
    residual: np.ndarray
    residual_before: np.ndarray
    reference: int
    valid: np.ndarray

    def largest_move(self):
        """Per slice, the largest distance (pixels) the alignment moves a pixel of the frame.

        The transform is a similarity about the centre, so the largest
        move is at a corner. 0 for the reference.

        Returns
        -------
        ndarray, shape (F,), float64
        """
        h, w = self.valid.shape
        centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
        corners = np.array([[0, 0], [0, w - 1], [h - 1, 0], [h - 1, w - 1]], float) - centre
        moves = []
        for scale, angle, shift in zip(self.scale, self.rotation, self.shift):
            c, s = np.cos(angle), np.sin(angle)
            moved = corners @ np.array([[c, s], [-s, c]]) * scale + shift
            moves.append(float(np.max(np.hypot(*(moved - corners).T))))
        return np.array(moves)

    def summary(self) -> str:
        """One line per slice: scale, shift, rotation and residual (before and after)."""
        lines = [(f"aligned onto slice {self.reference}; every slice covers "
                  f"{self.valid.mean():.1%} of the frame"),
                 "slice     scale   shift rows  cols   rotation deg   residual px  (before)"]
        for f in range(self.scale.size):
            lines.append(f"{f:5d}  {self.scale[f]:8.5f}   {self.shift[f, 0]:+8.2f} "
                         f"{self.shift[f, 1]:+6.2f}   {np.degrees(self.rotation[f]):+12.4f}"
                         f"   {self.residual[f]:11.3f}  ({self.residual_before[f]:.3f})")
        return "\n".join(lines)


def align_stack(stack, *, reference="largest", smoothing: float = 3.0,
                refinements: int = 1) -> Alignment:
    """Undo focus breathing: warp every slice of a focal stack onto a reference slice.

    Parameters
    ----------
    stack : array_like, shape (F, H, W, C) or (F, H, W)
        The focal stack: F >= 2 slices in the order of their focus
        distances (each is registered to its neighbours), H and W at least
        32. uint8/uint16 are scaled to [0, 1]. The estimate uses the mean
        over channels.
    reference : "largest" or int
        The slice whose frame the others are warped into. ``"largest"``
        (default): the slice the estimates find the most magnified, so that
        the others are enlarged to match and every output pixel holds data
        (a shrunk slice would leave its borders empty). For a lens that
        focuses by moving as a whole that is the slice focused nearest.
    smoothing : float
        Standard deviation (pixels) of the Gaussian applied to the grey
        images before the flow is measured, at most a 32nd of the smaller
        image side; 0 disables it.
    refinements : int
        Full-resolution passes of the estimate, each on the slice warped by
        the one before. One is enough on the rendered stacks.

    Returns
    -------
    Alignment

    Raises
    ------
    ValueError
        Fewer than 2 slices, images smaller than 32 x 32, non-finite
        values, ``reference`` out of range.
    TypeError
        ``reference`` neither ``"largest"`` nor an integer.

    Warns
    -----
    UserWarning
        A slice's estimated scale or rotation differs from the reference's
        by more than :data:`IMPLAUSIBLE` (10 %, 0.1 rad): more than breathing
        does, so the slices may not show the same view.

    Examples
    --------
    >>> import dfd_lite as dl
    >>> scene = dl.synthetic_scene((120, 160), seed=1)
    >>> cam = dl.Camera(0.05, 16.0, 1.2e-5, (1.0, 1.5, 2.5, 4.0, 6.0), 1.0)
    >>> stack = dl.render_physical(scene.aif, scene.depth, cam, breathing="thin_lens")
    >>> al = dl.align_stack(stack)
    >>> al.reference
    0
    >>> true = dl.thin_lens_magnification(cam)
    >>> bool(abs(al.scale[-1] / (true[-1] / true[0]) - 1) < 0.002)
    True
    """
    b, gray = V.as_stack(stack)
    n_f, h, w = b.shape[:3]
    if n_f < 2:
        raise ValueError(f"stack must have at least 2 slices to align, got {n_f}")
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"stack images must be at least {MIN_SIDE} x {MIN_SIDE} pixels to "
                         f"be registered, got {h} x {w}")
    smoothing = V.as_real(smoothing, "smoothing", at_least=0.0)
    refinements = V.as_positive_int(refinements, "refinements")
    ref = _reference_index(reference, n_f)

    # on small images a wide Gaussian would leave too little detail: a 2 px
    # shift of a 32 px image was found within 0.06 px with 1 px, 0.5 px with 3
    smoothing = min(smoothing, min(h, w) / 32)
    grey = _grey(b, smoothing)
    half = min(h, w) >= HALF_RES_SIDE
    # each step maps the (x, y) coordinates of slice f to those of slice f + 1
    to_first = [_identity()]                       # slice 0's coordinates -> slice f's
    for f in range(n_f - 1):
        to_first.append(to_first[-1] + _register_pair(grey[f], grey[f + 1], refinements, half))
    if ref is None:
        ref = int(np.argmax([t.scale for t in to_first]))
    tforms = [to_first[ref].inverse + t for t in to_first]   # reference -> slice f
    tforms[ref] = _identity()

    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])       # (x, y)
    scale = np.array([t.scale for t in tforms])
    # skimage's angle turns x towards y, which is clockwise with rows down
    rotation = np.array([-t.rotation for t in tforms])
    rotation[ref] = 0.0                     # the negation above made it -0.0
    shift = np.array([(t(centre[None])[0] - centre)[::-1] for t in tforms])
    _warn_implausible(scale, rotation)

    valid = np.ones((h, w), dtype=bool)
    for t in tforms:
        valid &= _covered(t, h, w)
    aligned = np.stack([b[f] if f == ref else _warp(b[f], tforms[f]) for f in range(n_f)])
    grey_aligned = _grey(aligned, smoothing)
    residual, before = np.zeros(n_f), np.zeros(n_f)
    for f in range(n_f):
        if f != ref:
            residual[f] = _rms_flow(grey[ref], grey_aligned[f], valid, half)
            before[f] = _rms_flow(grey[ref], grey[f], valid, half)
    out = np.ascontiguousarray(aligned[..., 0] if gray else aligned, dtype=np.float32)
    return Alignment(out, scale, rotation, shift, residual, before, ref, valid)


def _reference_index(reference, n_f):
    """``None`` for ``"largest"`` (found from the estimates), else the checked index."""
    if isinstance(reference, str):
        if reference != "largest":
            raise ValueError(f"reference must be 'largest' or a slice index, got {reference!r}")
        return None
    if isinstance(reference, (bool, np.bool_)) or not isinstance(reference, (int, np.integer)):
        raise TypeError(f"reference must be 'largest' or an integer slice index, "
                        f"got {type(reference).__name__}")
    if not 0 <= reference < n_f:
        raise ValueError(f"reference must be a slice index in [0, {n_f - 1}], got {reference}")
    return int(reference)


def _warn_implausible(scale, rotation):
    for f in range(scale.size):
        if abs(np.log(scale[f])) > IMPLAUSIBLE or abs(rotation[f]) > IMPLAUSIBLE:
            warnings.warn(
                f"slice {f} is estimated at scale {scale[f]:.3f} and rotation "
                f"{np.degrees(rotation[f]):.1f} degrees relative to the reference; focus "
                f"breathing is a few per cent, so the slices may not show the same view "
                f"(see residual)", UserWarning, stacklevel=3)


def _identity():
    from skimage.transform import SimilarityTransform
    return SimilarityTransform()


def _grey(b, smoothing):
    """(F, H, W) float64: the channel mean, Gaussian-smoothed per slice."""
    grey = b.mean(axis=-1, dtype=np.float64)
    if smoothing > 0:
        grey = ndi.gaussian_filter(grey, (0, smoothing, smoothing))
    return grey


def _half(img):
    """Half-resolution image: its pixel ``i`` is centred on full-resolution ``2 i + 0.5``."""
    from skimage.transform import rescale
    return rescale(img, 0.5, anti_aliasing=True)


def _textured(a, b, border):
    """The textured half of the pixels of both images, ``border`` pixels from the edge.

    Texture is the smaller eigenvalue of the structure tensor: large only
    where an image varies in two directions, which is where a flow is
    determined.
    """
    from skimage.feature import structure_tensor, structure_tensor_eigenvalues

    def smallest_eigenvalue(img):
        return structure_tensor_eigenvalues(structure_tensor(img, sigma=2.0, mode="nearest"))[-1]

    texture = np.minimum(smallest_eigenvalue(a), smallest_eigenvalue(b))
    inner = np.zeros(a.shape, dtype=bool)
    inner[border:a.shape[0] - border, border:a.shape[1] - border] = True
    return inner & (texture >= np.quantile(texture[inner], 1.0 - _TEXTURED_FRACTION))


def _tvl1_border(shape):
    return max(1, min(8, min(shape) // 8))


def _correspondences(ref, mov, method):
    """(x, y) points of ``ref`` and where the optical flow finds them in ``mov``.

    ``"tvl1"`` follows displacements of several pixels (coarse to fine);
    ``"ilk"`` is local, so its bias at the image edge stays within one
    window, which is left out. Only textured pixels are returned.
    """
    from skimage.registration import optical_flow_ilk, optical_flow_tvl1

    if method == "tvl1":
        v, u = optical_flow_tvl1(ref, mov, **_TVL1)
        border = _tvl1_border(ref.shape)
    else:
        radius = max(2, min(_ILK_RADIUS, min(ref.shape) // 4 - 2))
        v, u = optical_flow_ilk(ref, mov, radius=radius)
        border = radius + 2
    mask = _textured(ref, mov, border)
    rows, cols = np.nonzero(mask)
    src = np.column_stack([cols, rows]).astype(np.float64)
    return src, src + np.column_stack([u[mask], v[mask]])


def _robust_fit(src, dst):
    """Similarity ``src -> dst``, refitted after trimming points beyond 3 robust sigmas."""
    from skimage.transform import SimilarityTransform

    keep = np.ones(len(src), dtype=bool)
    for _ in range(3):
        model = SimilarityTransform.from_estimate(src[keep], dst[keep])
        if not model:   # collinear points only: cannot happen on a 2-D pixel grid
            raise RuntimeError(f"the similarity fit failed: {model}")
        distance = model.residuals(src, dst)
        # 1.4826 MAD is the standard deviation of Gaussian errors; the floor
        # keeps an exact fit (noise-free data) from trimming everything
        keep = distance <= max(3.0 * 1.4826 * np.median(distance), 0.05)
    return model


def _register_pair(ref, mov, refinements, half):
    """Similarity mapping the (x, y) coordinates of ``ref`` onto those of ``mov``."""
    from skimage.transform import warp

    if half:
        src, dst = _correspondences(_half(ref), _half(mov), "tvl1")
        tform = _robust_fit(2.0 * src + 0.5, 2.0 * dst + 0.5)
    else:
        tform = _robust_fit(*_correspondences(ref, mov, "tvl1"))
    for _ in range(refinements):
        # measure only what the estimate leaves: ref(p) ~ moved(p + d) = mov(tform(p + d))
        moved = warp(mov, tform, order=3, mode="edge")
        src, dst = _correspondences(*_match_blur(ref, moved), "ilk")
        tform = _robust_fit(src, tform(dst))
    return tform


def _match_blur(a, b):
    """``a`` and ``b`` with the sharper of the two blurred to look most like the other.

    A symmetric blur moves nothing, so the flow between the pair keeps its
    meaning, while the detail only one of them has, the flow's main noise,
    is gone. The Gaussian is chosen from :data:`_MATCH_SIGMAS` by the mean
    squared difference away from the edge. One blur for the whole image
    cannot match every depth, but it halved the worst scale error (the
    near-focused pair of a 120 x 160 Middlebury stack: 0.5 % to 0.2 %).
    """
    h, w = a.shape
    inner = (slice(h // 8, h - h // 8), slice(w // 8, w - w // 8))
    best, best_error = (a, b), np.inf
    # a blur wider than a sixteenth of the image would leave nothing to register
    for sigma in (sg for sg in _MATCH_SIGMAS[1:] if sg <= min(h, w) / 16):
        for pair in ((ndi.gaussian_filter(a, sigma), b), (a, ndi.gaussian_filter(b, sigma))):
            error = np.mean((pair[0][inner] - pair[1][inner]) ** 2)
            if error < best_error:
                best, best_error = pair, error
    if np.mean((a[inner] - b[inner]) ** 2) <= best_error:
        return a, b
    return best


def _warp(img, tform):
    """``img`` (H, W, C) in the reference frame: ``out(p) = img(tform(p))``."""
    from skimage.transform import warp
    return warp(img, tform, order=3, mode="edge", preserve_range=True).astype(np.float32)


def _covered(tform, h, w):
    """Reference pixels whose position in the slice lies inside the slice."""
    rows, cols = np.mgrid[0:h, 0:w]
    xy = tform(np.column_stack([cols.ravel(), rows.ravel()]).astype(np.float64))
    eps = 1e-6   # the reference's own corners map onto the slice's up to rounding
    inside = ((xy[:, 0] >= -eps) & (xy[:, 0] <= w - 1 + eps)
              & (xy[:, 1] >= -eps) & (xy[:, 1] <= h - 1 + eps))
    return inside.reshape(h, w)


def _rms_flow(ref, img, valid, half):
    """RMS length (full-resolution px) of the TV-L1 flow ``ref -> img``, textured valid pixels."""
    from skimage.registration import optical_flow_tvl1

    ref, img = _match_blur(ref, img)     # unequal blur alone would read as flow
    factor = 1.0
    if half:
        ref, img, factor = _half(ref), _half(img), 2.0
        valid = _half(valid.astype(np.float64)) > 0.999
    v, u = optical_flow_tvl1(ref, img, **_TVL1)
    textured = _textured(ref, img, _tvl1_border(ref.shape))
    mask = textured & valid
    if not mask.any():   # no pixel is covered by every slice: measure where there is data
        mask = textured
    return float(factor * np.sqrt(np.mean(u[mask] ** 2 + v[mask] ** 2)))
