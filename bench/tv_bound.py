"""How good can the image step be? The TV-regularised image with the true depth.

    python bench/tv_bound.py

Middlebury 240 x 320, NYUv2 camera, the paper's model plus 1 % Gaussian
noise (the noise table's 1 % row). The image step alone, given the true
depth map, run to convergence: ``dl.tv_deconvolve`` for several prior
weights (in units of the noise's standard deviation) and iteration counts,
and ``dl.fista`` without the prior. A solve cannot do better than the best
of these with its own depth, so this bounds what the TV prior can reach.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dfd_lite as dl  # noqa: E402

SIGMA = 0.01


def main():
    cam = dl.Camera.nyuv2()
    scene = dl.middlebury_scene((240, 320))
    stack = dl.focal_stack(scene, cam, noise_std=SIGMA, seed=1)
    op = dl.BlurOperator(scene.depth, cam, kernel_size=dl.default_kernel_size(240, 320))
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
