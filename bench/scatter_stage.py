"""The solve's scatter stage, taken apart: its depth prior, its passes, its image step.

    python bench/scatter_stage.py                 # about 5 minutes on 2 cores

``dl.solve(spread="scatter")`` (the default for the disc) ends with a stage
on the scatter model (:mod:`dfd_lite.scatter`): coordinate descent on the
depth near depth edges, an image step on that model, and the descent
again. This script measures what each part buys on the issue's target
stack (Middlebury 240 x 320, NYUv2 camera, ``dl.render_physical`` with the
disc, noise-free), starting from ``dl.solve(..., spread="gather")`` with
otherwise default settings, its image mirrored beyond the frame as the
canvas:

1. the descent alone for each weight of the depth prior
   (``SCATTER_SMOOTH`` per slice and channel), depth RMSE after 2, 4 and 6
   passes;
2. the whole stage at the default weight (6 passes, the image step, 3
   passes): depth RMSE and AIF PSNR after each part.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dfd_lite as dl  # noqa: E402
from dfd_lite import engines  # noqa: E402
from dfd_lite.depth import DepthSearch, depth_candidates  # noqa: E402
from dfd_lite.scatter import scatter_depth_sweeps  # noqa: E402
from dfd_lite.solve import SCATTER_SMOOTH, SCATTER_SWEEPS, _scatter_stage  # noqa: E402

CAM = dl.Camera.nyuv2().with_psf("disc")
DEPTH_RANGE = (0.1, 10.0)
WEIGHTS = (0.0, 2e-6, 7e-6, 1.3e-5, 7e-5, 6.7e-4)   # per slice and channel


def main():
    scene = dl.middlebury_scene((240, 320))
    stack = dl.render_physical(scene.aif, scene.depth, CAM)
    print(f"Scatter stage, {datetime.date.today()}, Middlebury 240 x 320, NYUv2 camera, disc, "
          f"{platform.machine()}, {os.cpu_count()} cores, `python bench/scatter_stage.py`\n",
          flush=True)

    def rmse(depth):
        return dl.depth_metrics(depth, scene.depth, mask=scene.valid)["rmse"]

    t0 = time.perf_counter()
    start = dl.solve(stack, CAM, spread="gather", progress=False, backend="cpu")
    print(f"start: dl.solve(spread='gather') depth {rmse(start.depth):.3f} m, AIF "
          f"{dl.psnr(start.aif, scene.aif):.2f} dB, residual {start.residual_rms:.5f} "
          f"({time.perf_counter() - t0:.0f} s)\n", flush=True)

    eng = engines.resolve("cpu", psf="disc")
    k = start.kernel_size
    margin = k // 2 + 1
    b = np.ascontiguousarray(np.moveaxis(stack, -1, 1))
    search = DepthSearch(eng, b, CAM, k)
    canvas = np.pad(start.aif, ((margin, margin), (margin, margin), (0, 0)), mode="symmetric")
    x = np.ascontiguousarray(np.moveaxis(canvas, -1, 0), dtype=np.float32)
    n_f, n_c = b.shape[:2]
    step = float(np.min(np.diff(depth_candidates(DEPTH_RANGE, 100))))

    print("| depth prior (per slice and channel) | after 2 passes | 4 | 6 "
          "| time (2 + 4 + 6 passes) |")
    print("| --- | --- | --- | --- | --- |")
    for weight in WEIGHTS:
        t0 = time.perf_counter()
        trace = []
        for sweeps in (2, 4, 6):    # a call's first passes are the same in every call
            depth, _ = scatter_depth_sweeps(x, b, start.depth, search.optics, k, margin=margin,
                                            sweeps=sweeps, step=step, depth_range=DEPTH_RANGE,
                                            smooth=weight * n_f * n_c, engine=eng)
            trace.append(f"{rmse(depth):.3f}")
        mark = " (default)" if weight == SCATTER_SMOOTH else ""
        print(f"| {weight:.2g}{mark} | " + " | ".join(trace)
              + f" | {time.perf_counter() - t0:.0f} s |", flush=True)

    print("\n| stage (default weight) | depth RMSE | AIF PSNR | residual |")
    print("| --- | --- | --- | --- |")
    for sweeps, label in (((SCATTER_SWEEPS[0], 0), f"{SCATTER_SWEEPS[0]} passes"),
                          (SCATTER_SWEEPS, f"then the image step and {SCATTER_SWEEPS[1]} passes")):
        x_s, depth, _, residual = _scatter_stage(
            eng, search, x, start.depth, k, margin=margin, tv_weight=start.tv_weight,
            upper=1.0, num_iters=100 if sweeps[1] else 0, step=step, depth_range=DEPTH_RANGE,
            epoch=0, sweeps=sweeps)
        aif = np.moveaxis(x_s[:, margin:-margin, margin:-margin], 0, -1)
        print(f"| {label} | {rmse(depth):.3f} m | {dl.psnr(aif, scene.aif):.2f} dB | "
              f"{residual:.5f} |", flush=True)


if __name__ == "__main__":
    main()
