"""Probe: the GPU depth search alone, and where its time goes.

Run from the repository root on a machine with an NVIDIA GPU::

    python3 bench/cuda_depth_probe.py                       # timings
    python3 bench/cuda_depth_probe.py --save /tmp/new       # ... and keep the results
    python3 bench/cuda_depth_probe.py --compare /tmp/old    # ... against a saved run
    python3 bench/cuda_depth_probe.py --breakdown           # each piece timed alone
    python3 bench/cuda_depth_probe.py --smoke               # tiny, in the simulator

``bench/cuda_bench.py`` sets the GPU against the CPU; this script looks at
the GPU side only, for kernel work: the grid search and the golden-section
refinement of ``dfd_lite.depth.DepthSearch`` (Gaussian and disc PSF, each
on a stack rendered with its own PSF), medians of repeats between
``cuda.synchronize()`` calls after a warm-up. To check that a change to the
kernels leaves the answer alone, run it once with the old ``dfd_lite`` first
on ``PYTHONPATH`` and ``--save``, then with the new one and ``--compare``:
it reports the share of pixels with the same grid index and the largest
change of the refined depth. ``--breakdown`` times the steps inside the two
calls one by one (blur bank and losses, running minimum, state, kernel).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="16 x 16, 4 candidates, in the simulator")
    p.add_argument("--save", metavar="DIR", help="write each search's results to DIR")
    p.add_argument("--compare", metavar="DIR", help="compare with the results saved in DIR")
    p.add_argument("--breakdown", action="store_true", help="time the steps one by one")
    p.add_argument("--repeats", type=int, default=None, help="default 10 (smoke 1)")
    return p.parse_args(argv)


def median_ms(fn, repeats, sync):
    fn()
    sync()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def probe_size(shape, args, repeats):
    import numpy as np
    from numba import cuda

    import dfd_lite as dl
    from dfd_lite import engines
    from dfd_lite.depth import DepthSearch, psf_radius
    from dfd_lite.engines import _scalar

    def timed(fn):
        return median_ms(fn, repeats, cuda.synchronize)

    k = 5 if args.smoke else dl.default_kernel_size(*shape)
    cam = dl.Camera.nyuv2()
    scene = dl.middlebury_scene(shape)
    aif = scene.aif.astype(np.float32)
    cands = dl.depth_candidates((0.1, 10.0), 4 if args.smoke else 100)
    eng = engines.resolve("cuda")
    x = eng.asarray(np.moveaxis(aif, -1, 0))
    for psf in ("gaussian", "disc"):
        cam_psf = cam.with_psf(psf)
        stack = dl.render_stack(aif, scene.depth, cam_psf, kernel_size=k, backend="cpu")
        b = eng.asarray(np.moveaxis(stack, -1, 1))
        search = DepthSearch(eng, b, cam_psf, k)
        index = search.grid(x, cands, 1)[0]
        t_grid = timed(lambda: search.grid(x, cands, 1))
        t_refine = timed(lambda: search.refine(x, cands, index, 1e-2))
        depth, loss = (eng.to_host(a) for a in search.refine(x, cands, index, 1e-2))
        name = f"{shape[0]}x{shape[1]}_{psf}"
        print(f"{name} (K={k}): grid {t_grid:.3f} ms, refinement {t_refine:.3f} ms, "
              f"total {t_grid + t_refine:.3f} ms", flush=True)
        result = np.stack([eng.to_host(index).astype(np.float32), depth, loss])
        if args.save:
            os.makedirs(args.save, exist_ok=True)
            np.save(os.path.join(args.save, name + ".npy"), result)
        if args.compare:
            old = np.load(os.path.join(args.compare, name + ".npy"))
            print(f"  against {args.compare}: same grid index at "
                  f"{100 * np.mean(old[0] == result[0]):.2f} % of pixels, refined depth "
                  f"max |dZ| {np.max(np.abs(old[1] - result[1])):.2e} m, loss sum rel. diff "
                  f"{abs(result[2].sum() / old[2].sum() - 1):.1e}", flush=True)
        if not args.breakdown or psf != "gaussian":
            continue
        radii = psf_radius(cands, cam).T.astype(np.float32)
        volume = eng.scratch("grid_volume", (len(cands),) + shape)
        best, best_index = eng.empty(shape), eng.empty(shape, np.int32)
        state = eng.empty((_scalar.STATE_ROWS,) + shape)
        cands_e = eng.asarray(cands)
        steps = {
            "blur bank and losses": lambda: eng.constant_depth_losses(x, b, radii, k, volume),
            "running minimum (fold_min)": lambda: eng.fold_min(volume, 0, best, best_index),
            "refinement state (empty)": lambda: eng.empty((_scalar.STATE_ROWS,) + shape),
            "golden_init": lambda: eng.golden_init(state, cands_e, index),
            "golden_search (the kernel)": lambda: eng.golden_search(
                x, b, state, search.optics, k, _scalar.golden_steps(cands, 1e-2) + 3),
        }
        for step, fn in steps.items():
            print(f"  {step}: {timed(fn):.3f} ms", flush=True)


def main(argv=None):
    args = parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.append(root)   # after PYTHONPATH: an old dfd_lite put there wins
    import shutil
    if args.smoke and shutil.which("nvidia-smi") is None:
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    elif shutil.which("nvidia-smi") is None:
        print("No NVIDIA GPU found (nvidia-smi missing); --smoke runs in the simulator.",
              file=sys.stderr)
        return 2
    import dfd_lite as dl
    print(f"dfd_lite from {os.path.dirname(dl.__file__)}", flush=True)
    repeats = args.repeats or (1 if args.smoke else 10)
    for shape in ((16, 16),) if args.smoke else ((240, 320), (480, 640)):
        probe_size(shape, args, repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
