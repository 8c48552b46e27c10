"""Where the physical disc's depth error comes from: the depth step given the true image.

    python bench/disc_error_sources.py             # about 2 minutes on 2 cores
    python bench/disc_error_sources.py --no-solve  # the depth steps only

The physical-model issue asks for depth RMSE <= 0.15 m on the Middlebury
scene (240 x 320, NYUv2 camera) rendered by ``dl.render_physical`` with the
disc PSF; ``dl.solve`` reaches 0.35 m. This script separates the causes by
handing the depth step the *true* all-in-focus image, so that only the
forward model can be wrong: one depth step (grid search over 100 candidates,
golden-section refinement, box window 5, the optics' kernel size) on stacks
that differ in one respect at a time:

* the solver's own disc model (the inverse crime), the lower bound;
* the physical renderer with each pixel *gathering* light with its own PSF
  (the solver's model, but supersampled and untruncated), then *scattering*
  it (light spreads from where it comes from, normalised by coverage: what
  happens at occlusion edges);
* each with the renderer's default mirrored scene beyond the frame and with
  a black one (the depth step given the frame alone assumes black).

Each row reports the RMSE and how the squared error splits between pixels
within 4 px of a depth edge (depth gradient above 0.05 m per pixel, 20 px or
more from the frame), within 20 px of the frame, and the rest. The last
row does the same for the whole ``dl.solve`` on the default physical stack.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import scipy.ndimage as ndi

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dfd_lite as dl  # noqa: E402
from dfd_lite.optics import optics_kernel_size  # noqa: E402

DEPTH_RANGE = (0.1, 10.0)
EDGE_GRADIENT = 0.05   # metres per pixel
EDGE_REACH = 4         # pixels
FRAME_BORDER = 20      # pixels: about the widest disc's radius here


def regions(scene):
    """Boolean masks ``(edges, border, rest)`` over the valid pixels."""
    h, w = scene.depth.shape
    yy, xx = np.mgrid[:h, :w]
    border = np.minimum(np.minimum(yy, h - 1 - yy), np.minimum(xx, w - 1 - xx)) < FRAME_BORDER
    gy, gx = np.gradient(scene.depth)
    edges = ndi.binary_dilation(np.hypot(gx, gy) > EDGE_GRADIENT, iterations=EDGE_REACH)
    edges &= ~border
    valid = scene.valid.astype(bool)
    return edges & valid, border & valid, ~edges & ~border & valid


def split(depth, scene, masks):
    err = np.where(scene.valid, (depth - scene.depth) ** 2, 0.0)
    shares = [100 * err[m].sum() / err.sum() for m in masks]
    return dl.depth_metrics(depth, scene.depth, mask=scene.valid)["rmse"], shares


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--no-solve", action="store_true", help="skip the whole solve (about 60 s)")
    args = p.parse_args(argv)

    cam = dl.Camera.nyuv2().with_psf("disc")
    scene = dl.middlebury_scene((240, 320))
    cands = dl.depth_candidates(DEPTH_RANGE, 100)
    k = optics_kernel_size(cam, DEPTH_RANGE)
    masks = regions(scene)
    print(f"Middlebury 240 x 320, NYUv2 camera, disc PSF, K = {k}; pixels near depth edges "
          f"{100 * masks[0].mean():.0f} %, near the frame {100 * masks[1].mean():.0f} %, "
          f"rest {100 * masks[2].mean():.0f} %\n")
    print("| stack | depth from | RMSE (m) | sq. error near depth edges | near the frame | rest |")
    print("| --- | --- | --- | --- | --- | --- |")
    stacks = {
        "solver's own disc model": dl.render_stack(scene.aif, scene.depth, cam, kernel_size=k,
                                                   backend="cpu"),
        "physical, gather, black beyond the frame":
            dl.render_physical(scene.aif, scene.depth, cam, spread="gather", boundary="zero"),
        "physical, gather, mirrored beyond the frame":
            dl.render_physical(scene.aif, scene.depth, cam, spread="gather"),
        "physical, scatter, black beyond the frame":
            dl.render_physical(scene.aif, scene.depth, cam, boundary="zero"),
        "physical, scatter, mirrored beyond the frame (default)":
            dl.render_physical(scene.aif, scene.depth, cam),
    }
    for name, stack in stacks.items():
        depth = dl.depth_step(scene.aif, stack, cam, cands, window=5, kernel_size=k,
                              backend="cpu").depth
        rmse, shares = split(depth, scene, masks)
        print(f"| {name} | true image, one depth step | {rmse:.3f} | "
              + " | ".join(f"{s:.0f} %" for s in shares) + " |", flush=True)
    if not args.no_solve:
        t0 = time.perf_counter()
        result = dl.solve(stacks["physical, scatter, mirrored beyond the frame (default)"], cam,
                          progress=False, backend="cpu")
        rmse, shares = split(result.depth, scene, masks)
        print(f"| physical, scatter, mirrored beyond the frame (default) | `dl.solve` defaults "
              f"({time.perf_counter() - t0:.0f} s) | {rmse:.3f} | "
              + " | ".join(f"{s:.0f} %" for s in shares) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
