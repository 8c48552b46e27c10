"""The disc's blur bank in the grid search: what quantising the radius costs and saves.

    python bench/disc_bank.py

The grid search's constant-depth losses for the disc, computed with exact
radii (one blur per distinct radius) and with the bank at several radius
steps (:func:`dfd_lite.engines.radius_bank`; ``dfd_lite.depth.DISC_RADIUS_STEP``
is what the solver uses), on the Middlebury scene rendered with
``dl.render_physical`` (NYUv2 camera, disc PSF, 240 x 320), the true image
as ``x``, 100 candidates. Reports the number of blurs the bank holds, the
median time of the losses (CPU engine, after a warm-up), the largest
difference of a loss map from the exact one (relative to the largest exact
loss), the share of pixels whose best candidate is the exact one's, and the
RMS distance between the two best candidates' depths. In two settings, as
``bench/disc_budget.py``: the depth range where every blur is at most 12 px,
and the solver's default 0.1 - 10 m.
"""

from __future__ import annotations

import os
import platform
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dfd_lite as dl  # noqa: E402
from dfd_lite import engines  # noqa: E402
from dfd_lite.optics import optics_kernel_size, psf_radius  # noqa: E402
from bench.disc_budget import DISC, MAX_RADIUS, range_within  # noqa: E402
from bench.run import median_time  # noqa: E402

STEPS = (0.5, 0.25, 0.125, 0.0625)


def main():
    scene = dl.middlebury_scene((240, 320))
    stack = dl.render_physical(scene.aif, scene.depth, DISC)
    eng = engines.resolve("cpu", psf="disc")
    b = eng.asarray(np.ascontiguousarray(np.moveaxis(stack, -1, 1)))
    x = eng.asarray(np.ascontiguousarray(np.moveaxis(scene.aif, -1, 0)))
    narrow = range_within(DISC, MAX_RADIUS)
    print(f"Disc blur bank, Middlebury 240 x 320, 100 candidates, {platform.machine()}, "
          f"{os.cpu_count()} cores, `python bench/disc_bank.py`\n")
    print("| depth range | K | radius step (px) | blurs | time (s) | largest loss difference "
          "| same candidate | RMS candidate difference (m) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for depth_range in (narrow, (0.1, 10.0)):
        k = optics_kernel_size(DISC, depth_range)
        cands = dl.depth_candidates(depth_range, 100)
        radii = psf_radius(cands, DISC).T.astype(np.float32)
        exact = np.empty((len(cands),) + scene.depth.shape, dtype=np.float32)

        def losses(step, out):
            return eng.constant_depth_losses(x, b, radii, k, out, "disc", radius_step=step)

        losses(None, exact)
        best = exact.argmin(0)
        label = f"{depth_range[0]:.2f} - {depth_range[1]:.2f} m"
        print(f"| {label} | {k} | exact | {engines.radius_bank(radii).radii.size} | "
              f"{median_time(lambda: losses(None, exact), 3):.2f} | 0 | 100 % | 0 |")
        for step in STEPS:
            banked = np.empty_like(exact)
            losses(step, banked)
            seconds = median_time(lambda: losses(step, banked), 3)
            pick = banked.argmin(0)
            rel = np.abs(banked - exact).max() / exact.max()
            dz = cands[pick] - cands[best]
            print(f"| {label} | {k} | {step:g} | {engines.radius_bank(radii, step).radii.size} | "
                  f"{seconds:.2f} | {100 * rel:.2f} % | {100 * np.mean(pick == best):.1f} % | "
                  f"{np.sqrt(np.mean(dz ** 2)):.3f} |")


if __name__ == "__main__":
    main()
