"""The physical-model issue's speed budget for the disc PSF, on the CPU engine.

    python bench/disc_budget.py

The issue's budget, at 240 x 320, F = 5, RGB, blur radii up to 12 px:
forward + adjoint <= 40 ms, grid search over 100 candidates <= 0.5 s,
end-to-end solve <= 60 s. Measured on the Middlebury scene (NYUv2 camera,
disc PSF, its depth map for the operator, whose radii reach 11 px; the
solve on its noise-free physical rendering, ``dl.render_physical``) in two
settings:

* "radii <= 12 px": the window and the candidates of the issue's condition,
  the depth range searched cut to where every slice's blur is at most 12 px
  (K from :func:`dfd_lite.optics.optics_kernel_size` over that range);
* "defaults": what ``dl.solve`` uses by default, 100 candidates over
  0.1 - 10 m, whose widest blurs fill the capped window (K = 41).

Medians of repeats after a warm-up (Numba compilation excluded); the solve
(every other option at its default, ``depth_range`` as in the setting) is
timed once, with its depth RMSE, and once more with ``spread="gather"``
(without the scatter stage) for comparison. ``--no-solve`` leaves them out.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dfd_lite as dl  # noqa: E402
from dfd_lite import engines  # noqa: E402
from dfd_lite.aif import power_iteration, run_fista  # noqa: E402
from dfd_lite.depth import DepthSearch  # noqa: E402
from dfd_lite.optics import optics_kernel_size, psf_radius  # noqa: E402
from bench.run import median_time  # noqa: E402

DISC = dl.Camera.nyuv2().with_psf("disc")
MAX_RADIUS = 12.0


def range_within(camera, radius, lo=0.1, hi=10.0):
    """The widest ``(near, far)`` inside ``(lo, hi)`` where every slice's blur is at most ``radius``."""
    depths = np.linspace(lo, hi, 20001)
    ok = np.all(psf_radius(depths, camera) <= radius, axis=0)
    inside = depths[ok]
    return float(inside.min()), float(inside.max())


def measure(scene, stack, depth_range, repeat=10, solve=True):
    """Timings on ``scene`` and its physical ``stack`` (H, W, C) for one searched depth range."""
    k = optics_kernel_size(DISC, depth_range)
    eng = engines.resolve("cpu", psf="disc")
    b = eng.asarray(np.ascontiguousarray(np.moveaxis(stack, -1, 1)))
    x = eng.asarray(np.ascontiguousarray(np.moveaxis(scene.aif, -1, 0)))
    search = DepthSearch(eng, b, DISC, k)
    wts = eng.weights(scene.depth.astype(np.float32), search.optics, k)
    y = eng.forward(x, wts)
    lip = power_iteration(eng, wts, (240, 320))
    cands = dl.depth_candidates(depth_range, 100)
    idx, _ = search.grid(x, cands, 1)
    n_fista = 20
    out = {
        "K": k,
        "forward (ms)": 1e3 * median_time(lambda: eng.forward(x, wts), repeat),
        "adjoint (ms)": 1e3 * median_time(lambda: eng.adjoint(y, wts), repeat),
        "FISTA iteration (ms)": 1e3 * median_time(
            lambda: run_fista(eng, wts, b, x, num_iters=n_fista, lipschitz=lip, lo=0.0, hi=1.0),
            max(1, repeat // 4)) / n_fista,
        "grid search, 100 candidates (s)": median_time(lambda: search.grid(x, cands, 1),
                                                       max(1, repeat // 4)),
        "golden-section refinement (s)": median_time(
            lambda: search.refine(x, cands, idx, 1e-2), max(1, repeat // 4)),
    }
    out["forward + adjoint (ms)"] = out["forward (ms)"] + out["adjoint (ms)"]
    if solve:
        # the default (with the scatter stage), and the gather model alone
        for label, spread in (("", "scatter"), (", gather only", "gather")):
            t0 = time.perf_counter()
            res = dl.solve(stack, DISC, depth_range=depth_range, spread=spread, progress=False)
            out[f"end-to-end solve{label} (s)"] = time.perf_counter() - t0
            out[f"solve's depth RMSE{label} (m)"] = dl.depth_metrics(res.depth, scene.depth,
                                                                     mask=scene.valid)["rmse"]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-solve", action="store_true",
                        help="leave out the end-to-end solves (several minutes)")
    args = parser.parse_args(argv)
    narrow = range_within(DISC, MAX_RADIUS)
    settings = {f"radii <= {MAX_RADIUS:g} px, {narrow[0]:.2f} - {narrow[1]:.2f} m": narrow,
                "defaults, 0.1 - 10 m": (0.1, 10.0)}
    if not args.no_solve:   # compile the solve's kernels before timing one
        stack = dl.render_stack(np.full((24, 24, 3), 0.5, np.float32), np.full((24, 24), 2.0),
                                DISC)
        dl.solve(stack, DISC, num_epochs=2, progress=False)
    scene = dl.middlebury_scene((240, 320))
    stack = dl.render_physical(scene.aif, scene.depth, DISC)
    results = {name: measure(scene, stack, rng, solve=not args.no_solve)
               for name, rng in settings.items()}
    print(f"Disc budget, 240 x 320, F = 5, RGB, {platform.machine()}, {os.cpu_count()} cores, "
          f"`python bench/disc_budget.py`\n")
    names = list(results)
    print("| | " + " | ".join(names) + " | budget |")
    print("| --- | " + " | ".join("---" for _ in names) + " | --- |")
    budget = {"forward + adjoint (ms)": "40", "grid search, 100 candidates (s)": "0.5",
              "end-to-end solve (s)": "60"}
    for key in ("K", "forward (ms)", "adjoint (ms)", "forward + adjoint (ms)",
                "FISTA iteration (ms)", "grid search, 100 candidates (s)",
                "golden-section refinement (s)", "end-to-end solve (s)",
                "solve's depth RMSE (m)", "end-to-end solve, gather only (s)",
                "solve's depth RMSE, gather only (m)"):
        if key not in results[names[0]]:
            continue
        cells = [f"{results[n][key]:.0f}" if key == "K" or key.startswith("end-to-end")
                 or "(ms)" in key else
                 f"{results[n][key]:.3f}" if key.endswith("(m)") else
                 f"{results[n][key]:.2f}" for n in names]
        print(f"| {key} | " + " | ".join(cells) + f" | {budget.get(key, '')} |")


if __name__ == "__main__":
    main()
