"""A prototype depth step on the scatter model: what it buys at occlusion edges.

    python bench/scatter_depth_step.py            # about 6 minutes on 2 cores

``bench/disc_error_sources.py`` shows that the physical disc's depth error
sits at occlusion edges, where light scatters from where it comes from and
the solver's per-pixel (gather) loss is the wrong model. This script tries
the right one, as a measurement (its kernels live here, not in the package).

**The model.** Slice ``f`` predicts ``y_f = (S_f x) / (S_f 1)``: every
scene pixel ``q`` spreads its light with the disc of its own depth's radius
(``dl.psf.disc_psf``, truncated to the optics' window), and each pixel is
divided by its coverage. Kept as two running sums per slice, the spread
light ``N_f`` and the coverage ``C_f``.

**The depth step.** Coordinate descent on the depth grid: visit the pixels
whose 5 x 5 neighbourhood spans more than one grid step (near the current
map's edges), one at a time; try the depths found in that neighbourhood and
the two grid neighbours of its own; changing pixel ``q`` from disc ``h`` to
``h'`` changes ``N_f`` by ``x_q (h' - h)`` and ``C_f`` by ``h' - h`` over the
two discs' support, and the loss change is summed there; keep the best and
update the sums. Each accepted move lowers the scatter loss. The loss is
counted, and pixels are moved, 25 px or more from the frame only (this
prototype knows nothing beyond the frame; the solver's extended image
would). One sweep over about 30 000 pixels takes about 4 s, single-threaded.

**Rows** (Middlebury 240 x 320, NYUv2 camera, disc, 100 candidates,
``render_physical``; RMSE over valid pixels 25 px or more from the frame):

1. the true image, the scatter stack with black beyond the frame, starting
   from the gather depth step's grid (window 5): the model's bound;
2. the image and depth of ``dl.solve`` (defaults) on the default stack
   (mirrored beyond the frame): the step as a post-process of today's solve;
3. alternating with an image step on the same model (projected FISTA, 100
   iterations from the solve's image, ``bench/scatter_bound.py``'s
   operator), on the stack with black beyond the frame.
"""

from __future__ import annotations

import os
import sys
import time

import numba
import numpy as np
import scipy.ndimage as ndi

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dfd_lite as dl  # noqa: E402
from dfd_lite.optics import optics_kernel_size, psf_radius  # noqa: E402
from dfd_lite.psf import disc_psf  # noqa: E402

CAM = dl.Camera.nyuv2().with_psf("disc")
DEPTH_RANGE = (0.1, 10.0)
MARGIN = 25          # pixels from the frame that the prototype leaves alone
REACH = 2            # neighbourhood (2 * REACH + 1 wide) that proposes depths
SWEEPS = 12


def disc_bank(cands, k):
    """``(F, N, k, k)``: the normalised disc of each slice and candidate, truncated to ``k``."""
    half = k // 2
    radii = psf_radius(cands, CAM)
    bank = np.zeros((radii.shape[0], radii.shape[1], k, k))
    for f in range(radii.shape[0]):
        for n in range(radii.shape[1]):
            kern = disc_psf(float(radii[f, n]))
            kh = kern.shape[0] // 2
            if kh > half:
                kern = kern[kh - half:kh + half + 1, kh - half:kh + half + 1]
                kern = kern / kern.sum()
                kh = half
            bank[f, n, half - kh:half + kh + 1, half - kh:half + kh + 1] = kern
    return bank


@numba.njit(cache=True)
def spread(x, index, bank, light, cover):
    """Add every pixel's light and coverage, spread with its candidate's disc."""
    n_f, _, k, _ = bank.shape
    n_c, h, w = x.shape
    half = k // 2
    for q0 in range(h):
        for q1 in range(w):
            n = index[q0, q1]
            for f in range(n_f):
                for a in range(k):
                    p0 = q0 + a - half
                    if p0 < 0 or p0 >= h:
                        continue
                    for bb in range(k):
                        p1 = q1 + bb - half
                        if p1 < 0 or p1 >= w:
                            continue
                        g = bank[f, n, a, bb]
                        if g == 0.0:
                            continue
                        cover[f, p0, p1] += g
                        for c in range(n_c):
                            light[f, c, p0, p1] += g * x[c, q0, q1]


@numba.njit(cache=True)
def disc_change(x, b, bank, light, cover, q0, q1, cur, new, margin, apply):
    """Pixel ``(q0, q1)`` from candidate ``cur`` to ``new``: the scatter-loss change over
    pixels ``margin`` or more from the frame, or (``apply``) the move itself, everywhere."""
    n_f, _, k, _ = bank.shape
    n_c, h, w = x.shape
    half = k // 2
    delta = 0.0
    for f in range(n_f):
        for a in range(k):
            p0 = q0 + a - half
            if p0 < margin or p0 >= h - margin:
                continue
            for bb in range(k):
                p1 = q1 + bb - half
                if p1 < margin or p1 >= w - margin:
                    continue
                dc = bank[f, new, a, bb] - bank[f, cur, a, bb]
                if dc == 0.0:
                    continue
                cov = cover[f, p0, p1]
                for c in range(n_c):
                    if apply:
                        light[f, c, p0, p1] += dc * x[c, q0, q1]
                    else:
                        before = light[f, c, p0, p1] / cov - b[f, c, p0, p1]
                        after = ((light[f, c, p0, p1] + dc * x[c, q0, q1]) / (cov + dc)
                                 - b[f, c, p0, p1])
                        delta += after * after - before * before
                if apply:
                    cover[f, p0, p1] = cov + dc
    return delta


@numba.njit(cache=True)
def sweep(x, b, index, bank, light, cover, visit, reach, margin):
    """One pass of coordinate descent over the pixels ``visit``; returns the moves made."""
    n_c, h, w = x.shape
    n_cands = bank.shape[1]
    proposals = np.empty((2 * reach + 1) ** 2 + 2, np.int64)
    moves = 0
    for t in range(visit.shape[0]):
        q0, q1 = visit[t, 0], visit[t, 1]
        cur = index[q0, q1]
        m = 0
        for d0 in range(-reach, reach + 1):
            for d1 in range(-reach, reach + 1):
                v = index[min(max(q0 + d0, 0), h - 1), min(max(q1 + d1, 0), w - 1)]
                seen = False
                for j in range(m):
                    seen = seen or proposals[j] == v
                if not seen:
                    proposals[m] = v
                    m += 1
        for v in (cur - 1, cur + 1):
            if 0 <= v < n_cands:
                proposals[m] = v
                m += 1
        best, best_n = 0.0, cur
        for j in range(m):
            if proposals[j] != cur:
                d = disc_change(x, b, bank, light, cover, q0, q1, cur, proposals[j], margin,
                                False)
                if d < best:
                    best, best_n = d, proposals[j]
        if best_n != cur:
            disc_change(x, b, bank, light, cover, q0, q1, cur, best_n, 0, True)
            index[q0, q1] = best_n
            moves += 1
    return moves


class ScatterDepth:
    """The running sums of one image and depth grid index, and sweeps over them."""

    def __init__(self, image, stack, index, bank):
        self.x = np.ascontiguousarray(np.moveaxis(image, -1, 0), dtype=np.float64)
        self.b = np.ascontiguousarray(np.moveaxis(stack, -1, 1), dtype=np.float64)
        self.index, self.bank = index.astype(np.int64), bank
        n_f, n_c = self.b.shape[:2]
        self.light = np.zeros((n_f, n_c) + index.shape)
        self.cover = np.zeros((n_f,) + index.shape)
        spread(self.x, self.index, bank, self.light, self.cover)
        self.cover = np.maximum(self.cover, 1e-12)
        self.inner = np.zeros(index.shape, bool)
        self.inner[MARGIN:-MARGIN, MARGIN:-MARGIN] = True

    def sweep(self):
        wide = 2 * REACH + 1
        spans = ndi.maximum_filter(self.index, wide) - ndi.minimum_filter(self.index, wide)
        visit = np.argwhere((spans >= 2) & self.inner)
        return sweep(self.x, self.b, self.index, self.bank, self.light, self.cover, visit,
                     REACH, MARGIN)


def main():
    scene = dl.middlebury_scene((240, 320))
    cands = dl.depth_candidates(DEPTH_RANGE, 100)
    k = optics_kernel_size(CAM, DEPTH_RANGE)
    bank = disc_bank(cands, k)
    inner = np.zeros(scene.depth.shape, bool)
    inner[MARGIN:-MARGIN, MARGIN:-MARGIN] = True
    valid = scene.valid.astype(bool) & inner

    def rmse(depth):
        return dl.depth_metrics(depth, scene.depth, mask=valid)["rmse"]

    def psnr(aif):
        return dl.psnr(aif, scene.aif, mask=inner)

    def nearest(depth):
        return np.abs(depth[..., None] - cands[None, None, :]).argmin(-1)

    black = dl.render_physical(scene.aif, scene.depth, CAM, boundary="zero")
    mirrored = dl.render_physical(scene.aif, scene.depth, CAM)
    print(f"Middlebury 240 x 320, NYUv2 camera, disc, K = {k}; depth RMSE (m) on valid pixels "
          f"{MARGIN} px or more from the frame\n")

    # 1. the true image
    start = dl.depth_step(scene.aif, black, CAM, cands, window=5, kernel_size=k, refine=False,
                          backend="cpu").grid_index
    state = ScatterDepth(scene.aif, black, start, bank)
    trace = [rmse(cands[state.index])]
    for _ in range(SWEEPS):
        state.sweep()
        trace.append(rmse(cands[state.index]))
    print("1. true image, black beyond the frame, from the gather grid (window 5): "
          + " -> ".join(f"{v:.3f}" for v in trace[::3] + [trace[-1]]), flush=True)

    # 2. after dl.solve, with its image
    t0 = time.perf_counter()
    result = dl.solve(mirrored, CAM, progress=False, backend="cpu")
    state = ScatterDepth(result.aif, mirrored, nearest(result.depth), bank)
    trace = [rmse(cands[state.index])]
    for _ in range(SWEEPS // 2):
        state.sweep()
        trace.append(rmse(cands[state.index]))
    print(f"2. dl.solve's image and depth (solve {time.perf_counter() - t0:.0f} s, RMSE "
          f"{rmse(result.depth):.3f} before the grid), mirrored beyond the frame, per sweep: "
          + " -> ".join(f"{v:.3f}" for v in trace), flush=True)

    # 3. alternating with a scatter-model image step
    from bench.scatter_bound import Models, fista
    result = dl.solve(black, CAM, progress=False, backend="cpu")
    index = nearest(result.depth)
    image = np.ascontiguousarray(np.moveaxis(result.aif, -1, 0), dtype=np.float32)
    b = np.ascontiguousarray(np.moveaxis(black, -1, 1), dtype=np.float32)
    rows = [f"start (dl.solve): depth {rmse(result.depth):.3f}, image {psnr(result.aif):.2f} dB"]
    for rnd in range(4):
        models = Models(cands[index].astype(np.float32), k, image.shape[0])
        image = fista(models.scatter, models.scatter_t, b, image, 100)
        state = ScatterDepth(np.moveaxis(image, 0, -1), black, index, bank)
        for _ in range(3):
            state.sweep()
        index = state.index
        rows.append(f"round {rnd + 1}: depth {rmse(cands[index]):.3f}, "
                    f"image {psnr(np.moveaxis(image, 0, -1)):.2f} dB")
    print("3. alternating (100 FISTA iterations, 3 sweeps), black beyond the frame: "
          + "; ".join(rows), flush=True)


if __name__ == "__main__":
    main()
