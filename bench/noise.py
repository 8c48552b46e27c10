"""Depth and AIF accuracy against noise, with solve's defaults only.

    python bench/noise.py                      # Middlebury and synthetic, 0 - 2 %
    python bench/noise.py --scenes middlebury --levels 0 0.01

Every row is ``dl.solve(stack, cam)`` with nothing tuned: the noise level
is estimated from the stack and sets the grid search's window and the
weight of the TV prior (``dl.solve``'s ``noise_defaults``). "confidence
ratio": the median depth error of the 20 % least confident pixels
(``SolveResult.depth_std``) over that of the 50 % most confident. "RMSE after
fill_depth": the depth after ``dl.fill_depth`` (not part of the solve). Stacks are
rendered with the paper's model plus Gaussian noise, as in the issue's
table; ``--physical`` renders with ``dl.render_physical`` (disc, scatter,
8-bit) and solves with the disc camera instead (whose default border is
``"extend"``). "restarted": whether the solve's model check found model
error and started again with priors (the window and TV weight are then the
ones it ended with).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import dfd_lite as dl  # noqa: E402

SCENES = {"middlebury": lambda: dl.middlebury_scene((240, 320)),
          "synthetic": lambda: dl.synthetic_scene((240, 320), seed=0)}


def confidence_ratio(result, scene):
    """Median depth error of the 20 % least confident pixels over that of the 50 % most confident."""
    err = np.abs(result.depth - scene.depth)[scene.valid]
    order = np.argsort(result.depth_std[scene.valid], kind="stable")
    n = order.size
    return float(np.median(err[order[-n // 5:]]) / max(np.median(err[order[:n // 2]]), 1e-12))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    parser.add_argument("--levels", nargs="+", type=float, default=[0.0, 0.005, 0.01, 0.02])
    parser.add_argument("--physical", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    cam = dl.Camera.nyuv2()
    lines = [f"Noise, {datetime.date.today()}, 240 x 320, NYUv2 camera, "
             f"{'physical disc renderer, 8-bit' if args.physical else 'paper model + Gaussian noise'}, "
             f"{platform.machine()}, {os.cpu_count()} cores, `python bench/noise.py`", "",
             "| scene | noise | estimated | restarted | window | TV weight | depth RMSE (m) | "
             "delta1 | AIF PSNR (dB) | confidence ratio | RMSE after fill_depth (m) | time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    print("\n".join(lines), flush=True)
    for name in args.scenes:
        scene = SCENES[name]()
        for level in args.levels:
            if args.physical:
                disc = cam.with_psf("disc")
                stack = dl.render_physical(scene.aif, scene.depth, disc, read_noise=level,
                                           bit_depth=8, seed=1)
                t0 = time.perf_counter()
                res = dl.solve(stack, disc, progress=False)
            else:
                stack = dl.focal_stack(scene, cam, noise_std=level, seed=1)
                t0 = time.perf_counter()
                res = dl.solve(stack, cam, progress=False)
            seconds = time.perf_counter() - t0
            m = dl.depth_metrics(res.depth, scene.depth, mask=scene.valid)
            filled = dl.fill_depth(res.depth, res.depth_std, np.clip(res.aif, 0, 1))
            filled_rmse = dl.depth_metrics(filled, scene.depth, mask=scene.valid)["rmse"]
            restarted = "yes" if res.restarted else "no"
            line = (f"| {name} | {100 * level:.1f} % | {100 * res.noise_std:.2f} % | {restarted} | "
                    f"{res.window} | {res.tv_weight:.4f} | {m['rmse']:.3f} | {m['delta1']:.3f} | "
                    f"{dl.psnr(res.aif, scene.aif):.1f} | {confidence_ratio(res, scene):.1f} | "
                    f"{filled_rmse:.3f} | {seconds:.0f} s |")
            lines.append(line)
            print(line, flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
