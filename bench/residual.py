"""Does the fit's residual tell model error from noise? Residual RMS per epoch.

    python bench/residual.py

Renders the Middlebury scene (96 x 128, NYUv2 camera) five ways, runs
``dl.solve`` for six short epochs on each, and after every epoch prints the
RMS of ``A(Z) x - b`` (the stack the model predicts from the current depth
and image, minus the measured one; interior pixels, so the border does not
count) next to the stack's noise estimate (``dl.estimate_noise``). Where
the model is exact the residual falls to the noise; where it is not, the
residual levels off above it, whatever the noise estimate says. The solve's
own model check, which acts on this residual, is off here (``model_check=False``)
so that every row shows the residual of one unchanged solve.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dfd_lite as dl  # noqa: E402
from dfd_lite.optics import optics_kernel_size  # noqa: E402

SETTINGS = dict(depth_range=(1.0, 8.0), num_depths=60, num_epochs=6, aif_num_iters=50,
                model_check=False, progress=False)


def residual_per_epoch(stack, camera, **options):
    """RMS residual of the model's fit after every epoch of ``dl.solve``."""
    # the window solve picks by default, passed to it and to the operator alike
    kernel_size = (optics_kernel_size(camera, SETTINGS["depth_range"]) if camera.psf == "disc"
                   else dl.default_kernel_size(*stack.shape[1:3]))
    margin = kernel_size // 2 + 1
    rms = []

    def record(epoch, depth, aif, history):
        op = dl.BlurOperator(depth, camera, kernel_size=kernel_size)
        residual = (op.forward(aif) - stack)[:, margin:-margin, margin:-margin]
        rms.append(float(np.sqrt(np.mean(residual ** 2))))

    dl.solve(stack, camera, kernel_size=kernel_size, callback=record, **SETTINGS, **options)
    return rms


def main():
    cam = dl.Camera.nyuv2()
    disc = cam.with_psf("disc")
    scene = dl.middlebury_scene((96, 128))
    physical = dl.render_physical(scene.aif, scene.depth, disc)
    cases = {
        "paper's model, noise-free": (dl.focal_stack(scene, cam), cam, {}),
        "paper's model, 0.3 % noise": (dl.focal_stack(scene, cam, noise_std=0.003, seed=1), cam,
                                       {"window": 1, "tv_weight": 0.0}),
        "physical disc, extend": (physical, disc, {"boundary": "extend"}),
        "physical disc, zero": (physical, disc, {"boundary": "zero"}),
        "physical disc, 8-bit, extend": (
            dl.render_physical(scene.aif, scene.depth, disc, bit_depth=8, seed=1), disc,
            {"boundary": "extend"}),
    }
    print("| stack, solve | noise estimate | residual RMS after epochs 1-6 |")
    print("| --- | --- | --- |")
    for name, (stack, camera, options) in cases.items():
        rms = residual_per_epoch(stack, camera, **options)
        print(f"| {name} | {dl.estimate_noise(stack):.5f} | "
              f"{' '.join(f'{v:.5f}' for v in rms)} |", flush=True)


if __name__ == "__main__":
    main()
