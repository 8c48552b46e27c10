"""How good can the image step be? The TV-regularised image with the true depth.

    python bench/tv_bound.py           # TV and FISTA
    python bench/tv_bound.py --tgv     # second-order TGV instead
    python bench/tv_bound.py --pnp     # a non-local denoiser as the prior (plug-and-play)

Middlebury 240 x 320, NYUv2 camera, the paper's model plus 1 % Gaussian
noise (the noise table's 1 % row). The image step alone, given the true
depth map, run to convergence: ``dl.tv_deconvolve`` for several prior
weights (in units of the noise's standard deviation) and iteration counts,
and ``dl.fista`` without the prior. A solve cannot do better than the best
of these with its own depth, so this bounds what the TV prior can reach.

``--tgv`` asks whether a second-order prior would do better: total
generalised variation (Bredies, Kunisch and Pock 2010),
``TGV(x) = min_w alpha1 ||grad x - w||_{2,1} + alpha0 ||E w||_{2,1}``
(``E`` the symmetrised gradient, channels coupled as in the TV), by
Chambolle-Pock on the same saddle-point form as ``dl.tv_deconvolve``. It is
a measurement written in NumPy here, not part of the package.

``--pnp`` asks the same of a non-local prior: plug-and-play proximal
gradient (Venkatakrishnan, Bouman and Wohlberg 2013), a gradient step on
``0.5 ||A x - b||^2`` followed by scikit-image's non-local means
(``denoise_nl_means``, 5 x 5 patches, search distance 6, ``h = 0.6 s``)
in place of the prior's proximal map, started from the best TV image; the
denoiser's strength ``s`` in units of the noise's standard deviation. No
objective, so no convergence guarantee: a measurement only.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dfd_lite as dl  # noqa: E402
from dfd_lite.aif import power_iteration  # noqa: E402

SIGMA = 0.01


def _diff(u, axis):
    """Forward difference along ``axis`` (-1: x, -2: y), 0 at the last row or column."""
    d = np.zeros_like(u)
    n = u.shape[axis]
    src = [slice(None)] * u.ndim
    lead, lag = list(src), list(src)
    lead[axis], lag[axis] = slice(1, n), slice(0, n - 1)
    d[tuple(lag)] = u[tuple(lead)] - u[tuple(lag)]
    return d


def _diff_t(p, axis):
    """The adjoint of :func:`_diff`."""
    r = np.zeros_like(p)
    n = p.shape[axis]
    lead, lag = [slice(None)] * p.ndim, [slice(None)] * p.ndim
    lead[axis], lag[axis] = slice(1, n), slice(0, n - 1)
    r[tuple(lag)] -= p[tuple(lag)]
    r[tuple(lead)] += p[tuple(lag)]
    return r


def _project(parts, bound, weights):
    """Each pixel's dual vector (all channels, ``sum weights_i parts_i^2``) onto the ball of radius ``bound``."""
    norm = np.sqrt(sum(w * (q * q).sum(0, keepdims=True) for q, w in zip(parts, weights)))
    scale = np.maximum(1.0, norm / bound)
    return [q / scale for q in parts]


def tgv_image(op, stack, alpha1, alpha0, num_iters):
    """``min 0.5 ||A x - b||^2 + TGV(x)`` over ``0 <= x <= 1`` by Chambolle-Pock; ``(H, W, C)``."""
    eng, weights = op.engine, op.weights
    b = np.ascontiguousarray(np.moveaxis(stack, -1, 1)).astype(np.float32)
    step = 0.99 / np.sqrt(power_iteration(eng, weights, b.shape[2:]) + 12.0)  # ||grad||^2 + ||E||^2 <= 12
    x = b.mean(0)
    w = [np.zeros_like(x), np.zeros_like(x)]
    xbar, wbar = x.copy(), [c.copy() for c in w]
    y = eng.forward(x, weights) - b
    p = [np.zeros_like(x), np.zeros_like(x)]
    q = [np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)]   # E w: xx, yy, xy (counted twice)
    for _ in range(num_iters):
        y = (y + step * (eng.forward(xbar, weights) - b)) / (1.0 + step)
        p = _project([p[0] + step * (_diff(xbar, -1) - wbar[0]),
                      p[1] + step * (_diff(xbar, -2) - wbar[1])], alpha1, (1.0, 1.0))
        q = _project([q[0] + step * _diff(wbar[0], -1), q[1] + step * _diff(wbar[1], -2),
                      q[2] + step * 0.5 * (_diff(wbar[0], -2) + _diff(wbar[1], -1))],
                     alpha0, (1.0, 1.0, 2.0))
        grad_x = eng.adjoint(y, weights) + _diff_t(p[0], -1) + _diff_t(p[1], -2)
        x_new = np.clip(x - step * grad_x, 0.0, 1.0)
        w_new = [w[0] - step * (-p[0] + _diff_t(q[0], -1) + _diff_t(q[2], -2)),
                 w[1] - step * (-p[1] + _diff_t(q[1], -2) + _diff_t(q[2], -1))]
        xbar = 2.0 * x_new - x
        wbar = [2.0 * n - o for n, o in zip(w_new, w)]
        x, w = x_new, w_new
    return np.moveaxis(x, 0, -1)


def pnp_images(op, stack, start, strength, report):
    """Plug-and-play proximal gradient with non-local means; the images after ``report`` iterations."""
    from skimage.restoration import denoise_nl_means

    eng, weights = op.engine, op.weights
    b = np.ascontiguousarray(np.moveaxis(stack, -1, 1)).astype(np.float32)
    step = 1.0 / power_iteration(eng, weights, b.shape[2:])
    x = np.ascontiguousarray(np.moveaxis(start, -1, 0)).astype(np.float32)
    images = []
    for it in range(1, max(report) + 1):
        v = np.clip(x - step * eng.adjoint(eng.forward(x, weights) - b, weights), 0.0, 1.0)
        denoised = denoise_nl_means(np.moveaxis(v, 0, -1), h=0.6 * strength, sigma=strength,
                                    patch_size=5, patch_distance=6, channel_axis=-1,
                                    fast_mode=True)
        x = np.ascontiguousarray(np.moveaxis(denoised, -1, 0)).astype(np.float32)
        if it in report:
            images.append(np.moveaxis(x, 0, -1))
    return images


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tgv", action="store_true")
    parser.add_argument("--pnp", action="store_true")
    args = parser.parse_args(argv)
    cam = dl.Camera.nyuv2()
    scene = dl.middlebury_scene((240, 320))
    stack = dl.focal_stack(scene, cam, noise_std=SIGMA, seed=1)
    op = dl.BlurOperator(scene.depth, cam, kernel_size=dl.default_kernel_size(240, 320))
    if args.pnp:
        start = dl.tv_deconvolve(op, stack, tv_weight=0.05 * SIGMA, num_iters=1000).aif
        print(f"start: TV, weight 0.05 sigma, 1000 iterations: {dl.psnr(start, scene.aif):.2f} dB")
        print("| denoiser strength (sigma) | iterations | AIF PSNR (dB) |")
        print("| --- | --- | --- |")
        for strength in (0.5, 1.0, 2.0):
            for num_iters, image in zip((10, 30), pnp_images(op, stack, start, strength * SIGMA,
                                                             (10, 30))):
                print(f"| {strength:g} | {num_iters} | {dl.psnr(image, scene.aif):.2f} |",
                      flush=True)
        return
    if args.tgv:
        print("| alpha1 (sigma) | alpha0 / alpha1 | iterations | AIF PSNR (dB) |")
        print("| --- | --- | --- | --- |")
        for alpha1, ratio, num_iters in ((0.05, 1, 500), (0.05, 2, 500), (0.05, 4, 500),
                                         (0.1, 1, 500), (0.1, 2, 500), (0.1, 4, 500),
                                         (0.05, 2, 1000)):
            image = tgv_image(op, stack, alpha1 * SIGMA, ratio * alpha1 * SIGMA, num_iters)
            print(f"| {alpha1:g} | {ratio:g} | {num_iters} | {dl.psnr(image, scene.aif):.2f} |",
                  flush=True)
        return
    print("| prior weight (sigma) | iterations | AIF PSNR (dB) |")
    print("| --- | --- | --- |")
    for num_iters in (100, 1000):
        image = dl.fista(op, stack, num_iters=num_iters).aif
        print(f"| 0 (FISTA) | {num_iters} | {dl.psnr(image, scene.aif):.2f} |", flush=True)
    for weight in (0.05, 0.1, 0.2, 0.3):
        for num_iters in (100, 1000):
            image = dl.tv_deconvolve(op, stack, tv_weight=weight * SIGMA, num_iters=num_iters).aif
            print(f"| {weight:g} | {num_iters} | {dl.psnr(image, scene.aif):.2f} |", flush=True)


if __name__ == "__main__":
    main()
