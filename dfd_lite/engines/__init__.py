"""Engines: where the kernels run, behind one small interface.

The algorithms of ``dfd_lite`` (FISTA, power iteration, the grid-search
driver, golden-section refinement, the safeguard, the alternation) are
written once, in the concept modules, and call an *engine* for the
primitives below. ``resolve(backend)`` turns ``"auto"``, ``"cpu"`` or
``"cuda"`` into an engine, once per public call (or once per solve); the
arrays then stay on that engine's device until the result is returned.

Two engines implement the same primitives:

* :class:`~dfd_lite.engines.cpu.CpuEngine` - Numba kernels, parallel
  over image rows, on NumPy arrays;
* ``dfd_lite.engines.cuda.CudaEngine`` - numba-cuda kernels on device
  arrays, imported only when a GPU (or Numba's simulator) is asked for.

Per-pixel logic that both need (the thin-lens radius, the Gaussian, the disc's rows, the
golden-section state machine, the running minimum, the safeguard) lives in
``dfd_lite.engines._scalar`` and is compiled for each target from the
same source.

The primitives (planar float32 arrays: images ``(C, H, W)``, stacks
``(F, C, H, W)``, per-pixel weights ``(F, K, H, W)``, maps ``(H, W)``)::

    asarray(a, dtype)           host array -> engine array (no copy if already there)
    to_host(a)                  engine array -> NumPy array
    empty(shape, dtype), full(shape, value, dtype), copy(a)
    scratch(name, shape, dtype)  a work buffer the engine may keep for the next call
    optics(coefficients, psf)   thin_lens_coefficients(camera) and camera.psf -> Optics
    weights(depth, optics, k, out=None)           -> (F, K, H, W) taps, or DiscWeights
    forward(x, weights, out=None)                 A x        -> (F, C, H, W)
    adjoint(y, weights, out=None, minus=None)     A^T (y - minus) -> (C, H, W)
    prox_step(y, g, step, lo, hi, out)            clip(y - step g, lo, hi)
    extrapolate(new, old, beta, out)              new + beta (new - old)
    scale(a, factor, out)                         factor * a
    multiply(a, m, out)                           a * m, the map m repeated over a's leading axes
    lincomb(a, alpha, b, beta, out)               alpha a + beta b
    tv_grad(x, out), tv_div(p, out)               forward differences (2, C, H, W), minus their adjoint
    tv_project(p, bound)                          each pixel of p onto the ball of radius bound
    tv_norm(x) -> float                           vectorial total variation of x
    sum_sq(a, b=None) -> float                    ||a - b||^2, accumulated in float64
    pixel_loss(x, b, depth, optics, k, out=None)  per-pixel data loss of a depth map
    constant_depth_losses(x, b, radii, k, out, psf, radius_step=None)
                                                  per-pixel loss of m constant depths (radius_bank)
    box_mean(volume, window)                      in place, edges repeated
    guided_mean(volume, guide, window, eps)       in place: guided filter of every map by one image
    fold_min(volume, n0, best, index)             running minimum over candidates (n0 == 0 starts it)
    golden_init(state, cands, index)
    golden_search(x, b, state, optics, k, evaluations)   evaluate, then _scalar.golden_advance, repeated
    keep_better(depth, loss, prev_depth, prev_loss, kept)
    grid_chunk(n_candidates, shape, n_f, n_c) -> int
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

BACKENDS = ("auto", "cpu", "cuda")

__all__ = ["BACKENDS", "TESTED_NUMBA_CUDA", "Optics", "DiscWeights", "RadiusBank", "radius_bank",
           "resolve", "auto_backend", "numba_cuda_version", "cuda_available", "cuda_simulated", "is_engine"]


def cuda_simulated() -> bool:
    """True when ``NUMBA_ENABLE_CUDASIM=1`` replaced the GPU by Numba's simulator."""
    from numba import config
    return bool(getattr(config, "ENABLE_CUDASIM", 0))


class Optics(NamedTuple):
    """What the kernels need of a camera, on the engine's device (``engine.optics``).

    ``focus``, ``coef`` and ``min_radius`` are
    :func:`dfd_lite.optics.thin_lens_coefficients`; ``psf`` is the PSF's
    shape, ``"gaussian"`` or ``"disc"``.
    """

    focus: object
    coef: object
    min_radius: float
    psf: str


class DiscWeights(NamedTuple):
    """Per-pixel disc PSFs in a ``K x K`` window.

    Rows ``dy`` and ``-dy`` of the PSF of pixel ``p`` in slice ``f`` are
    boxes of half-width ``half_width[f, dy, p]`` (``dy = 0 .. K // 2``: a disc
    is symmetric, so only half its rows are stored), anti-aliased at their
    ends (``_scalar.disc_half_width``); the PSF is the
    sum of the rows times ``inv_area[f, p]``. On the CPU a row costs O(1)
    with prefix sums, so a disc of radius r costs O(r) per pixel.

    The fields: ``half_width``, an engine array ``(F, K // 2 + 1, H, W)``
    float32; ``inv_area``, ``(F, H, W)`` float32; ``kernel_size``, the
    window ``K``; ``row_extent``, ``(F, H, ceil(W / 64))`` int32 or None:
    how many rows (``dy = 0 .. row_extent - 1``) the widest disc of each
    block of 64 columns of an image row reaches
    (``_cpu_disc.EXTENT_COLUMNS``), so the CPU kernels skip the rows of the
    window that no disc of the block touches (the window holds the widest
    blur of the searched range; a scene's discs are mostly smaller). The CUDA engine, one thread
    per pixel, skips the empty rows of each disc itself and leaves it None.
    """

    half_width: np.ndarray
    inv_area: np.ndarray
    kernel_size: int
    row_extent: np.ndarray = None

    @property
    def shape(self):
        """``(F, K, H, W)``, as for the Gaussian's taps."""
        n_f, _, h, w = (int(v) for v in self.half_width.shape)
        return (n_f, self.kernel_size, h, w)


class RadiusBank(NamedTuple):
    """Which blurs a constant-depth loss computation needs, and how it reads them.

    Every candidate of the grid search is one depth everywhere, so slice
    ``f`` of candidate ``j`` is the image blurred by one PSF of radius
    ``radii[j, f]``. The engines blur the image once per radius of
    ``radii`` (a *bank*, shared by all candidates and slices) and predict
    slice ``f`` of candidate ``j`` as
    ``(1 - weight[j, f]) * bank[lower[j, f]] + weight[j, f] * bank[lower[j, f] + 1]``
    (the second term only where ``weight > 0``). Made by
    :func:`radius_bank`.

    The fields: ``radii``, ``(U,)`` float32, increasing; ``lower``,
    ``(m, F)`` int32; ``weight``, ``(m, F)`` float32 in ``[0, 1)``.
    """

    radii: np.ndarray
    lower: np.ndarray
    weight: np.ndarray


def radius_bank(radii, step=None) -> RadiusBank:
    """Plan the blur bank of a ``(m, F)`` array of constant-depth radii (pixels).

    ``step=None``: exact; the bank holds each distinct radius once and every
    weight is 0. ``step > 0``: the bank holds the multiples of ``step``
    (pixels) that bracket the radii, and each radius reads the two around it
    with linear weights, so ``m * F`` blurs become at most
    ``(max - min) / step + 2``. Only multiples that some radius reads are
    kept. The interpolated blur is the image blurred by the same mix of the
    two PSFs: a PSF of the right size whose edge is spread over ``step``.
    """
    r = np.asarray(radii, dtype=np.float64)
    if step is None:
        distinct, inverse = np.unique(r, return_inverse=True)
        return RadiusBank(distinct.astype(np.float32),
                          inverse.reshape(r.shape).astype(np.int32),
                          np.zeros(r.shape, dtype=np.float32))
    pos = r / step
    below = np.floor(pos)
    weight = pos - below
    # a radius on a multiple (or within float32 of one) reads that blur alone
    weight[weight < 1e-6] = 0.0
    used = np.unique(np.concatenate([below.ravel(), below[weight > 0] + 1]))
    lower = np.searchsorted(used, below)
    return RadiusBank((used * step).astype(np.float32), lower.astype(np.int32),
                      weight.astype(np.float32))


def _cuda_status():
    """``(available, reason)``: can Numba reach a GPU (or its simulator), and if not, why."""
    try:
        from numba import cuda
    except Exception as err:  # numba without a CUDA target, or an incompatible NumPy
        return False, f"importing numba.cuda failed ({type(err).__name__}: {err})"
    try:
        return bool(cuda.is_available()), "Numba finds no CUDA GPU"
    except Exception as err:  # a broken driver
        return False, f"the CUDA driver failed ({type(err).__name__}: {err})"


def cuda_available() -> bool:
    """True when Numba can reach a CUDA GPU or its simulator is switched on."""
    return _cuda_status()[0]


def is_engine(obj) -> bool:
    """True for an engine object (what :func:`resolve` returns)."""
    return hasattr(obj, "forward") and hasattr(obj, "constant_depth_losses") and \
        isinstance(getattr(obj, "name", None), str)


#: PSF shapes ``"auto"`` hands to each engine. The CUDA engine has disc
#: kernels too (``backend="cuda"`` runs them), but they have so far been
#: checked in Numba's simulator only, so ``"auto"`` keeps the disc on the CPU.
ENGINE_PSFS = {"cpu": ("gaussian", "disc"), "cuda": ("gaussian",)}


#: The numba-cuda releases the CUDA engine is tested with (requirements.txt and the
#: ``cuda`` extra pin the same range); ``"auto"`` uses the GPU only with one of them.
TESTED_NUMBA_CUDA = ((0, 30), (0, 31))


def numba_cuda_version():
    """The installed numba-cuda's version string, or None (Numba's own CUDA target only)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("numba-cuda")
    except PackageNotFoundError:
        return None


def auto_backend(*, gpu: bool, simulated: bool, psf: str, numba_cuda: str | None) -> str:
    """What ``backend="auto"`` means: ``"cuda"`` or ``"cpu"``.

    CUDA only with a real GPU (never the slow simulator), a PSF the CUDA
    engine runs under ``"auto"`` (:data:`ENGINE_PSFS`), and the numba-cuda
    release the engine is tested with (:data:`TESTED_NUMBA_CUDA`): Numba's
    built-in CUDA target, or another numba-cuda, may compile the kernels
    differently, so they get the CPU unless asked for ``"cuda"`` by name.

    Parameters
    ----------
    gpu : bool
        Numba reaches a CUDA device (or its simulator).
    simulated : bool
        That device is Numba's simulator.
    psf : str
    numba_cuda : str or None
        The installed numba-cuda version (``"0.30.2"``), None if absent.
    """
    if not gpu or simulated or psf not in ENGINE_PSFS["cuda"] or numba_cuda is None:
        return "cpu"
    try:
        release = tuple(int(part) for part in numba_cuda.split(".")[:2])
    except ValueError:  # a version string we cannot read is not one we tested
        return "cpu"
    low, high = TESTED_NUMBA_CUDA
    return "cuda" if low <= release < high else "cpu"


def resolve(backend="auto", *, psf="gaussian"):
    """The engine for ``backend``.

    Parameters
    ----------
    backend : {"auto", "cpu", "cuda"} or engine
        ``"auto"`` picks CUDA when a real GPU is available with the tested
        numba-cuda release, and the CPU otherwise (never the slow simulator;
        see ``auto_backend``). An engine is returned as it
        is, so a caller can keep one (and its buffers) across calls.
    psf : {"gaussian", "disc"}
        The PSF the engine will run: ``"auto"`` keeps to the CPU for a PSF
        not listed for CUDA in ``ENGINE_PSFS``.

    Returns
    -------
    engine
        A :class:`~dfd_lite.engines.cpu.CpuEngine` or a ``CudaEngine``.

    Raises
    ------
    ValueError
        For an unknown backend name.
    RuntimeError
        For ``"cuda"`` when Numba finds neither a GPU nor its simulator.
    """
    if is_engine(backend):
        return backend
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or an engine, got {backend!r}")
    if backend == "auto":
        gpu = cuda_available()
        backend = auto_backend(gpu=gpu, simulated=gpu and cuda_simulated(), psf=psf,
                               numba_cuda=numba_cuda_version())
    if backend == "cpu":
        from .cpu import CpuEngine
        return CpuEngine()
    available, reason = _cuda_status()
    if not available:
        raise RuntimeError(
            f"backend='cuda' was requested but {reason}. Install the "
            "CUDA extra (pip install 'dfd_lite[cuda]') on a machine with an NVIDIA "
            "GPU, set NUMBA_ENABLE_CUDASIM=1 before importing numba for the (slow) "
            "simulator, or use backend='cpu'.")
    from .cuda import CudaEngine
    return CudaEngine()
