"""The all-in-focus step: depth fixed, solve for the sharp image.

With the depth map fixed the blur model is linear, ``b = A x``, and the
all-in-focus image solves the box-constrained least-squares problem::

    min_x  0.5 * ||A x - b||^2   subject to  lo <= x <= hi

:func:`fista` solves it by projected gradient steps of size ``1 / L``
(``L = ||A||^2``, from :func:`lipschitz_constant`) with Nesterov momentum.
:func:`focus_stack` gives the starting image: each pixel from the slice in
which it looks sharpest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi

from . import _validate as V

__all__ = ["lipschitz_constant", "fista", "FistaResult", "sharpness", "focus_stack"]


def lipschitz_constant(op, num_iters: int = 20, seed: int = 0, safety: float = 1.02) -> float:
    """Estimate ``L = ||A^T A||_2`` by power iteration.

    Parameters
    ----------
    op : BlurOperator
    num_iters : int
        Power iterations (each one forward and one adjoint).
    seed : int
        Seed of the random start vector, so the estimate is reproducible.
    safety : float
        Power iteration approaches ``L`` from below; a step ``1/L`` with an
        underestimate can diverge, so the estimate is scaled up by this.

    Returns
    -------
    float
    """
    num_iters = V.as_positive_int(num_iters, "num_iters")
    h, w = op.image_shape
    v = np.random.default_rng(seed).random((1, h, w)).astype(np.float32)
    v /= np.linalg.norm(v)
    est = 0.0
    for _ in range(num_iters):
        u = op.adjoint_planar(op.forward_planar(v))
        est = float(np.linalg.norm(u))
        if est == 0.0:
            raise ValueError("the blur operator is zero")
        v = u / np.float32(est)
    return est * float(safety)


@dataclass
class FistaResult:
    """Output of :func:`fista`.

    Attributes
    ----------
    aif : ndarray, shape (H, W, C), float32
        The estimated all-in-focus image.
    objective : list of float
        ``0.5 ||A x_k - b||^2`` after every iteration.
    lipschitz : float
        The ``L`` used for the step size.
    """

    aif: np.ndarray
    objective: list = field(default_factory=list)
    lipschitz: float = 0.0


def _fista_planar(op, b, x0, num_iters, lipschitz, lo, hi, momentum, tol=0.0):
    """FISTA on planar float32 arrays; returns (x, objective list)."""
    step = np.float32(1.0 / lipschitz)
    x = x0.copy()
    ax = op.forward_planar(x)
    ay = ax
    y = x
    t = 1.0
    history = []
    for _ in range(num_iters):
        grad = op.adjoint_planar(ay - b)
        x_new = y - step * grad
        np.clip(x_new, lo, hi, out=x_new)
        ax_new = op.forward_planar(x_new)
        r = ax_new - b
        history.append(0.5 * float(np.vdot(r.ravel(), r.ravel())))
        if momentum:
            t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            beta = np.float32((t - 1.0) / t_new)  # float32 keeps every array float32
            y = x_new + beta * (x_new - x)
            # A is linear, so A y follows from A x_new and A x without a third pass.
            ay = ax_new + beta * (ax_new - ax)
            t = t_new
        else:
            y, ay = x_new, ax_new
        converged = tol > 0 and len(history) > 1 and \
            abs(history[-2] - history[-1]) <= tol * max(history[-2], 1e-30)
        x, ax = x_new, ax_new
        if converged:
            break
    return x, history


def fista(op, stack, num_iters: int = 200, x0=None, lipschitz=None, bounds=(0.0, 1.0),
          momentum: bool = True, tol: float = 0.0):
    """Solve ``min 0.5 ||A x - b||^2, lo <= x <= hi`` for the all-in-focus image.

    Parameters
    ----------
    op : BlurOperator
        ``A`` for the current depth map.
    stack : array_like, shape (F, H, W, C) or (F, H, W)
        The observed focal stack ``b``.
    num_iters : int
        Maximum number of iterations.
    x0 : array_like, shape (H, W, C) or (H, W), optional
        Warm start, e.g. the previous epoch's image. Default: the mean of
        the stack over slices.
    lipschitz : float, optional
        ``||A||^2``; estimated with :func:`lipschitz_constant` when omitted.
    bounds : (float, float)
        The box ``(lo, hi)``.
    momentum : bool
        ``False`` gives plain projected gradient descent (ISTA), to compare.
    tol : float
        Stop early when the objective changes by less than this relative
        amount in one iteration (0 runs all iterations).

    Returns
    -------
    FistaResult
    """
    b, gray = V.as_stack(stack, op.camera)
    if b.shape[1:3] != op.image_shape:
        raise ValueError(f"stack has images of shape {b.shape[1:3]} but the operator "
                         f"works on {op.image_shape}")
    num_iters = V.as_positive_int(num_iters, "num_iters", minimum=0)
    lo, hi = (float(v) for v in bounds)
    if not lo < hi:
        raise ValueError(f"bounds must be (lo, hi) with lo < hi, got {bounds!r}")
    bp = np.ascontiguousarray(np.moveaxis(b, -1, 1))
    if x0 is None:
        x = bp.mean(axis=0)
    else:
        x0, _ = V.as_image(x0, "x0")
        if x0.shape != b.shape[1:]:
            raise ValueError(f"x0 has shape {x0.shape}, expected {b.shape[1:]}")
        x = np.ascontiguousarray(np.moveaxis(x0, -1, 0))
    x = np.clip(x, lo, hi).astype(np.float32)
    if lipschitz is None:
        lipschitz = lipschitz_constant(op)
    x, hist = _fista_planar(op, bp, x, num_iters, float(lipschitz), np.float32(lo),
                            np.float32(hi), momentum, tol)
    aif = np.moveaxis(x, 0, -1)
    return FistaResult(np.ascontiguousarray(aif[..., 0] if gray else aif), hist, float(lipschitz))


def sharpness(stack, smooth: float = 2.0):
    """Local sharpness of every slice: Gaussian-smoothed squared Sobel gradient.

    Parameters
    ----------
    stack : array_like, shape (F, H, W, C) or (F, H, W)
    smooth : float
        Sigma (pixels) of the smoothing that turns the edge map into a
        local measure.

    Returns
    -------
    ndarray, shape (F, H, W), float32
    """
    b, _ = V.as_stack(stack)
    gray = b.mean(axis=-1)
    out = np.empty(gray.shape, dtype=np.float32)
    for i, img in enumerate(gray):
        energy = ndi.sobel(img, axis=0) ** 2 + ndi.sobel(img, axis=1) ** 2
        out[i] = ndi.gaussian_filter(energy, smooth) if smooth > 0 else energy
    return out


def focus_stack(stack, smooth: float = 2.0):
    """All-in-focus image by focus stacking: each pixel from its sharpest slice.

    Parameters
    ----------
    stack : array_like, shape (F, H, W, C) or (F, H, W)
    smooth : float
        See :func:`sharpness`.

    Returns
    -------
    aif : ndarray, shape (H, W, C) or (H, W), float32
    index : ndarray, shape (H, W), int
        The slice chosen at each pixel; ``camera.focus_distances[index]``
        is a depth-from-focus estimate.
    """
    b, gray = V.as_stack(stack)
    index = np.argmax(sharpness(b, smooth), axis=0)
    aif = np.take_along_axis(b, index[None, :, :, None], axis=0)[0]
    return (aif[..., 0] if gray else aif), index
