"""What the gather model costs on scattered light: the image step with the true depth, two models.

    python bench/scatter_bound.py

``dl.render_physical`` spreads light the way it travels: every scene point
scatters into the PSF of its own depth, and each pixel is divided by its
coverage (what a white scene would give), so that brightness stays right
at depth edges. Per slice ``f`` that is linear in the image::

    y_f = (S_f x) / (S_f 1),      S_f = A_f^T

where ``A_f`` is the solver's gather operator (every pixel blurred with the
PSF of its own depth) and ``S_f``, its transpose, lets every pixel spread
its light with its own PSF (the PSF is symmetric). The solver inverts
``A_f`` alone. This script measures, on the Middlebury scene (240 x 320,
NYUv2 camera, disc PSF, noise-free, black beyond the frame on both sides so
that only the spread differs), with the true depth map:

* how well each model explains each rendering from the true image (the RMS
  residual), and
* the all-in-focus image each model's image step reaches (FISTA with the
  box [0, 1], 300 iterations, from the stack's mean), as PSNR.

Both measured on the frame less a border of 14 px. The scatter operator is
written here from the engine's per-slice kernels (a measurement, not part
of the package).
"""

from __future__ import annotations

import os
import platform
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dfd_lite as dl  # noqa: E402
from dfd_lite import engines  # noqa: E402
from dfd_lite.engines import DiscWeights  # noqa: E402
from dfd_lite.optics import optics_kernel_size, thin_lens_coefficients  # noqa: E402

DISC = dl.Camera.nyuv2().with_psf("disc")
BORDER = 14
ITERATIONS = 300


class Models:
    """The gather operator ``A`` and the coverage-normalised scatter ``M`` at one depth map."""

    def __init__(self, depth, kernel_size, n_c):
        self.eng = engines.resolve("cpu", psf="disc")
        self.w = self.eng.weights(depth, self.eng.optics(thin_lens_coefficients(DISC), "disc"),
                                  kernel_size)
        # one slice's weights at a time: the engine's adjoint sums over slices
        self.per_slice = [DiscWeights(self.w.half_width[f:f + 1], self.w.inv_area[f:f + 1],
                                      kernel_size, self.w.row_extent[f:f + 1])
                          for f in range(self.w.shape[0])]
        ones = np.ones((1, 1) + depth.shape, dtype=np.float32)
        self.cover = [self.eng.adjoint(ones, w)[0] for w in self.per_slice]
        self.shape = (n_c,) + depth.shape

    def gather(self, x):
        return self.eng.forward(x, self.w)

    def gather_t(self, y):
        return self.eng.adjoint(y, self.w)

    def scatter(self, x):
        return np.stack([self.eng.adjoint(x[None], w) / c
                         for w, c in zip(self.per_slice, self.cover)])

    def scatter_t(self, y):
        out = np.zeros(self.shape, dtype=np.float32)
        for f, (w, c) in enumerate(zip(self.per_slice, self.cover)):
            out += self.eng.forward(np.ascontiguousarray(y[f] / c, dtype=np.float32), w)[0]
        return out


def lipschitz(fwd, adj, shape, iters=30):
    """``||A^T A||`` by power iteration, 5 % over."""
    v = np.random.default_rng(0).random(shape).astype(np.float32)
    norm = 1.0
    for _ in range(iters):
        u = adj(fwd(v))
        norm = float(np.linalg.norm(u))
        v = (u / norm).astype(np.float32)
    return 1.05 * norm


def fista(fwd, adj, b, x0, iters):
    """Projected FISTA on ``0.5 ||fwd(x) - b||^2`` over ``0 <= x <= 1``."""
    step = 1.0 / lipschitz(fwd, adj, x0.shape)
    x, z, t = x0.copy(), x0.copy(), 1.0
    for _ in range(iters):
        x_new = np.clip(z - step * adj(fwd(z) - b), 0.0, 1.0).astype(np.float32)
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        z = (x_new + ((t - 1.0) / t_new) * (x_new - x)).astype(np.float32)
        x, t = x_new, t_new
    return x


def main():
    scene = dl.middlebury_scene((240, 320))
    depth = scene.depth.astype(np.float32)
    k = optics_kernel_size(DISC, (float(depth.min()), float(depth.max())))
    truth = np.ascontiguousarray(np.moveaxis(scene.aif, -1, 0), dtype=np.float32)
    models = Models(depth, k, truth.shape[0])
    inner = (Ellipsis, slice(BORDER, -BORDER), slice(BORDER, -BORDER))
    print(f"Gather and scatter models with the true depth, Middlebury 240 x 320, disc, K = {k}, "
          f"{platform.machine()}, {os.cpu_count()} cores, `python bench/scatter_bound.py`\n")
    print("| rendering | solver's model | residual of the true image | "
          f"AIF PSNR after {ITERATIONS} FISTA iterations (dB) |")
    print("| --- | --- | --- | --- |")
    for spread in ("gather", "scatter"):
        stack = dl.render_physical(scene.aif, scene.depth, DISC, spread=spread, boundary="zero")
        b = np.ascontiguousarray(np.moveaxis(stack, -1, 1), dtype=np.float32)
        for name, fwd, adj in (("gather (the solver's)", models.gather, models.gather_t),
                               ("scatter / coverage", models.scatter, models.scatter_t)):
            residual = np.sqrt(np.mean((fwd(truth) - b)[inner] ** 2))
            x = fista(fwd, adj, b, b.mean(axis=0), ITERATIONS)
            psnr = 10.0 * np.log10(1.0 / np.mean((x - truth)[inner] ** 2))
            print(f"| {spread} | {name} | {residual:.5f} | {psnr:.2f} |")


if __name__ == "__main__":
    main()
