"""The depth step: all-in-focus image fixed, search each pixel's depth.

In the gather model the prediction at pixel ``p`` depends on the depth at
``p`` alone, so the depth problem splits into one 1-D problem per pixel::

    Z(p) = argmin_Z  sum_i sum_c (b_i(p) - [A(Z) x]_i(p))^2

Solved in three moves, written once in :class:`DepthSearch` over an engine
(:mod:`dfd_lite.engines`), so the CPU and the GPU run the same algorithm:

1. :func:`grid_search` - try ``num_Z`` candidate depths. Every candidate is
   the same depth everywhere, so each is a separable blur; a running
   minimum keeps memory at a few ``(H, W)`` maps per chunk of candidates.
2. :func:`golden_section_refine` - golden-section search inside
   ``[Z_{k-1}, Z_{k+1}]`` around the grid minimum, all pixels at once: each
   step is one spatially varying per-pixel loss evaluation.
3. A safeguard keeps the previous depth wherever it has the lower loss.

:func:`golden_section_search` is the plain scalar algorithm, for teaching
and as the independent oracle of the vectorised one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validate as V
from . import engines
from .engines import _scalar
from .engines._scalar import GOLDEN
from .optics import Camera, psf_radius, resolve_kernel_size, thin_lens_coefficients

__all__ = [
    "depth_candidates",
    "golden_section_search",
    "pixel_loss",
    "depth_loss_volume",
    "grid_search",
    "golden_section_refine",
    "depth_step",
    "DepthResult",
    "DepthSearch",
]


#: Regulariser of the guided filter (guide in [0, 1]): local contrast
#: (variance) well above it is an edge the aggregation keeps, below it the
#: filter averages like a box.
GUIDED_EPS = 1e-3

#: How the grid search can aggregate each candidate's loss over a window.
AGGREGATIONS = ("box", "guided")

#: Radius step (pixels) of the disc's blur bank in the grid search
#: (:func:`dfd_lite.engines.radius_bank`). A disc costs O(r) per pixel and
#: the candidates' radii almost never coincide, so the grid blurs the image
#: once per multiple of this step and interpolates between two; the
#: golden-section refinement then evaluates exact discs. At 0.25 px the
#: interpolated loss maps of the Middlebury scene are within 0.2 % of the
#: exact ones, the grid picks the same candidate at 90-93 % of pixels, and
#: it runs 6 times faster where radii are at most 12 px (1.7 times over
#: 0.1 - 10 m, whose widest discs dominate; bench/README.md, "The disc's
#: blur bank"). The paper's Gaussian, separable and cheap, keeps exact radii.
DISC_RADIUS_STEP = 0.25


def depth_candidates(depth_range, num_depths: int = 100, *, spacing: str = "linear"):
    """Candidate depths for the grid search, in metres.

    Parameters
    ----------
    depth_range : (float, float)
        ``(near, far)`` in metres, near < far.
    num_depths : int
        Number of candidates (>= 2).
    spacing : {"linear", "inverse"}
        ``"linear"`` as in the reference; ``"inverse"`` spaces candidates
        evenly in 1/Z, which matches how blur changes with depth.

    Returns
    -------
    ndarray, float64
        Shape ``(num_depths,)``, increasing.
    """
    lo, hi = V.as_depth_range(depth_range)
    n = V.as_positive_int(num_depths, "num_depths", minimum=2)
    if spacing == "linear":
        return np.linspace(lo, hi, n)
    if spacing == "inverse":
        return np.sort(1.0 / np.linspace(1.0 / lo, 1.0 / hi, n))
    raise ValueError(f"spacing must be 'linear' or 'inverse', got {spacing!r}")


def golden_section_search(fn, lo: float, hi: float, *, xtol: float = 1e-2,
                          num_iters: int = 200):
    """Minimise a 1-D function on ``[lo, hi]`` by golden-section search.

    The plain scalar algorithm, for teaching and as the oracle of the
    vectorised :func:`golden_section_refine`. Assumes ``fn`` is unimodal on
    the bracket; otherwise it finds a local minimum.

    Parameters
    ----------
    fn : callable
        ``fn(z) -> float``.
    lo, hi : float
        The bracket.
    xtol : float
        Stop when the bracket is narrower than this (units of ``lo``, ``hi``).
    num_iters : int
        Most steps to take.

    Returns
    -------
    (float, float)
        The best point evaluated and its value.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    lo, hi = V.as_real(lo, "lo"), V.as_real(hi, "hi")
    if not hi > lo:
        raise ValueError(f"need lo < hi, got lo={lo!r}, hi={hi!r}")
    xtol = V.as_real(xtol, "xtol", above=0.0)
    num_iters = V.as_positive_int(num_iters, "num_iters", minimum=0)
    c = hi - GOLDEN * (hi - lo)
    d = lo + GOLDEN * (hi - lo)
    fc, fd = fn(c), fn(d)
    for _ in range(num_iters):
        if hi - lo <= xtol:
            break
        if fc <= fd:  # the minimum is in [lo, d]
            hi, d, fd = d, c, fc
            c = hi - GOLDEN * (hi - lo)
            fc = fn(c)
        else:         # the minimum is in [c, hi]
            lo, c, fc = c, d, fd
            d = lo + GOLDEN * (hi - lo)
            fd = fn(d)
    return (c, fc) if fc <= fd else (d, fd)


# ---------------------------------------------------------------------------
# The depth search, written once over an engine
# ---------------------------------------------------------------------------

class DepthSearch:
    """Grid search, golden-section refinement and safeguard on one engine.

    Holds the stack and the optics on the engine's device so that the solver
    can run one depth step per epoch without moving them. Arrays in and out
    are engine arrays, planar: images ``(C, H, W)``, stacks
    ``(F, C, H, W)``, maps ``(H, W)``.

    Parameters
    ----------
    engine : engine
    b : engine array, shape (F, C, H, W), float32
    camera : Camera
    kernel_size : int
    """

    def __init__(self, engine, b, camera, kernel_size):
        self.engine, self.b, self.camera, self.k = engine, b, camera, int(kernel_size)
        self.optics = engine.optics(thin_lens_coefficients(camera), camera.psf)
        self.shape = tuple(int(s) for s in b.shape[2:])
        self.radius_step = DISC_RADIUS_STEP if camera.psf == "disc" else None
        self._cands = None   # (bytes, engine array) of the last candidates refined around

    def _on_engine(self, cands):
        """``cands`` on the engine, copied once: a solve refines around the same grid every epoch."""
        key = np.asarray(cands, dtype=np.float32).tobytes()
        if self._cands is None or self._cands[0] != key:
            self._cands = (key, self.engine.asarray(cands))
        return self._cands[1]

    def loss(self, x, depth, out=None):
        """Per-pixel loss ``sum_f sum_c (b - A(depth) x)^2``."""
        return self.engine.pixel_loss(x, self.b, depth, self.optics, self.k, out=out)

    def grid(self, x, cands, window=1, aggregation="box", guide=None):
        """Best candidate at every pixel: ``(index int32, aggregated loss)``.

        Candidates are taken in chunks that the engine can hold; when
        ``window > 1`` each chunk's loss maps are aggregated (a box mean, or
        a guided filter steered by the image ``x``) and folded into a
        running minimum, so the whole ``(N, H, W)`` volume never exists.
        ``guide`` is :meth:`guide` of ``x``, if the caller has it already.
        """
        eng = self.engine
        if window > 1 and aggregation == "guided":
            guide = self.guide(x) if guide is None else guide
        else:
            guide = None
        radii = psf_radius(cands, self.camera).T.astype(np.float32)      # (N, F), clamped
        n_f, n_c = radii.shape[1], int(x.shape[0])
        chunk = eng.grid_chunk(len(cands), self.shape, n_f, n_c)
        volume = eng.scratch("grid_volume", (chunk,) + self.shape)
        best = eng.empty(self.shape)                  # the first fold_min fills them
        index = eng.empty(self.shape, np.int32)
        for n0 in range(0, len(cands), chunk):
            part = radii[n0:n0 + chunk]
            losses = volume[:len(part)]
            eng.constant_depth_losses(x, self.b, part, self.k, losses, self.camera.psf,
                                      radius_step=self.radius_step)
            if guide is not None:
                eng.guided_mean(losses, guide, window, GUIDED_EPS)
            elif window > 1:
                eng.box_mean(losses, window)
            eng.fold_min(losses, n0, best, index)
        return index, best

    def depth_std(self, x, depth, step, *, window=1, aggregation="box", noise_std=0.0):
        """Per-pixel standard deviation of the depth (metres), from the loss curvature.

        The loss is evaluated at ``depth`` and ``depth -/+ step`` (metres),
        aggregated like the grid search, and its second difference gives the
        curvature ``L''`` in depth. A loss that is a sum of squared residuals
        of Gaussian noise of standard deviation ``s`` is ``2 s^2`` times a
        negative log-likelihood, so (Laplace's approximation) the depth's
        variance is ``2 s^2 / (n L'')``, with ``n = window^2`` pixels in an
        aggregation window. Flat or concave losses (textureless regions,
        ambiguous depths) give ``inf``. Returns a host array (H, W).
        """
        eng = self.engine
        maps = eng.empty((3,) + self.shape)
        host_depth = eng.to_host(depth).astype(np.float32)
        floor = np.float32(self.camera.focal_length * 1.001)
        for i, shift in enumerate((-step, 0.0, step)):
            self.loss(x, eng.asarray(np.maximum(host_depth + np.float32(shift), floor)),
                      out=maps[i])
        if window > 1 and aggregation == "guided":
            eng.guided_mean(maps, self.guide(x), window, GUIDED_EPS)
        elif window > 1:
            eng.box_mean(maps, window)
        lo, mid, hi = eng.to_host(maps).astype(np.float64)
        curvature = (lo + hi - 2.0 * mid) / step ** 2
        sigma2 = 2.0 * float(noise_std) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.where(curvature > 0, sigma2 / (window * window * curvature), np.inf)
        return np.sqrt(var).astype(np.float32)

    def guide(self, x):
        """The grey level of the image ``x`` over the stack's frame, on the engine: the guided filter's guide."""
        eng = self.engine
        h, w = self.shape
        host = eng.to_host(x)
        m = (host.shape[1] - h) // 2
        return eng.asarray(host[:, m:m + h, m:m + w].mean(axis=0))

    def refine(self, x, cands, index, depth_tol, evaluations=None):
        """Golden-section search in ``[Z_{k-1}, Z_{k+1}]`` around ``index``, all pixels at once.

        Every pixel takes the same number of steps, set by the widest
        bracket; each step evaluates every pixel's loss at the depth its
        search asks for and updates its state with the shared
        ``golden_advance`` (``dfd_lite.engines._scalar``): on the CPU one
        image-wide pass per step, on the GPU all steps in one kernel.

        Returns ``(depth, loss)``: the best depth evaluated at each pixel
        (the grid point included, so never worse than it) and its loss.
        """
        eng = self.engine
        if evaluations is None:
            evaluations = _scalar.golden_steps(cands, depth_tol) + 3
        state = eng.empty((_scalar.STATE_ROWS,) + self.shape)
        eng.golden_init(state, self._on_engine(cands), index)
        eng.golden_search(x, self.b, state, self.optics, self.k, evaluations)
        return state[_scalar.BEST_Z], state[_scalar.BEST_F]

    def step(self, x, cands, *, window=1, aggregation="box", depth_tol=1e-2, previous=None,
             refine=True):
        """Grid search, refinement and safeguard: ``(depth, loss, index, kept)``.

        The safeguard keeps the previous depth where it explains the stack
        better. With ``window > 1`` it compares the losses aggregated the
        same way as the grid search: compared pixel by pixel, noise would
        hand most pixels back to the previous (per-pixel noisy) estimate and
        undo the aggregation.
        """
        eng = self.engine
        guide = self.guide(x) if window > 1 and aggregation == "guided" else None
        index, _ = self.grid(x, cands, window, aggregation, guide)
        # Without refinement the "search" evaluates the grid point only.
        depth, loss = self.refine(x, cands, index, depth_tol, None if refine else 1)
        kept = eng.full(self.shape, False, np.bool_)
        if previous is None:
            return depth, loss, index, kept
        if window == 1:
            eng.keep_better(depth, loss, previous, self.loss(x, previous), kept)
            return depth, loss, index, kept
        pair = eng.empty((2,) + self.shape)
        eng.lincomb(loss, 1.0, loss, 0.0, out=pair[0])
        self.loss(x, previous, out=pair[1])
        if guide is not None:
            eng.guided_mean(pair, guide, window, GUIDED_EPS)
        else:
            eng.box_mean(pair, window)
        eng.keep_better(depth, pair[0], previous, pair[1], kept)
        return depth, self.loss(x, depth), index, kept


def _prepare(aif, stack, camera, kernel_size, backend):
    """Validated inputs on the engine: ``(search, x)``."""
    V.check_camera(camera)
    b, _ = V.as_stack(stack, camera)
    b = V.check_stack_values(b, camera, stacklevel=4)   # user -> public function -> here
    x, _ = V.as_image(aif, "aif")
    if x.shape != b.shape[1:]:
        raise ValueError(f"aif has shape {x.shape} but the stack's images are {b.shape[1:]}")
    h, w = x.shape[:2]
    k = resolve_kernel_size(kernel_size, (h, w))
    eng = engines.resolve(backend, psf=camera.psf)
    search = DepthSearch(eng, eng.asarray(np.moveaxis(b, -1, 1)), camera, k)
    return search, eng.asarray(np.moveaxis(x, -1, 0))


def check_window(window):
    """A box window: an odd integer >= 1."""
    window = V.as_positive_int(window, "window")
    if window % 2 == 0:
        raise ValueError(f"window must be odd, got {window}")
    return window


def check_candidates(candidates, camera=None):
    """Candidate depths: float32, 1-D, at least 2, finite, strictly increasing, and
    beyond the focal length (positive when no camera is given)."""
    cands = V.as_numeric_array(candidates, "candidates").astype(np.float64)
    if cands.ndim != 1 or cands.size < 2:
        raise ValueError("candidates must be a 1-D array of at least 2 depths")
    if not np.all(np.isfinite(cands)) or np.any(cands <= 0) or np.any(np.diff(cands) <= 0):
        raise ValueError("candidates must be finite, positive and strictly increasing")
    if camera is not None and cands[0] <= camera.focal_length:
        raise ValueError(f"candidates start at {cands[0]:g} m, not beyond the focal length "
                         f"({camera.focal_length:g} m): the thin-lens model images nothing there")
    cands32 = cands.astype(np.float32)
    if np.any(np.diff(cands32) <= 0):
        raise ValueError("candidates are closer than float32 can tell apart")
    return cands32


def check_depth_tol(depth_tol):
    return V.as_real(depth_tol, "depth_tol", above=0.0)


def pixel_loss(aif, stack, depth, camera: Camera, *, kernel_size=None, backend="auto"):
    """Per-pixel data loss ``sum_i sum_c (b_i(p) - [A(Z) x]_i(p))^2``.

    Parameters
    ----------
    aif : array_like, shape (H, W, C) or (H, W)
    stack : array_like, shape (F, H, W, C) or (F, H, W)
    depth : array_like, shape (H, W)
    camera : Camera
    kernel_size : int, optional
    backend : {"auto", "cpu", "cuda"} or engine

    Returns
    -------
    ndarray, shape (H, W), float32
    """
    search, x = _prepare(aif, stack, camera, kernel_size, backend)
    z = V.as_depth(depth, shape=search.shape)
    return search.engine.to_host(search.loss(x, search.engine.asarray(z)))


def depth_loss_volume(aif, stack, camera: Camera, candidates, *, kernel_size=None,
                      backend="auto"):
    """The per-pixel loss of every candidate depth, as one volume.

    For teaching and plots on small images: the solver never stores this.

    Returns
    -------
    ndarray, float32
        Shape ``(len(candidates), H, W)``.
    """
    search, x = _prepare(aif, stack, camera, kernel_size, backend)
    cands = V.as_numeric_array(candidates, "candidates").astype(np.float64)
    if cands.ndim != 1 or cands.size == 0 or np.any(cands <= 0) or not np.all(np.isfinite(cands)):
        raise ValueError("candidates must be a non-empty 1-D array of positive depths")
    eng = search.engine
    # float32 depths, as grid_search uses them, so both rank candidates alike
    radii = psf_radius(cands.astype(np.float32), camera).T.astype(np.float32)
    out = eng.empty((cands.size,) + search.shape)
    return eng.to_host(eng.constant_depth_losses(x, search.b, radii, search.k, out, camera.psf))


def grid_search(aif, stack, camera: Camera, candidates, *, kernel_size=None, window: int = 1,
                backend="auto"):
    """Best candidate depth at every pixel.

    Parameters
    ----------
    aif : array_like, shape (H, W, C) or (H, W)
        Current all-in-focus estimate.
    stack : array_like, shape (F, H, W, C) or (F, H, W)
    camera : Camera
    candidates : array_like, shape (N,)
        Increasing candidate depths in metres (:func:`depth_candidates`).
    kernel_size : int, optional
    window : int
        Odd side of a box over which the per-pixel loss is averaged before
        the comparison (1 = no averaging). Larger windows steady the depth
        in weakly textured regions at the price of detail.
    backend : {"auto", "cpu", "cuda"} or engine

    Returns
    -------
    index : ndarray, shape (H, W), int64
        Index of the best candidate.
    loss : ndarray, shape (H, W), float32
        Its (windowed) loss.
    """
    cands = check_candidates(candidates, V.check_camera(camera))
    window = check_window(window)
    search, x = _prepare(aif, stack, camera, kernel_size, backend)
    index, loss = search.grid(x, cands, window)
    eng = search.engine
    return eng.to_host(index).astype(np.int64), eng.to_host(loss)


def golden_section_refine(aif, stack, camera: Camera, candidates, index, *, kernel_size=None,
                          depth_tol: float = 1e-2, backend="auto"):
    """Refine grid-search depths by golden-section search in ``[Z_{k-1}, Z_{k+1}]``.

    Parameters
    ----------
    aif, stack, camera, candidates, kernel_size
        As for :func:`grid_search`.
    index : array_like, shape (H, W), int
        The grid minimum at each pixel.
    depth_tol : float
        Stop when every bracket is narrower than this, metres.
    backend : {"auto", "cpu", "cuda"} or engine

    Returns
    -------
    depth : ndarray, shape (H, W), float32
    loss : ndarray, shape (H, W), float32
        Per-pixel loss at ``depth``; never above the loss at the grid depth.
    """
    cands = check_candidates(candidates, V.check_camera(camera))
    depth_tol = check_depth_tol(depth_tol)
    search, x = _prepare(aif, stack, camera, kernel_size, backend)
    idx = V.as_numeric_array(index, "index")
    if idx.shape != search.shape or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"index must be an integer array of shape {search.shape}")
    if idx.min() < 0 or idx.max() >= cands.size:
        raise ValueError("index is out of range of candidates")
    eng = search.engine
    depth, loss = search.refine(x, cands, eng.asarray(idx, np.int32), depth_tol)
    return eng.to_host(depth), eng.to_host(loss)


@dataclass
class DepthResult:
    """Output of :func:`depth_step`.

    Attributes
    ----------
    depth : ndarray, shape (H, W), float32
    loss : ndarray, shape (H, W), float32
        Per-pixel loss at ``depth``.
    grid_index : ndarray, shape (H, W), int64
        The grid-search minimum before refinement.
    kept_previous : ndarray, shape (H, W), bool
        Where the safeguard kept the previous depth.
    """

    depth: np.ndarray
    loss: np.ndarray
    grid_index: np.ndarray
    kept_previous: np.ndarray


def depth_step(aif, stack, camera: Camera, candidates, *, kernel_size=None, window: int = 1,
               depth_tol: float = 1e-2, previous_depth=None, refine: bool = True,
               backend="auto"):
    """One depth update: grid search, golden-section refinement, safeguard.

    Parameters
    ----------
    aif : array_like, shape (H, W, C) or (H, W)
    stack : array_like, shape (F, H, W, C) or (F, H, W)
    camera : Camera
    candidates : array_like, shape (N,)
    kernel_size : int, optional
    window : int
        Box window of the grid-search loss (see :func:`grid_search`). The
        refinement and the safeguard use the per-pixel loss.
    depth_tol : float
        Golden-section tolerance, metres.
    previous_depth : array_like, shape (H, W), optional
        Kept wherever its loss under this ``aif`` is lower, so the loss of
        the depth step never increases.
    refine : bool
        Skip the golden-section step when False.
    backend : {"auto", "cpu", "cuda"} or engine

    Returns
    -------
    DepthResult
        Host arrays. The depth map is ``result.depth``.
    """
    cands = check_candidates(candidates, V.check_camera(camera))
    window = check_window(window)
    depth_tol = check_depth_tol(depth_tol)
    search, x = _prepare(aif, stack, camera, kernel_size, backend)
    eng = search.engine
    prev = None if previous_depth is None else \
        eng.asarray(V.as_depth(previous_depth, "previous_depth", shape=search.shape))
    depth, loss, index, kept = search.step(x, cands, window=window, depth_tol=depth_tol,
                                           previous=prev, refine=refine)
    return DepthResult(eng.to_host(depth), eng.to_host(loss),
                       eng.to_host(index).astype(np.int64), eng.to_host(kept))
