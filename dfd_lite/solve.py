"""Alternating minimization: depth and all-in-focus image in turn.

Minimises ``0.5 * ||A(Z) x - b||^2 + tv_weight * TV(x)`` over the depth map
``Z`` and the image ``x`` (in a box) by alternating two easier problems:

* ``x`` fixed: each pixel's depth is a 1-D search (:mod:`dfd_lite.depth`);
* ``Z`` fixed: ``x`` is a convex problem (:mod:`dfd_lite.aif`): least
  squares by FISTA when ``tv_weight = 0`` (the paper's solver, the default
  for noise-free stacks), with a total-variation prior by Chambolle-Pock
  when the stack is noisy.

With per-pixel depth (``window=1``) the depth step never raises the
objective (the safeguard keeps the old depth where it was better; the prior
does not depend on depth). The image step starts from the current image;
with the prior it keeps that image if Chambolle-Pock ends worse, and
without it ``monotone=True`` makes it monotone FISTA, which never accepts a
worse image. Either way the objective recorded after every sub-step is then
non-increasing. With a window (the default on noisy stacks) the safeguard
compares losses aggregated over the window instead, a prior on depth that
the recorded objective does not include, so that record may rise slightly.

For the disc a last stage follows (``spread="scatter"``): the same two
steps on the scatter model of :mod:`dfd_lite.scatter`, in which light
spreads from every point with the PSF of its own depth, as it does at
depth edges; its result is kept only if it explains the stack better.

The alternation is written once: the engine chosen by ``backend`` holds the
stack, the image and the depth for the whole solve, and only the records
come back to the host until the end.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi

from . import _validate as V
from . import engines
from .aif import (COLD_POWER_ITERS, focus_stack, power_iteration, power_start,
                  run_chambolle_pock, run_fista, tv_objective)
from .depth import AGGREGATIONS, DepthSearch, check_candidates, check_depth_tol, \
    check_window, depth_candidates
from .fill import MAX_RADIUS, weighted_median_depth
from .noise import estimate_noise
from .optics import Camera, optics_kernel_size, resolve_kernel_size, warn_if_truncated
from .scatter import ScatterEngine, canvas_depth, scatter_depth_sweeps

__all__ = ["solve", "SolveResult", "StepRecord", "BOUNDARIES", "SPREADS", "SCATTER_EPOCHS",
           "SCATTER_SWEEPS", "SCATTER_SMOOTH", "noise_defaults", "NOISE_FREE",
           "NOISE_FREE_AIF_GROWTH", "MEDIAN_RADIUS", "MODEL_CHECK_EPOCH", "MODEL_CHECK_ITERS",
           "MODEL_CHECK_LEVEL", "MODEL_ERROR_RATIO", "WARM_POWER_ITERS", "noise_floor",
           "MIN_ESTIMATE_SIDE", "stack_noise_std"]

#: What :func:`solve` may assume beyond the frame.
BOUNDARIES = ("zero", "extend")


@dataclass(frozen=True)
class StepRecord:
    """One sub-step of :func:`solve`.

    Attributes
    ----------
    epoch : int
        0-based epoch.
    step : str
        ``"init"``, ``"depth"``, ``"aif"``, ``"prior"``, ``"scatter-depth"``
        or ``"scatter-aif"``. ``"init"`` is the starting image under the first depth estimate;
        ``"prior"`` the same when the solve starts again with stronger
        priors after its model check (``solve(model_check=True)``);
        ``"scatter-depth"`` and ``"scatter-aif"`` are the two steps of the
        scatter stage (``solve(spread="scatter")``), whose epoch is
        ``num_epochs`` and whose losses are on the scatter model.
    loss : float
        ``0.5 ||A(Z) x - b||^2 + tv_weight TV(x)`` after the sub-step.
    seconds : float
        Wall time of the sub-step.
    num_iters : int
        Image-step iterations, FISTA's or (with a prior) Chambolle-Pock's
        (``"aif"`` and ``"scatter-aif"`` steps; 0 otherwise).
    """

    epoch: int
    step: str
    loss: float
    seconds: float
    num_iters: int = 0


@dataclass
class SolveResult:
    """Output of :func:`solve`.

    Attributes
    ----------
    depth : ndarray, shape (H, W), float32
        Estimated depth in metres, after the weighted median when
        ``median_radius`` > 0 (``depth_std`` describes the alternation's
        own depth, before it), and from the scatter stage when ``spread``
        is ``"scatter"`` (then ``depth_std`` is at least the new depth's
        spread over its neighbours).
    aif : ndarray, shape (H, W, C) or (H, W), float32
        Estimated all-in-focus image, in the stack's value range.
    history : list of StepRecord
        One record per sub-step, in order.
    initial_aif : ndarray
        The focus-stacking image the solver started from.
    kernel_size : int
        The PSF window the model used.
    boundary : str
        What the model assumed beyond the frame, ``"zero"`` or ``"extend"``.
    noise_std, tv_weight : float
        The noise level the defaults were set from, and the prior's weight.
    window : int
        The window over which the grid search aggregated each candidate's loss.
    median_radius : int
        Radius of the weighted median applied to the final depth (0: none).
    spread : str
        The model the returned depth and image come from: ``"gather"``, or
        ``"scatter"`` when ``solve(spread="scatter")``'s last stage explained
        the stack better (a lower ``residual_rms``) than the alternation.
    depth_std : ndarray, shape (H, W), float32
        A confidence map, an uncertainty of the depth in metres (small is
        confident). Two parts added in quadrature: the standard deviation
        that the curvature of the (aggregated) loss at the solution implies
        (:meth:`~dfd_lite.depth.DepthSearch.depth_std`; noise-free stacks
        use the noise floor ``NOISE_FREE / 2``), infinite where the loss is
        flat or concave (depth the stack does not determine); and the
        spread of the estimate over the aggregation window (at least 3 x 3),
        large at depth edges and where noise scatters the estimate. Capped
        at the width of ``depth_range``, its value where the depth is not
        determined at all. On
        Middlebury at 1 % noise the 20 % least confident pixels have about
        three times the median error of the 50 % most confident
        (``bench/noise.py`` and ``tests/test_tv.py``).
    residual_rms : float
        Root-mean-square of ``A(Z) x - b`` at the solution, over every
        slice, pixel and channel of the stack (its value range): how closely
        the model explains the stack. Next to ``noise_std`` it tells noise
        from model error: where the model is exact the residual falls to
        the noise, while a wrong PSF or light scattered at depth edges
        leave it well above (``bench/residual.py`` measures three to four
        times on physically rendered stacks; ``tests/test_tv.py`` eight
        times for the paper's Gaussian on a disc-blurred stack).
    """

    depth: np.ndarray
    aif: np.ndarray
    history: list = field(default_factory=list)
    initial_aif: np.ndarray = None
    kernel_size: int = None
    boundary: str = None
    noise_std: float = None
    tv_weight: float = None
    window: int = None
    median_radius: int = None
    spread: str = None
    depth_std: np.ndarray = None
    residual_rms: float = None

    @property
    def losses(self):
        """The objective after every sub-step (the ``loss`` of each record)."""
        return [rec.loss for rec in self.history]

    @property
    def num_epochs(self):
        """The alternation's epochs (``solve``'s ``num_epochs``, its default resolved)."""
        return 1 + max((rec.epoch for rec in self.history if rec.step == "aif"), default=-1)

    @property
    def restarted(self):
        """True when the model check found model error and the solve started again with priors."""
        return any(rec.step == "prior" for rec in self.history)


def solve(stack, camera: Camera, *, depth_range=(0.1, 10.0), kernel_size=None,
          num_depths: int = 100, num_epochs=None, aif_num_iters: int = 100,
          aif_growth=None, window=None, depth_tol: float = 1e-2,
          spacing: str = "linear", init_aif=None, warm_start: bool = True,
          monotone: bool = False, boundary=None, noise_std=None, tv_weight=None,
          aggregation: str = "guided", median_radius=None, model_check: bool = True,
          spread=None, progress: bool = True, callback=None, backend="auto"):
    """Recover depth and an all-in-focus image from a focal stack.

    Parameters
    ----------
    stack : array_like, shape (F, H, W, C) or (F, H, W)
        The focal stack, slice ``i`` focused at ``camera.focus_distances[i]``.
        uint8/uint16 are scaled to [0, 1]; float stacks are used as given
        (values up to 1, or up to 255). Small negative values (down to 5 %
        of the peak, as after black-level subtraction) are clipped to 0 with
        a warning; more negative ones raise ``ValueError``. A constant stack,
        or a camera with a single focus distance, gives a warning: there is
        no depth information to recover.
    camera : Camera
    depth_range : (float, float)
        ``(near, far)`` depths searched, metres; ``near`` must lie beyond the
        focal length.
    kernel_size : int, "paper" or "optics", optional
        Odd PSF window. ``"paper"``: from the image size (11 at 240 x 320),
        the reference's rule, which truncates wide blurs. ``"optics"``: wide
        enough for the largest blur over ``depth_range``
        (:func:`dfd_lite.optics.optics_kernel_size`, capped at
        :data:`~dfd_lite.optics.MAX_AUTO_KERNEL`; a warning after the solve
        if the depths found have wider blurs than that). Default:
        ``"paper"`` for the paper's Gaussian, so its numbers reproduce;
        ``"optics"`` for the disc.
    num_depths : int
        Grid-search candidates.
    num_epochs : int, optional
        Depth/image alternations. Default: 10, or :data:`SCATTER_EPOCHS`
        when the scatter stage follows (``spread="scatter"``).
        ``bench/noise.py`` measures the defaults (10 epochs, image steps of
        100 iterations growing by ``aif_growth``) and ``bench/run.py`` times
        10 epochs of 100 (see ``bench/README.md``).
    aif_num_iters : int
        Image-step iterations in the first epoch; on a noise-free stack
        the epochs before the model check's first decision run at most
        :data:`MODEL_CHECK_ITERS` (see ``model_check``).
    aif_growth : float, optional
        Factor on the image step's iteration budget per epoch (the reference
        uses 1.05, starting from 200 iterations). Default:
        :data:`NOISE_FREE_AIF_GROWTH` on a noise-free stack, where every
        extra iteration sharpens the image that the next depth step reads;
        1 on a noisy one, and from a model-check restart on, where extra
        iterations would fit the noise or the model's miss.
    window : int, optional
        Odd window over which the grid search aggregates each candidate's
        loss; 1 is per pixel. Default: 1 for a noise-free stack, wider with
        more noise (:func:`noise_defaults`).
    aggregation : {"guided", "box"}
        How a window aggregates: ``"guided"`` (default) is the guided filter
        (He, Sun and Tang) steered by the current image, which averages
        within regions of similar grey level and not across edges, as in
        cost-volume filtering for stereo (Hosni et al.); ``"box"`` is a
        plain mean.
    median_radius : int, optional
        After the alternation, replace every depth by the edge-aware
        weighted median of its ``(2 median_radius + 1)^2`` neighbourhood
        (:func:`~dfd_lite.fill.weighted_median_depth`, guided by the image,
        each neighbour counted by its confidence), the post-processing of
        cost-volume filtering: it removes the outliers that a noisy grid
        search leaves at depth edges and in textureless patches. 0 is none.
        Default: :data:`MEDIAN_RADIUS` when the grid search aggregates over
        a window (a noisy stack, or after a model-check restart), 0 with
        per-pixel depth, where the estimate is exact up to the model.
    depth_tol : float
        Golden-section tolerance, metres.
    spacing : {"linear", "inverse"}
        Spacing of the candidate depths.
    init_aif : array_like, optional
        Starting image; default focus stacking (:func:`~dfd_lite.aif.focus_stack`).
    warm_start : bool
        Start each FISTA solve from the current image (True) or from zero,
        as the reference does (False).
    monotone : bool
        Use monotone FISTA in the image step.
    boundary : {"zero", "extend"}, optional
        What the model assumes beyond the frame. ``"zero"``: black, the
        paper's model. ``"extend"``: unknown; the all-in-focus image is
        estimated on a canvas ``kernel_size // 2 + 1`` pixels wider on every
        side (only the frame is returned), so the scene beyond the frame
        can blur into it as it does in a real photograph. Default, as for
        ``kernel_size``: ``"zero"`` for the paper's Gaussian, so its
        numbers reproduce; ``"extend"`` for the disc, the physical model.
    noise_std : float, optional
        Standard deviation of the stack's noise, in its units; default
        :func:`~dfd_lite.noise.estimate_noise` of the stack (0 for images smaller
        than :data:`MIN_ESTIMATE_SIDE`). Sets the defaults of ``window`` and
        ``tv_weight``.
    tv_weight : float, optional
        Weight of a total-variation prior on the image: the image step
        minimises ``0.5 ||A x - b||^2 + tv_weight TV(x)`` by Chambolle-Pock
        (:func:`~dfd_lite.aif.tv_deconvolve`) instead of FISTA, and every loss
        recorded includes the prior. 0 is the paper's unregularised image
        step. Default: 0 for a noise-free stack, ``0.1 * noise_std``
        otherwise (:func:`noise_defaults`).
    model_check : bool
        From :data:`MODEL_CHECK_EPOCH` epochs on, and while at least half
        of ``num_epochs`` would remain, compare the fit's residual RMS after
        each epoch with the noise floor (:func:`noise_floor`). Above
        :data:`MODEL_ERROR_RATIO` times it, once it has levelled off (it is
        still above :data:`MODEL_CHECK_LEVEL` times its value an epoch
        before), the model misses the stack by more than its noise (a PSF,
        blur scale or border that is not the camera's, light scattered at
        depth edges), and the image step would go on fitting that miss as
        it fits noise: the solve starts again from its initial image for
        the remaining epochs, with the ``window`` and ``tv_weight`` that
        :func:`noise_defaults` gives for noise the size of the residual
        (only those of the two left to their defaults, and never smaller
        than before). The new start's first record in the history is a
        ``"prior"`` step (as ``"init"`` is the first start's). Where the
        model is exact the residual falls to the noise, or is still falling
        fast, and the solve goes on; with fewer than four epochs the check
        never runs. The epochs before its first decision only tell it
        whether the model misses, so on a noise-free stack their image
        steps are short (at most :data:`MODEL_CHECK_ITERS` iterations), and
        where it lets the solve go on, the next image step makes up for
        them.
    spread : {"gather", "scatter"}, optional
        How the model lets light spread. ``"gather"``: every pixel is the
        image blurred with the PSF of its own depth, the paper's model,
        used throughout the alternation. ``"scatter"``: after the
        alternation (and the median), a last stage on the scatter model
        (:mod:`dfd_lite.scatter`), where every point spreads its light
        with the PSF of its own depth, as light does, and each pixel is
        divided by its coverage: coordinate descent on the depth near
        depth edges (:data:`SCATTER_SWEEPS` passes, with a small
        smoothness prior :data:`SCATTER_SMOOTH`), an image step of
        ``aif_num_iters`` iterations on that model, and the descent again.
        The two models differ only at depth edges, which is where the
        gather model's depth error sits on physically rendered stacks
        (``bench/README.md``). Default: ``"gather"`` for the paper's
        Gaussian, so its numbers reproduce; ``"scatter"`` for the disc.
        The history records the stage as ``"scatter-depth"`` and
        ``"scatter-aif"`` steps, their losses on the scatter model.
    progress : bool
        Show a tqdm progress bar over epochs.
    callback : callable, optional
        ``callback(epoch, depth, aif, history)`` after every epoch, with host
        arrays and the list of :class:`StepRecord` so far.
    backend : {"auto", "cpu", "cuda"} or engine

    Returns
    -------
    SolveResult
    """
    V.check_camera(camera)
    b, gray = V.as_stack(stack, camera)
    b = V.check_stack_values(b, camera)
    lo, hi = V.as_depth_range(depth_range, camera)
    h, w = b.shape[1:3]
    if kernel_size is None:
        kernel_size = "optics" if camera.psf == "disc" else "paper"
    if isinstance(kernel_size, str) and kernel_size in ("paper", "optics"):
        # the automatic windows fit any image
        k = optics_kernel_size(camera, (lo, hi)) if kernel_size == "optics" else \
            resolve_kernel_size(None, (h, w))
        k = min(k, 2 * min(h, w) + 1)
    else:
        k = resolve_kernel_size(kernel_size, (h, w))
    if k > 2 * min(h, w) + 1:
        raise ValueError(f"kernel_size {k} is larger than the image ({h} x {w}) allows")
    cands = check_candidates(depth_candidates((lo, hi), num_depths, spacing=spacing))
    aif_num_iters = V.as_positive_int(aif_num_iters, "aif_num_iters", minimum=0)
    depth_tol = check_depth_tol(depth_tol)
    auto_growth = aif_growth is None
    if not auto_growth:
        aif_growth = V.as_real(aif_growth, "aif_growth", above=0.0)
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable")
    peak = float(b.max())
    if peak > 255.0:
        raise ValueError(f"stack values reach {peak:g}; expected [0, 1] or [0, 255]")
    upper = 1.0 if peak <= 1.0 else 255.0
    if noise_std is None:   # images too small for a reliable estimate count as noise-free
        noise_std = stack_noise_std(b)
    noise_std = V.as_real(noise_std, "noise_std", at_least=0.0)
    # the rules are for images in [0, 1]; the prior's weight scales with the data
    auto_window, auto_tv = noise_defaults(noise_std / upper)
    # which priors the model check may strengthen: those the caller left alone
    adaptable = (window is None, tv_weight is None)
    window = check_window(auto_window if window is None else window)
    if auto_growth:
        aif_growth = NOISE_FREE_AIF_GROWTH if noise_std / upper < NOISE_FREE else 1.0
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    if median_radius is not None:
        median_radius = V.as_positive_int(median_radius, "median_radius", minimum=0)
        if median_radius > MAX_RADIUS:
            raise ValueError(f"median_radius must be at most {MAX_RADIUS} px, got {median_radius}")
    tv_weight = V.as_real(auto_tv * upper if tv_weight is None else tv_weight, "tv_weight",
                          at_least=0.0)
    if not isinstance(model_check, (bool, np.bool_)):
        raise TypeError(f"model_check must be True or False, got {model_check!r}")

    if init_aif is None:
        x0, _ = focus_stack(b)
    else:
        x0, _ = V.as_image(init_aif, "init_aif")
        if x0.shape != b.shape[1:]:
            raise ValueError(f"init_aif has shape {x0.shape}, expected {b.shape[1:]}")
    x0 = np.clip(x0, 0.0, upper).astype(np.float32)
    if boundary is None:
        boundary = "extend" if camera.psf == "disc" else "zero"
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    margin = k // 2 + 1 if boundary == "extend" else 0
    if spread is None:
        spread = "scatter" if camera.psf == "disc" else "gather"
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {SPREADS}, got {spread!r}")
    if num_epochs is None:
        num_epochs = SCATTER_EPOCHS if spread == "scatter" else 10
    num_epochs = V.as_positive_int(num_epochs, "num_epochs", minimum=1)
    # the canvas starts as the starting image mirrored beyond the frame
    canvas = np.pad(x0, ((margin, margin), (margin, margin), (0, 0)), mode="symmetric")

    eng = engines.resolve(backend, psf=camera.psf)
    search = DepthSearch(eng, eng.asarray(np.moveaxis(b, -1, 1)), camera, k)
    x = eng.asarray(np.moveaxis(canvas, -1, 0))
    # the image steps' step sizes: ||A||^2 by power iteration, from a random
    # vector in the first and from the last one's vector in the others
    power_vector = power_start(eng, canvas.shape[:2])
    power_warm = False
    history = []
    depth = None
    first = "init"     # the record of a start's first depth estimate
    checking, residual = model_check and any(adaptable), math.inf
    # the check's first epochs are short where it will decide after them,
    # on a noise-free stack (on a noisy one a short fit reads more noise
    # into the next depth step)
    probing = checking and 2 * MODEL_CHECK_EPOCH <= num_epochs and noise_std / upper < NOISE_FREE
    skipped = 0
    floor = noise_floor(noise_std / upper) * upper     # in the stack's units
    # the scatter stage counts as one more step of the bar
    bar = _progress(num_epochs + (spread == "scatter"), progress)
    for epoch in range(num_epochs):
        t0 = time.perf_counter()
        depth, loss_map, _, _ = search.step(x, cands, window=window, aggregation=aggregation,
                                            depth_tol=depth_tol, previous=depth)
        loss = 0.5 * float(eng.to_host(loss_map).sum(dtype=np.float64))
        if tv_weight > 0:   # the prior on x, unchanged by the depth step
            loss += tv_weight * eng.tv_norm(x)
        if first:
            history.append(StepRecord(epoch, first, loss, 0.0))
            first = None
        history.append(StepRecord(epoch, "depth", loss, time.perf_counter() - t0))

        t0 = time.perf_counter()
        iters = int(round(aif_num_iters * aif_growth ** epoch))
        if probing and epoch < MODEL_CHECK_EPOCH:
            # these epochs only tell the model check whether the model
            # misses, and a short image step tells it as well ...
            skipped += iters - min(iters, MODEL_CHECK_ITERS)
            iters = min(iters, MODEL_CHECK_ITERS)
        elif skipped:
            # ... and where it lets the solve go on, the next one makes up for them
            iters, skipped = iters + skipped, 0
        weights = eng.weights(depth, search.optics, k)
        start = x if warm_start else eng.full(x.shape, 0.0)
        x, loss = _image_step(eng, weights, search.b, start, tv_weight=tv_weight,
                              num_iters=iters, upper=upper, monotone=monotone,
                              power_vector=power_vector, power_warm=power_warm)
        # from the first step that iterates on, the next one starts where it ended
        power_warm = power_warm or iters > 0
        history.append(StepRecord(epoch, "aif", loss, time.perf_counter() - t0, iters))
        if callback is not None:
            callback(epoch, eng.to_host(depth).copy(), _to_image(eng.to_host(x), gray, margin),
                     list(history))
        if bar is not None:
            bar.set_postfix(loss=f"{loss:.4g}")
            bar.update(1)
        # the model check, until it fires, while half the epochs would remain
        if checking and 2 * (epoch + 1) <= num_epochs:
            residual, before = _residual_rms(eng, weights, search.b, x), residual
            if (epoch + 1 >= MODEL_CHECK_EPOCH
                    and residual > MODEL_ERROR_RATIO * floor
                    and residual > MODEL_CHECK_LEVEL * before):
                # What the model cannot explain is noise to both steps: give
                # them the priors for noise of the residual's size, and start
                # again, since the depth found so far was fitted to that miss
                checking = False
                more_window, more_tv = noise_defaults(residual / upper)
                window = max(window, more_window) if adaptable[0] else window
                tv_weight = max(tv_weight, more_tv * upper) if adaptable[1] else tv_weight
                aif_growth = 1.0 if auto_growth else aif_growth
                x = eng.asarray(np.moveaxis(canvas, -1, 0))
                depth = None
                first = "prior"
                skipped = 0     # the new start does not make up for the short epochs
    # a confidence: the depth's standard deviation from the loss curvature,
    # one candidate spacing either side (noise-free stacks: the noise floor)
    spacing = float(np.min(np.diff(cands)))
    depth_std = search.depth_std(x, depth, spacing, window=window, aggregation=aggregation,
                                 noise_std=floor)
    depth = eng.to_host(depth).copy()
    # ... and how much the estimate varies among its neighbours, where the
    # window mixes depths (edges) or the noise scatters them
    neighbour_spread = _local_std(depth, max(window, 3))
    # capped at the width of the searched range: where the loss is flat the
    # stack says no more than that the depth lies somewhere in it
    depth_std = np.minimum(np.sqrt(np.square(depth_std) + np.square(neighbour_spread)),
                           hi - lo).astype(np.float32)
    if isinstance(kernel_size, str) and kernel_size == "optics":  # a capped automatic window: say if the scene needed more
        warn_if_truncated(depth, camera, k)
    aif = _to_image(eng.to_host(x), gray, margin)
    if median_radius is None:
        median_radius = MEDIAN_RADIUS if window > 1 else 0
    if median_radius > 0:
        depth = weighted_median_depth(depth, np.clip(aif / upper, 0.0, 1.0), depth_std=depth_std,
                                      radius=median_radius)
        weights = eng.weights(eng.asarray(depth), search.optics, k)
    # how closely the model explains the stack, at the depth and image returned
    residual_rms = _residual_rms(eng, weights, search.b, x)
    if spread == "scatter":
        if bar is not None:
            bar.set_postfix(stage="scatter")
        x_s, depth_s, records, residual_s = _scatter_stage(
            eng, search, x, depth, k, margin=margin, tv_weight=tv_weight, upper=upper,
            num_iters=aif_num_iters, step=spacing, depth_range=(lo, hi), epoch=num_epochs,
            power_vector=power_vector if power_warm else None)
        history.extend(records)
        # The model that explains the stack better wins: where light really
        # scatters, the scatter stage's residual is a third of the gather
        # model's; where a stack was made by gathering, it is five times
        # worse, and so is its depth (bench/README.md)
        if residual_s < residual_rms:
            aif = _to_image(eng.to_host(x_s), gray, margin)
            depth, residual_rms = depth_s, residual_s
            neighbour_spread = _local_std(depth, max(window, 3))   # the new depth's own
            depth_std = np.minimum(np.maximum(depth_std, neighbour_spread),
                                   hi - lo).astype(np.float32)
        else:
            spread = "gather"
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return SolveResult(depth=depth, aif=aif,
                       history=history, initial_aif=x0[..., 0] if gray else x0, kernel_size=k,
                       boundary=boundary, noise_std=noise_std, tv_weight=tv_weight, window=window,
                       median_radius=median_radius, spread=spread,
                       depth_std=depth_std, residual_rms=residual_rms)


#: Power iterations of :func:`solve`'s image steps after the first: each
#: starts from the last one's vector, and the operator changes little from
#: one epoch to the next. On the physically rendered Middlebury stack
#: (240 x 320, disc) five of them reach 0.996 to 0.999 of the largest
#: eigenvalue at every epoch, as the first step's
#: :data:`~dfd_lite.aif.COLD_POWER_ITERS` from a random vector reach 0.998
#: (the step sizes allow for 2 %).
WARM_POWER_ITERS = 5


#: How :func:`solve` may let light spread (``spread``).
SPREADS = ("gather", "scatter")


#: Epochs of the alternation before the scatter stage (``num_epochs``'s
#: default with ``spread="scatter"``). The stage moves the depth edges the
#: last epochs would only polish. On the physically rendered Middlebury
#: stack (240 x 320, disc) six epochs and the stage reach 0.132 m and
#: 29.9 dB, ten and the stage 0.126 m and 29.8 dB; with 1 % noise and 8-bit
#: files both 0.368 m and 27.8 dB; where the stage is refused (a gathered
#: stack) six epochs leave 0.179 m, ten 0.177 m. Fewer cost accuracy: four
#: epochs and the stage 0.141 m, and a gathered stack 0.194 m after four
#: and 0.184 m after five. With six the disc's solve takes less time than
#: ten epochs of the gather model alone (``bench/README.md``).
SCATTER_EPOCHS = 6


#: Coordinate-descent passes of the scatter stage's depth step, before and
#: after its image step (``solve(spread="scatter")``). On the physically
#: rendered Middlebury stack (240 x 320, disc) the depth error falls over
#: the first six passes from the gather solve's 0.317 m to 0.148 m, and
#: three more after the image step take it to 0.125 m
#: (``bench/scatter_stage.py``).
SCATTER_SWEEPS = (6, 3)


#: Weight of the scatter stage's depth prior, ``sum |d_p - d_q|`` over
#: 4-neighbours (metres), per slice and channel of an image in [0, 1]: in a
#: textureless patch any depth explains the stack, and without a prior the
#: descent wanders there. Chosen on the physically rendered Middlebury
#: stack (240 x 320) among 0, 2e-6, 7e-6, 1.3e-5, 7e-5 and 6.7e-4: the
#: smallest non-zero weight did best, 0.149 m after six passes against
#: 0.197 m without the prior (``bench/scatter_stage.py``).
SCATTER_SMOOTH = 2e-6


#: Below this noise level (images in [0, 1]) a stack counts as noise-free:
#: per-pixel depth and no image prior, the paper's solver. Half an 8-bit grey
#: level: quantisation alone (0.0011) stays below it.
NOISE_FREE = 2e-3


#: The image step's growth per epoch (``aif_growth``) on a noise-free stack.
#: The depth error is still falling at the last of the default 10 epochs on
#: exact models; a growing budget (1449 iterations in all instead of 1000)
#: lets it fall further: Middlebury 240 x 320, NYUv2 camera, 0.108 ->
#: 0.069 m and 30.3 -> 31.7 dB (``bench/noise.py``; 0.056 m and 32.0 dB
#: since :data:`MODEL_CHECK_ITERS`). Not on noisy stacks,
#: where the image step's prior, not its budget, limits the image.
NOISE_FREE_AIF_GROWTH = 1.08


#: Radius (pixels) of the weighted median that :func:`solve` applies to the
#: depth of a noisy stack (``median_radius``). Chosen on saved solves of
#: both scenes at 0.5, 1 and 2 % noise (radii 2, 4 and 7, colour scales
#: 0.05 and 0.1, with and without the confidence): radius 4 with the
#: confidence lowered the depth RMSE at every level of both scenes, by 4 to
#: 13 %; radius 7 did slightly better on some and much worse on the
#: synthetic scene at 0.5 % (``bench/README.md``).
MEDIAN_RADIUS = 4


#: After this many epochs :func:`solve` starts checking the fit's residual
#: for model error (``model_check``): where the model is exact the residual
#: has fallen to (about) the noise by then (``bench/residual.py``), and every
#: epoch before the check is spent again if it finds model error.
MODEL_CHECK_EPOCH = 2


#: The image step's iterations, at most, in the epochs before the model
#: check's first decision on a noise-free stack (``model_check``, when the
#: check will run). Those epochs only tell it whether the model misses: a
#: shorter fit still falls by more than half from the first epoch to the
#: second where the model is exact, and levels off where it is not
#: (:data:`MODEL_CHECK_LEVEL`). Where the check finds model error they are
#: spent again anyway; where it lets the solve go on, the next image step
#: runs the iterations they skipped. On Middlebury (240 x 320, NYUv2
#: camera), against full first epochs in one run: the physical disc stack
#: 0.132 against 0.131 m and 30.0 dB either way, 8 % sooner; the stack
#: rendered with the solver's own model 0.056 m and 32.0 dB against 0.069 m
#: and 31.7 dB; a disc stack rendered by gathering 0.148 against 0.179 m
#: (``bench/results/model_check_iters_2026-12-01.md``). Not on noisy
#: stacks, where the short fit reads more noise into the next depth step:
#: Middlebury with the paper's model and 0.5, 1 and 2 % noise lost 2 to 3 %
#: in depth error (0.229, 0.269 and 0.319 m against 0.224, 0.261 and
#: 0.311 m; ``bench/results/noise_check_iters_2026-12-01.md``). Twenty were too
#: few: on a small stack whose border the model misses, the residual then
#: fell only to 0.55 of its value in the second epoch, and the check fired
#: (``bench/README.md``).
MODEL_CHECK_ITERS = 40


#: The model check fires only once the residual has levelled off, that is
#: while it is still above this fraction of its value an epoch before. A
#: fit that is still converging (a short image step, a slow start) falls
#: faster: in the second epoch to 0.36 to 0.42 of it on exact models with
#: 20 image iterations, against 0.64 to 0.76 on physically rendered stacks
#: (and 0.96 in the third).
MODEL_CHECK_LEVEL = 0.5


#: A residual above this multiple of the noise floor (:func:`noise_floor`)
#: is model error: where the model is exact the residual falls to the noise,
#: on physically rendered stacks it stays three to four times above it
#: (``bench/residual.py``).
MODEL_ERROR_RATIO = 2.0


def noise_floor(noise_std):
    """The least noise :func:`solve` assumes: ``max(noise_std, NOISE_FREE / 2)`` (images in [0, 1]).

    A noise-free stack still has rounding and quantisation; the floor keeps
    the confidence and the model check finite on it.
    """
    return max(float(noise_std), NOISE_FREE / 2)


#: Smallest image side on which :func:`solve` estimates the noise itself
#: (below it, pass ``noise_std``): the wavelet estimator reads fine texture
#: as noise on tiny images (0.3-0.6 % on clean 8 x 10 synthetic stacks).
MIN_ESTIMATE_SIDE = 16


def stack_noise_std(stack):
    """The noise :func:`solve` assumes when not told: :func:`~dfd_lite.noise.estimate_noise`,
    or 0 for images smaller than :data:`MIN_ESTIMATE_SIDE`.

    ``stack`` is a float array of shape ``(F, H, W, C)`` or ``(F, H, W)``.
    """
    h, w = stack.shape[1:3]
    return estimate_noise(stack) if min(h, w) >= MIN_ESTIMATE_SIDE else 0.0


def noise_defaults(noise_std):
    """``(window, tv_weight)`` that :func:`solve` uses for a stack with this noise (images in [0, 1]).

    Noise-free (below :data:`NOISE_FREE`): ``(1, 0)``, the paper's solver.
    Otherwise the grid search averages each candidate's loss over a box
    that grows with the noise, ``odd(1200 sigma + 3)`` clipped to [5, 21]
    pixels (9 at 0.5 %, 15 at 1 %), and the image step gets a TV prior of
    weight ``0.1 sigma``. Both were chosen on the Middlebury scene with the
    NYUv2 camera: the box from solves at 0.5 and 1 % noise (windows 5, 9
    and 15), the weight from the image step alone with the true depth at
    0.5, 1 and 2 % noise (weights 0.05 to 10 sigma; 0.1 sigma was best or
    within 0.3 dB of it at every level).
    """
    sigma = float(noise_std)
    if sigma < NOISE_FREE:
        return 1, 0.0
    window = int(round(1200.0 * sigma + 3.0))
    window = min(max(window + (window + 1) % 2, 5), 21)
    return window, 0.1 * sigma


def _image_step(eng, weights, b, start, *, tv_weight, num_iters, upper, monotone=False,
                power_vector=None, power_warm=False):
    """The image step from ``start`` on any engine's operator; returns ``(x, objective)``.

    FISTA without a prior, Chambolle-Pock with one; 0 iterations keeps
    ``start``. The step size comes from power iterations, from
    ``power_vector`` (``(1, Hc, Wc)``, updated in place) or, when it is
    ``None``, from a random vector: :data:`WARM_POWER_ITERS` of them where
    ``power_warm`` says the vector is an earlier step's last,
    :data:`~dfd_lite.aif.COLD_POWER_ITERS` otherwise.
    """
    if num_iters == 0:
        return start, tv_objective(eng, weights, b, start, tv_weight)
    warm = power_warm and power_vector is not None
    lip = power_iteration(eng, weights, tuple(int(v) for v in start.shape[1:]),
                          num_iters=WARM_POWER_ITERS if warm else COLD_POWER_ITERS,
                          vector=power_vector)
    if tv_weight > 0:
        new, objective = run_chambolle_pock(eng, weights, b, start, tv_weight=tv_weight,
                                            num_iters=num_iters, lipschitz=lip, lo=0.0, hi=upper)
        # Chambolle-Pock's iterates converge but need not descend: keep the
        # image it started from if that is still better, so the recorded
        # objective never rises
        return (new, objective[-1]) if objective[-1] <= objective[0] else (start, objective[0])
    x, objective = run_fista(eng, weights, b, start, num_iters=num_iters, lipschitz=lip, lo=0.0,
                             hi=upper, monotone=monotone)
    return x, objective[-1]


def _scatter_stage(eng, search, x, depth, k, *, margin, tv_weight, upper, num_iters, step,
                   depth_range, epoch, smooth=SCATTER_SMOOTH, sweeps=SCATTER_SWEEPS,
                   power_vector=None):
    """The last stage of ``solve(spread="scatter")``: depth, image, depth on the scatter model.

    ``smooth`` is the depth prior's weight per slice and channel (images in
    [0, 1]), ``sweeps`` the passes before and after the image step, and
    ``power_vector`` the alternation's last power-iteration vector, or None
    where it never iterated (the scatter operator's largest eigenvector is
    close to the gather one's:
    on the physical Middlebury stack five iterations from it reach 0.9985
    of its eigenvalue, twenty from a random vector 0.998).
    Returns the image (engine array, on the canvas), the depth (host), the
    :class:`StepRecord` list and the residual RMS on the frame.
    """
    model = ScatterEngine(eng)
    b = eng.to_host(search.b)
    b_canvas = model.pad_stack(b, margin)
    n_f, n_c = b.shape[:2]
    smooth = smooth * n_f * n_c * upper ** 2
    # the descent runs on the host, whichever engine holds the rest
    focus, coef, min_radius, psf = search.optics
    host = engines.resolve("cpu", psf=psf)
    host_optics = host.optics((eng.to_host(focus), eng.to_host(coef), min_radius), psf)
    records = []

    def depth_step(x, depth, sweeps):
        t0 = time.perf_counter()
        depth, _ = scatter_depth_sweeps(eng.to_host(x), b, depth, host_optics, k,
                                        margin=margin, sweeps=sweeps, step=step,
                                        depth_range=depth_range, smooth=smooth, engine=host)
        weights = model.weights(canvas_depth(depth, margin), search.optics, k, margin)
        loss = tv_objective(model, weights, b_canvas, x, tv_weight)
        records.append(StepRecord(epoch, "scatter-depth", loss, time.perf_counter() - t0))
        return depth, weights

    depth, weights = depth_step(x, depth, sweeps[0])
    t0 = time.perf_counter()
    x, loss = _image_step(model, weights, b_canvas, x, tv_weight=tv_weight, num_iters=num_iters,
                          upper=upper, monotone=True, power_vector=power_vector,
                          power_warm=power_vector is not None)
    records.append(StepRecord(epoch, "scatter-aif", loss, time.perf_counter() - t0, num_iters))
    depth, weights = depth_step(x, depth, sweeps[1])
    data = tv_objective(model, weights, b_canvas, x, 0.0)
    return x, depth, records, float(np.sqrt(2.0 * data / b.size))


def _residual_rms(eng, weights, b, x):
    """Root-mean-square of ``A x - b`` over the stack ``b`` (planar ``(F, C, H, W)``)."""
    size = int(np.prod(b.shape))
    return float(np.sqrt(2.0 * tv_objective(eng, weights, b, x, 0.0) / size))


def _local_std(depth, window):
    """Standard deviation of ``depth`` over a ``window`` x ``window`` box around every pixel."""
    d = depth.astype(np.float64)
    mean = ndi.uniform_filter(d, window, mode="nearest")
    return np.sqrt(np.maximum(ndi.uniform_filter(d * d, window, mode="nearest") - mean * mean,
                              0.0))


def _to_image(x_planar, gray, margin=0):
    """Planar ``(C, H', W')`` engine image to ``(H, W, C)`` (or ``(H, W)``), its margin cut."""
    if margin:
        x_planar = x_planar[:, margin:-margin, margin:-margin]
    img = np.ascontiguousarray(np.moveaxis(x_planar, 0, -1))
    return img[..., 0] if gray else img


def _progress(total, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="dfd_lite.solve", unit="epoch")
