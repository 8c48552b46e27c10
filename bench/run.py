"""Benchmark dfd_lite against the plain SciPy formulation, measured in the same run.

    python bench/run.py                      # 240x320 and 480x640, full table
    python bench/run.py --sizes 240x320 --out bench/results.md

For each size (F = 5 planes, RGB, NYUv2 camera, kernel 11 at 240x320 and 23 at
480x640) it times the matrix-free Numba path and the straightforward
formulation the book teaches first: the blur as a ``scipy.sparse`` matrix and
the grid search as ``scipy.ndimage`` separable convolutions. Medians of
repeats, after a warm-up run (Numba compilation is excluded). Peak memory is
the peak resident set size of a fresh process running the end-to-end solve.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import scipy.ndimage as ndi

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dfd_lite as dl  # noqa: E402
from dfd_lite import engines  # noqa: E402
from dfd_lite.aif import power_iteration, run_fista  # noqa: E402
from dfd_lite.depth import DepthSearch  # noqa: E402
from dfd_lite.engines._scalar import GOLDEN  # noqa: E402
from dfd_lite.optics import thin_lens_coefficients  # noqa: E402

CAM = dl.Camera.nyuv2()
SOLVE = dict(depth_range=(0.1, 10.0), num_depths=100, num_epochs=10, aif_num_iters=100,
             aif_growth=1.0, window=3, progress=False)
# At 480 x 640 the kernel is 23 wide (4.4x the work per pixel of K = 11, on 4x the
# pixels): a lighter schedule keeps the end-to-end run within minutes.
SOLVE_BY_SIZE = {(480, 640): dict(SOLVE, num_epochs=5, aif_num_iters=60)}


def solve_settings(h, w):
    return SOLVE_BY_SIZE.get((h, w), SOLVE)


def once(fn):
    """Wall time of a single run (for the slow baseline steps)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_time(fn, repeat):
    fn()  # warm-up: compilation and caches
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def problem(h, w):
    scene = dl.middlebury_scene((h, w))
    k = dl.default_kernel_size(h, w)
    stack = dl.focal_stack(scene, CAM, kernel_size=k)
    planar_b = np.ascontiguousarray(np.moveaxis(stack, -1, 1))
    x = np.ascontiguousarray(np.moveaxis(scene.aif, -1, 0))
    return scene, k, stack, planar_b, x


def ours(h, w, repeat):
    """dfd_lite's steps on the CPU engine (the algorithms the public functions run)."""
    scene, k, stack, b, x = problem(h, w)
    cands = dl.depth_candidates((0.1, 10.0), 100)
    eng = engines.resolve("cpu")
    optics = eng.optics(thin_lens_coefficients(CAM))
    wts = eng.weights(scene.depth.astype(np.float32), optics, k)
    search = DepthSearch(eng, b, CAM, k)
    y = eng.forward(x, wts)
    lip = power_iteration(eng, wts, (h, w))
    idx, _ = search.grid(x, cands, 1)
    n_fista = 20
    settings = solve_settings(h, w)

    def fista(iters, weights=wts):
        return run_fista(eng, weights, b, x, num_iters=iters, lipschitz=lip, lo=0.0, hi=1.0)
    out = {
        "forward": median_time(lambda: eng.forward(x, wts), repeat),
        "adjoint": median_time(lambda: eng.adjoint(y, wts), repeat),
        "FISTA iteration": median_time(lambda: fista(n_fista), max(1, repeat // 4)) / n_fista,
        "grid search (100 depths)": median_time(lambda: search.grid(x, cands, 1),
                                                max(1, repeat // 4)),
        "golden-section refinement": median_time(lambda: search.refine(x, cands, idx, 1e-2),
                                                 max(1, repeat // 4)),
    }

    def epoch():
        depth, _, _, _ = search.step(x, cands, window=settings["window"],
                                     previous=scene.depth.astype(np.float32))
        new_wts = eng.weights(depth, optics, k)
        run_fista(eng, new_wts, b, x, num_iters=settings["aif_num_iters"],
                  lipschitz=power_iteration(eng, new_wts, (h, w)), lo=0.0, hi=1.0)
    out["one epoch"] = median_time(epoch, 1)
    out.update(solve_in_fresh_process(h, w))
    return out


def solve_in_fresh_process(h, w):
    """End-to-end solve in a new process: its time, depth error and peak RSS."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = f"import sys; sys.path.insert(0, {root!r}); import bench.run as r; r.solve_only({h}, {w})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def solve_only(h, w):
    scene, k, stack, _, _ = problem(h, w)
    # compile (or load from Numba's cache) outside the timed region
    dl.solve(stack[:, :32, :32], CAM, kernel_size=k, num_depths=4, num_epochs=1,
             aif_num_iters=2, progress=False, backend="cpu")
    t0 = time.perf_counter()
    res = dl.solve(stack, CAM, kernel_size=k, backend="cpu", **solve_settings(h, w))
    seconds = time.perf_counter() - t0
    print(json.dumps({
        "end-to-end solve": seconds,
        "depth RMSE (m)": dl.depth_metrics(res.depth, scene.depth, mask=scene.valid)["rmse"],
        "peak memory (MB)": peak_rss_mb(),
    }))


def peak_rss_mb():
    """This process's peak resident set size in MB.

    Linux's VmHWM belongs to the address space, which exec replaces; the
    ru_maxrss fallback is carried over exec from the parent at fork time,
    so it overstates a child started by a large parent.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- the plain formulation --------------------------------------------------

def sparse_cols(mat, cols):
    """The sparse matrix applied to each channel: cols is (pixels, C)."""
    return np.stack([mat @ cols[:, c] for c in range(cols.shape[1])], 1)


def baseline(h, w, repeat, golden_evals):
    scene, k, stack, b, x = problem(h, w)
    n_f = CAM.num_planes
    out = {}
    if h * w * k * k * n_f > 1.2e8:  # the matrix alone would need several GB here
        mat = None
    else:
        t0 = time.perf_counter()
        mat = dl.blur_matrix(scene.depth, CAM, kernel_size=k, max_pixels=10 ** 7)
        out["(build sparse matrix)"] = time.perf_counter() - t0
        mat_t = mat.T.tocsr()
        xcols = np.ascontiguousarray(x.reshape(3, -1).T)
        bcols = np.moveaxis(b, 1, -1).reshape(n_f * h * w, -1)
        y = sparse_cols(mat, xcols)
        out["forward"] = median_time(lambda: sparse_cols(mat, xcols), repeat)
        out["adjoint"] = median_time(lambda: sparse_cols(mat_t, y), repeat)
        step = np.float32(1.0 / 5.0)

        def fista_iter():
            grad = sparse_cols(mat_t, sparse_cols(mat, xcols) - bcols)
            np.clip(xcols - step * grad, 0, 1)
        out["FISTA iteration"] = median_time(fista_iter, max(1, repeat // 4))

    cands = dl.depth_candidates((0.1, 10.0), 100)
    img = np.moveaxis(x, 0, -1)

    def grid():
        best = np.full((h, w), np.inf, dtype=np.float32)
        for z in cands:
            loss = np.zeros((h, w), dtype=np.float32)
            for i, r in enumerate(dl.coc_radius(z, CAM)):
                wts = dl.gaussian_weights(r, k)
                blurred = ndi.correlate1d(ndi.correlate1d(img, wts, 0, mode="constant"), wts, 1,
                                          mode="constant")
                loss += ((blurred - stack[i]) ** 2).sum(-1)
            np.minimum(best, loss, out=best)
    out["grid search (100 depths)"] = once(grid)

    if mat is not None:
        def one_eval():
            m = dl.blur_matrix(scene.depth, CAM, kernel_size=k, max_pixels=10 ** 7)
            ((sparse_cols(m, xcols) - bcols) ** 2).sum(-1)
        out["golden-section refinement"] = once(one_eval) * golden_evals
    return out


def fmt(v, key):
    if v is None:
        return "n/a"
    if "RMSE" in key:
        return f"{v:.3f}"
    if "MB" in key:
        return f"{v:.0f}"
    return f"{v * 1e3:.1f} ms" if v < 1 else f"{v:.2f} s"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="240x320,480x640")
    ap.add_argument("--repeat", type=int, default=12)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--out", help="also write the markdown table here")
    args = ap.parse_args(argv)
    lines = [f"Measured {datetime.date.today()} on {platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}, numba threads {__import__('numba').get_num_threads()}. "
             "End-to-end solve: Middlebury scene, in a fresh process (peak memory is its "
             "peak RSS).", ""]
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        print(f"measuring {h}x{w} ...", file=sys.stderr, flush=True)
        mine = ours(h, w, args.repeat)
        k = dl.default_kernel_size(h, w)
        # golden evaluations: two to start, one per step, one for the grid point
        evals = 3 + int(np.ceil(np.log(1e-2 / 0.2) / np.log(GOLDEN)))
        base = {} if args.no_baseline else baseline(h, w, args.repeat, evals)
        lines += [f"### {h} x {w}, K = {k}, F = 5, RGB", "",
                  f"Solve settings: `{json.dumps(solve_settings(h, w))}`", "",
                  "| step | dfd_lite (Numba) | SciPy sparse / ndimage | speed-up |",
                  "| --- | --- | --- | --- |"]
        for key in list(mine) + [kk for kk in base if kk not in mine]:
            a, bb = mine.get(key), base.get(key)
            ratio = f"{bb / a:.0f}x" if (a and bb and "RMSE" not in key and "MB" not in key) else ""
            note = " (1 evaluation x %d)" % evals if key.startswith("golden") and bb else ""
            lines.append(f"| {key} | {fmt(a, key)} | {fmt(bb, key)}{note} | {ratio} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
