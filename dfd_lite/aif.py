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

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi

from . import _validate as V

__all__ = ["lipschitz_constant", "fista", "FistaResult", "tv_deconvolve", "sharpness",
           "focus_stack", "COLD_POWER_ITERS"]


#: Power iterations from a random vector (:func:`lipschitz_constant`'s
#: default), each one forward and one adjoint. On the physically rendered
#: Middlebury stack (240 x 320, disc PSF) twenty reach 0.998 of the largest
#: eigenvalue at every epoch of a solve, on the gather and on the scatter
#: model (``bench/README.md``); the step sizes allow for 2 %.
COLD_POWER_ITERS = 20


def power_start(engine, image_shape, *, seed=0):
    """A seeded random unit vector ``(1, H, W)`` on ``engine``: where power iteration starts."""
    v = np.random.default_rng(seed).random((1,) + tuple(image_shape)).astype(np.float32)
    return engine.asarray(v / np.linalg.norm(v))


def power_iteration(engine, weights, image_shape, *, num_iters=COLD_POWER_ITERS, seed=0,
                    safety=1.02, vector=None):
    """``||A^T A||_2`` by power iteration on an engine (see :func:`lipschitz_constant`).

    ``vector``, an engine array of shape ``(1, H, W)``, is where to start
    instead of a seeded random vector: the last call's, when the operator
    has changed little since, so that a few iterations do. It is
    overwritten with this call's last iterate (a unit vector).
    """
    h, w = image_shape
    if vector is None:
        v = power_start(engine, (h, w), seed=seed)
    else:
        if tuple(int(s) for s in vector.shape) != (1, h, w):
            raise ValueError(f"vector must have shape {(1, h, w)}, got {tuple(vector.shape)}")
        norm = math.sqrt(engine.sum_sq(vector))
        if not norm > 0.0:
            raise ValueError("vector must be a non-zero, finite start")
        v = engine.scale(vector, 1.0 / norm, out=vector)
    # A v lives on the frame of the weights; v may be a canvas with a margin
    av = engine.empty((int(weights.shape[0]), 1) + tuple(int(s) for s in weights.shape[2:]))
    u = engine.empty((1, h, w))
    est = 0.0
    for _ in range(num_iters):
        engine.adjoint(engine.forward(v, weights, out=av), weights, out=u)
        est = math.sqrt(engine.sum_sq(u))
        if est == 0.0:
            raise ValueError("the blur operator is zero")
        engine.scale(u, 1.0 / est, out=v)
    return est * float(safety)


def lipschitz_constant(op, *, num_iters: int = COLD_POWER_ITERS, seed: int = 0,
                       safety: float = 1.02) -> float:
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
    safety = V.as_real(safety, "safety", at_least=1.0)
    return power_iteration(op.engine, op.weights, op.image_shape, num_iters=num_iters,
                           seed=seed, safety=safety)


@dataclass
class FistaResult:
    """Output of :func:`fista`.

    Attributes
    ----------
    aif : ndarray, shape (H, W, C), float32
        The estimated all-in-focus image.
    objective : list of float
        ``0.5 ||A x_k - b||^2`` of the iterate after every iteration.
    lipschitz : float
        The ``L`` used for the step size.
    """

    aif: np.ndarray
    objective: list = field(default_factory=list)
    lipschitz: float = 0.0


def run_fista(engine, weights, b, x0, *, num_iters, lipschitz, lo, hi, momentum=True,
              monotone=False, rel_tol=0.0):
    """FISTA on engine arrays: ``b`` (F, C, H, W), ``x0`` (C, H, W); returns ``(x, objective)``.

    Each iteration is one adjoint and one forward pass: ``A y`` follows from
    ``A x`` and ``A z`` because ``A`` is linear and ``y`` is a combination
    of ``x`` and ``z``. With ``monotone`` (Beck and Teboulle's MFISTA) a
    step that would raise the objective is not taken: the iterate stays and
    only the momentum point moves, so the objective never increases.
    """
    step = 1.0 / lipschitz
    x, y = engine.copy(x0), engine.copy(x0)
    z, g = engine.empty(x.shape), engine.empty(x.shape)
    ax = engine.forward(x, weights)
    ay, az = engine.copy(ax), engine.empty(ax.shape)
    f_x = 0.5 * engine.sum_sq(ax, b)
    t = 1.0
    history = []
    for _ in range(num_iters):
        engine.adjoint(ay, weights, out=g, minus=b)          # gradient at y
        engine.prox_step(y, g, step, lo, hi, out=z)          # z = clip(y - g / L)
        engine.forward(z, weights, out=az)
        f_z = 0.5 * engine.sum_sq(az, b)
        t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t)) if momentum else 1.0
        accepted = not (monotone and f_z > f_x)
        if accepted:
            # y = z + ((t - 1) / t_new) (z - x); then x = z
            beta = (t - 1.0) / t_new
            engine.extrapolate(z, x, beta, out=y)
            engine.extrapolate(az, ax, beta, out=ay)
            x, z, ax, az = z, x, az, ax
            f_prev, f_x = f_x, f_z
        else:
            # keep x; y = x + (t / t_new) (z - x)
            engine.extrapolate(x, z, -t / t_new, out=y)
            engine.extrapolate(ax, az, -t / t_new, out=ay)
        history.append(f_x)
        if accepted and rel_tol > 0 and abs(f_prev - f_x) <= rel_tol * max(f_prev, 1e-30):
            break
        t = t_new
    return x, history


def fista(op, stack, *, num_iters: int = 200, x0=None, lipschitz=None, bounds=(0.0, 1.0),
          momentum: bool = True, monotone: bool = False, rel_tol: float = 0.0):
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
    monotone : bool
        Monotone FISTA: never accept an iterate with a higher objective, so
        ``objective`` is non-increasing (at the same convergence rate).
    rel_tol : float
        Stop early when an accepted iterate changes the objective by less
        than this fraction (0 runs every iteration).

    Returns
    -------
    FistaResult
    """
    bp, x, gray, (lo, hi), num_iters, lipschitz = _image_problem(op, stack, x0, bounds,
                                                                  num_iters, lipschitz)
    rel_tol = V.as_real(rel_tol, "rel_tol", at_least=0.0)
    eng = op.engine
    x, hist = run_fista(eng, op.weights, eng.asarray(bp), eng.asarray(x), num_iters=num_iters,
                        lipschitz=float(lipschitz), lo=lo, hi=hi, momentum=momentum,
                        monotone=monotone, rel_tol=float(rel_tol))
    aif = np.moveaxis(eng.to_host(x), 0, -1)
    return FistaResult(np.ascontiguousarray(aif[..., 0] if gray else aif), hist, float(lipschitz))


def _image_problem(op, stack, x0, bounds, num_iters, lipschitz):
    """Validated inputs of an image step: planar stack and start, gray, bounds, count, L."""
    if not hasattr(op, "weights") or not hasattr(op, "engine"):
        raise TypeError(f"op must be a dfd_lite.BlurOperator, got {type(op).__name__}")
    b, gray = V.as_stack(stack, op.camera)
    if b.shape[1:3] != op.image_shape:
        raise ValueError(f"stack has images of shape {b.shape[1:3]} but the operator "
                         f"works on {op.image_shape}")
    num_iters = V.as_positive_int(num_iters, "num_iters", minimum=0)
    try:
        lo, hi = (V.as_real(v, "bounds") for v in bounds)
    except (TypeError, ValueError) as err:
        raise type(err)(f"bounds must be a pair (lo, hi) of finite numbers: {err}") from None
    if not lo < hi:
        raise ValueError(f"bounds must be (lo, hi) with lo < hi, got {bounds!r}")
    bp = np.moveaxis(b, -1, 1)
    if x0 is None:
        x = bp.mean(axis=0)
    else:
        x0, _ = V.as_image(x0, "x0")
        if x0.shape != b.shape[1:]:
            raise ValueError(f"x0 has shape {x0.shape}, expected {b.shape[1:]}")
        x = np.moveaxis(x0, -1, 0)
    x = np.clip(x, lo, hi).astype(np.float32)
    if lipschitz is None:
        lipschitz = lipschitz_constant(op)
    lipschitz = V.as_real(lipschitz, "lipschitz", above=0.0)
    return np.ascontiguousarray(bp), x, gray, (lo, hi), num_iters, float(lipschitz)


#: ``||grad||^2`` of the forward differences (4 per axis, 2 axes): the TV part
#: of the Chambolle-Pock step bound.
_GRAD_NORM_SQ = 8.0


def tv_objective(engine, weights, b, x, tv_weight):
    """``0.5 ||A x - b||^2 + tv_weight TV(x)`` of engine arrays (TV vectorial over channels)."""
    data = 0.5 * engine.sum_sq(engine.forward(x, weights), b)
    return data + (tv_weight * engine.tv_norm(x) if tv_weight > 0 else 0.0)


def run_chambolle_pock(engine, weights, b, x0, *, tv_weight, num_iters, lipschitz, lo, hi):
    """Chambolle-Pock for ``min 0.5 ||A x - b||^2 + tv_weight TV(x)`` over ``lo <= x <= hi``.

    The saddle-point form with ``K = (A, grad)``: the data term and the TV
    term are handled through their conjugates (a scaled shift, and a
    projection of each pixel's dual vector onto the ball of radius
    ``tv_weight``), the box through a clip, and the steps ``tau = sigma =
    0.99 / sqrt(||A||^2 + 8)`` satisfy ``tau sigma ||K||^2 < 1``, which is
    Chambolle and Pock's (2011) condition for convergence of the iterates
    to a saddle point. Engine arrays in and out; ``x0`` may carry a margin
    beyond the frame (the gradient is taken over the whole canvas).

    Returns ``(x, objective)``: the last iterate and the objective at the
    start and at the end (each evaluation costs a forward pass).
    """
    step = 0.99 / math.sqrt(lipschitz + _GRAD_NORM_SQ)
    x = engine.copy(x0)
    xbar = engine.copy(x0)
    x_new = engine.empty(x.shape)
    y = engine.forward(x, weights)                 # dual of the data term: starts at A x0 - b
    engine.lincomb(y, 1.0, b, -1.0, out=y)
    ax = engine.empty(y.shape)
    p = engine.full((2,) + tuple(int(s) for s in x.shape), 0.0)
    gp = engine.empty(p.shape)
    g = engine.empty(x.shape)
    d = engine.empty(x.shape)
    shrink = 1.0 / (1.0 + step)
    history = [tv_objective(engine, weights, b, x, tv_weight)]
    for _ in range(num_iters):
        engine.forward(xbar, weights, out=ax)
        engine.lincomb(ax, 1.0, b, -1.0, out=ax)                  # A xbar - b
        engine.lincomb(y, shrink, ax, step * shrink, out=y)        # prox of the data conjugate
        engine.tv_grad(xbar, out=gp)
        engine.lincomb(p, 1.0, gp, step, out=p)
        engine.tv_project(p, tv_weight)                            # prox of the TV conjugate
        engine.adjoint(y, weights, out=g)
        engine.tv_div(p, out=d)
        engine.lincomb(g, 1.0, d, -1.0, out=g)                     # K^T (y, p)
        engine.prox_step(x, g, step, lo, hi, out=x_new)            # prox of the box
        engine.extrapolate(x_new, x, 1.0, out=xbar)                # 2 x_new - x
        x, x_new = x_new, x
    history.append(tv_objective(engine, weights, b, x, tv_weight))
    return x, history


def tv_deconvolve(op, stack, *, tv_weight: float, num_iters: int = 300, x0=None,
                  lipschitz=None, bounds=(0.0, 1.0)):
    """The all-in-focus image with a total-variation prior, by Chambolle-Pock.

    Solves ``min 0.5 ||A x - b||^2 + tv_weight TV(x)`` over ``lo <= x <= hi``,
    with the vectorial (colour-coupled, isotropic) total variation
    ``TV(x) = sum_p sqrt(sum_c |grad x_c(p)|^2)``. TV penalises noise
    (many small jumps) far more than edges (few large ones), so it stops
    the deconvolution from amplifying noise without blurring edges back.
    ``tv_weight = 0`` is the problem :func:`fista` solves, faster.

    Parameters
    ----------
    op : BlurOperator
    stack : array_like, shape (F, H, W, C) or (F, H, W)
    tv_weight : float
        ``lambda`` > 0, in units of the data term (sum over slices and
        channels of squared residuals) per unit of image gradient.
    num_iters : int
        Primal-dual iterations (each one forward and one adjoint pass).
    x0 : array_like, optional
        Starting image; default the mean of the stack over slices.
    lipschitz : float, optional
        ``||A||^2``; estimated when omitted.
    bounds : (float, float)

    Returns
    -------
    FistaResult
        ``objective`` holds the regularised objective at the start and end.
    """
    bp, x, gray, (lo, hi), num_iters, lipschitz = _image_problem(op, stack, x0, bounds,
                                                                  num_iters, lipschitz)
    tv_weight = V.as_real(tv_weight, "tv_weight", above=0.0)
    eng = op.engine
    x, hist = run_chambolle_pock(eng, op.weights, eng.asarray(bp), eng.asarray(x),
                                 tv_weight=tv_weight, num_iters=num_iters, lipschitz=lipschitz,
                                 lo=lo, hi=hi)
    aif = np.moveaxis(eng.to_host(x), 0, -1)
    return FistaResult(np.ascontiguousarray(aif[..., 0] if gray else aif), hist, lipschitz)


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
