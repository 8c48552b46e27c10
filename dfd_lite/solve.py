"""Alternating minimization: depth and all-in-focus image in turn.

Minimises ``0.5 * ||A(Z) x - b||^2`` over the depth map ``Z`` and the image
``x`` (in a box) by alternating two easier problems:

* ``x`` fixed: each pixel's depth is a 1-D search (:mod:`dfd_lite.depth`);
* ``Z`` fixed: ``x`` is a convex least-squares problem (:mod:`dfd_lite.aif`).

Each sub-step can only lower the objective (the depth step keeps the old
depth where it was better; FISTA starts from the current image), so the
loss recorded after every sub-step is non-increasing up to FISTA's
non-monotone iterations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import _validate as V
from .aif import _fista_planar, focus_stack, lipschitz_constant
from .blur import BlurOperator, forward_planar, planar_weights
from .depth import _check_candidates, _check_window, _depth_step_planar, depth_candidates
from .optics import Camera, check_kernel_size, default_kernel_size

__all__ = ["solve", "SolveResult"]


@dataclass
class SolveResult:
    """Output of :func:`solve`.

    Attributes
    ----------
    depth : ndarray, shape (H, W), float32
        Estimated depth in metres.
    aif : ndarray, shape (H, W, C) or (H, W), float32
        Estimated all-in-focus image, in the stack's value range.
    losses : list of float
        ``0.5 ||A(Z) x - b||^2`` after every sub-step (depth, image,
        depth, ...); the first entry is the starting image under the
        first depth estimate, so it equals the first depth-step entry.
    history : list of dict
        One record per sub-step: ``epoch``, ``step`` ("init", "depth" or
        "aif"), ``loss``, ``seconds`` (wall time of the sub-step) and, for
        "aif", ``iterations``.
    initial_aif : ndarray
        The focus-stacking image the solver started from.
    """

    depth: np.ndarray
    aif: np.ndarray
    losses: list = field(default_factory=list)
    history: list = field(default_factory=list)
    initial_aif: np.ndarray = None


def _objective(x, b, wts):
    r = forward_planar(x, wts) - b
    return 0.5 * float(np.vdot(r.ravel(), r.ravel()))


def solve(stack, camera: Camera, depth_range=(0.1, 10.0), kernel_size=None,
          num_depths: int = 100, epochs: int = 10, aif_iters: int = 100,
          aif_growth: float = 1.0, window: int = 1, tol: float = 1e-2,
          spacing: str = "linear", init_aif=None, warm_start: bool = True,
          progress: bool = True, callback=None, backend: str = "auto"):
    """Recover depth and an all-in-focus image from a focal stack.

    Parameters
    ----------
    stack : array_like, shape (F, H, W, C) or (F, H, W)
        The focal stack, slice ``i`` focused at ``camera.focus_distances[i]``.
        uint8/uint16 are scaled to [0, 1]; float stacks are used as given
        (values up to 1, or up to 255).
    camera : Camera
    depth_range : (float, float)
        ``(near, far)`` depths searched, metres.
    kernel_size : int, optional
        PSF window; default from the image size (11 at 240 x 320).
    num_depths : int
        Grid-search candidates.
    epochs : int
        Depth/image alternations. The defaults (10 epochs of 100 FISTA
        iterations) reach 0.096 m depth RMSE on the Middlebury scene at
        240 x 320 with ``window=3`` in about 21 s on 2 CPU cores
        (``bench/README.md``).
    aif_iters : int
        FISTA iterations in the first epoch.
    aif_growth : float
        Factor on the FISTA budget per epoch (the reference uses 1.05,
        starting from 200 iterations).
    window : int
        Odd box window of the grid-search loss; 1 is per pixel.
    tol : float
        Golden-section tolerance, metres.
    spacing : {"linear", "inverse"}
        Spacing of the candidate depths.
    init_aif : array_like, optional
        Starting image; default focus stacking (:func:`dfd_lite.focus_stack`).
    warm_start : bool
        Start each FISTA solve from the current image (True) or from zero,
        as the reference does (False).
    progress : bool
        Show a tqdm progress bar over epochs.
    callback : callable, optional
        ``callback(epoch, depth, aif, history)`` after every epoch.
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    SolveResult
    """
    from .backend import resolve_backend

    V.check_camera(camera)
    b, gray = V.as_stack(stack, camera)
    lo, hi = V.as_depth_range(depth_range)
    h, w = b.shape[1:3]
    k = check_kernel_size(default_kernel_size(h, w) if kernel_size is None else kernel_size)
    if k > 2 * min(h, w) + 1:
        raise ValueError(f"kernel_size {k} is larger than the image ({h} x {w}) allows")
    cands = _check_candidates(depth_candidates((lo, hi), num_depths, spacing))
    epochs = V.as_positive_int(epochs, "epochs", minimum=1)
    aif_iters = V.as_positive_int(aif_iters, "aif_iters", minimum=0)
    window = _check_window(window)
    if not np.isfinite(aif_growth) or aif_growth <= 0:
        raise ValueError(f"aif_growth must be positive, got {aif_growth!r}")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable")
    peak = float(b.max())
    if peak > 255.0:
        raise ValueError(f"stack values reach {peak:g}; expected [0, 1] or [0, 255]")
    upper = 1.0 if peak <= 1.0 else 255.0
    bp = np.ascontiguousarray(np.moveaxis(b, -1, 1))

    if init_aif is None:
        x0, _ = focus_stack(b)
    else:
        x0, _ = V.as_image(init_aif, "init_aif")
        if x0.shape != b.shape[1:]:
            raise ValueError(f"init_aif has shape {x0.shape}, expected {b.shape[1:]}")
    x = np.ascontiguousarray(np.moveaxis(np.clip(x0, 0.0, upper), -1, 0), dtype=np.float32)
    initial_aif = np.moveaxis(x, 0, -1).copy()

    if resolve_backend(backend) == "cuda":
        from . import cuda as _cuda
        step_fns = _cuda.solver_steps(bp, camera, k)
    else:
        step_fns = None

    history = []
    depth = None
    bar = _progress(epochs, progress)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        if step_fns is None:
            dres = _depth_step_planar(x, bp, camera, k, cands, window, tol, depth, True)
        else:
            dres = step_fns.depth_step(x, cands, window, tol, depth)
        depth = dres.depth
        if epoch == 0:
            history.append({"epoch": 0, "step": "init", "seconds": 0.0,
                            "loss": _objective(x, bp, planar_weights(depth, camera, k))})
        history.append({"epoch": epoch, "step": "depth", "seconds": time.perf_counter() - t0,
                        "loss": 0.5 * float(dres.loss.sum(dtype=np.float64))})

        t0 = time.perf_counter()
        iters = int(round(aif_iters * aif_growth ** epoch))
        start = x if warm_start else np.zeros_like(x)
        if step_fns is None:
            op = BlurOperator(depth, camera, k, backend="cpu")
            x, obj = _fista_planar(op, bp, start, iters, lipschitz_constant(op, 15), np.float32(0),
                                   np.float32(upper), True)
        else:
            x, obj = step_fns.aif_step(depth, start, iters, upper)
        loss = obj[-1] if obj else _objective(x, bp, planar_weights(depth, camera, k))
        history.append({"epoch": epoch, "step": "aif", "seconds": time.perf_counter() - t0,
                        "loss": loss, "iterations": iters})
        aif_now = np.moveaxis(x, 0, -1)
        if callback is not None:
            callback(epoch, depth, aif_now[..., 0] if gray else aif_now, history)
        if bar is not None:
            bar.set_postfix(loss=f"{loss:.4g}")
            bar.update(1)
    if bar is not None:
        bar.close()
    aif = np.ascontiguousarray(np.moveaxis(x, 0, -1))
    return SolveResult(depth=depth, aif=aif[..., 0] if gray else aif,
                       losses=[rec["loss"] for rec in history], history=history,
                       initial_aif=initial_aif[..., 0] if gray else initial_aif)


def _progress(total, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="dfd_lite.solve", unit="epoch")
