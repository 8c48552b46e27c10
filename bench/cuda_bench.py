"""Benchmark: the CUDA kernels of dfd_lite next to the CPU (Numba) path.

Run from the repository root on a machine with an NVIDIA GPU::

    python3 bench/cuda_bench.py                # 240x320 (K=11) and 480x640 (K=23)
    python3 bench/cuda_bench.py --smoke        # tiny sizes; the simulator when no GPU

It times, for F = 5 slices of an RGB image with the NYUv2 camera: one
forward pass, one adjoint pass, one FISTA iteration (on the device), the
grid search over 100 candidates, the golden-section refinement, and the
whole solver (the schedule of ``bench/run.py``) on the Middlebury scene
with its depth RMSE; then the grid search and refinement again with the
disc PSF (on a stack rendered with the disc). Both paths run through the same engine interface
(:mod:`dfd_lite.engines`), each engine created once per size. Each
GPU region is timed between ``cuda.synchronize()`` calls, after a warm-up
(which also compiles the kernels), as the median of repeats; results stay
on the device while timed (as in a solve) and are copied to the host only
to compare the two paths. The CPU path
is measured in the same run, with fewer repeats.

The table is printed as markdown and, when ``$OUT`` is set, also written
to ``$OUT/cuda_bench.md``. A failed measurement prints an error row and the
script carries on.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes and few repeats; runs in the CUDA simulator when no GPU")
    p.add_argument("--sizes", default=None,
                   help="comma-separated HxW (default 240x320,480x640; smoke: 16x16)")
    p.add_argument("--repeats", type=int, default=None, help="GPU repeats (default 10; smoke 1)")
    p.add_argument("--cpu-repeats", type=int, default=None,
                   help="CPU repeats (default 3; smoke 1)")
    p.add_argument("--epochs", type=int, default=None, help="solver epochs (default 5; smoke 1)")
    p.add_argument("--num-depths", type=int, default=None,
                   help="grid-search candidates (default 100; smoke 4)")
    p.add_argument("--skip-cpu-solve", action="store_true",
                   help="do not run the (slow) CPU solver")
    return p.parse_args(argv)


def setup_environment(args):
    """Choose real GPU or simulator before numba is imported; make dfd_lite importable."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    has_gpu = shutil.which("nvidia-smi") is not None
    if args.smoke and not has_gpu:
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    return has_gpu


class Table:
    """Rows of the result table; printed as they come and rendered as markdown."""

    header = ("size", "step", "CPU", "CUDA", "speed-up", "notes")

    def __init__(self, preamble=(), path=None):
        self.rows = []
        self.preamble = list(preamble)
        self.path = path

    def add(self, size, step, cpu=None, gpu=None, notes=""):
        speed = f"{cpu / gpu:.1f}x" if cpu and gpu else ""
        row = (size, step, _fmt(cpu), _fmt(gpu), speed, notes)
        self.rows.append(row)
        print("  " + " | ".join(row), flush=True)
        self.save()  # after every row: a run cut short still leaves its table

    def text(self):
        return "\n".join(self.preamble + ["", self.markdown(), ""])

    def save(self):
        if self.path:
            with open(self.path, "w") as fh:
                fh.write(self.text())

    def markdown(self):
        lines = ["| " + " | ".join(self.header) + " |",
                 "| " + " | ".join("---" for _ in self.header) + " |"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)


def _fmt(seconds):
    if seconds is None:
        return ""
    if isinstance(seconds, str):
        return seconds
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def median_time(fn, repeats, sync=lambda: None, warmup=1):
    """Median wall time of ``fn()`` over ``repeats`` runs, synchronised, after warm-up."""
    for _ in range(warmup):
        fn()
        sync()
    times = []
    for _ in range(max(1, repeats)):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def guarded(table, size, step, fn):
    """Run one measurement; on failure record an error row instead of stopping."""
    try:
        fn()
    except Exception as exc:  # a crash must not waste the rest of the GPU run
        msg = f"{type(exc).__name__}: {exc}".replace("|", "/").replace("\n", " ")[:160]
        table.add(size, step, notes=f"ERROR {msg}")
        traceback.print_exc()


def bench_size(table, shape, k, cfg):
    import numpy as np
    from numba import cuda

    import dfd_lite as dl
    from dfd_lite import engines
    from dfd_lite.aif import power_iteration, run_fista
    from dfd_lite.depth import DepthSearch
    from dfd_lite.optics import thin_lens_coefficients

    size = f"{shape[0]}x{shape[1]} K={k}"
    cam = dl.Camera.nyuv2()
    reps = {"cpu": cfg["cpu_repeats"], "cuda": cfg["repeats"]}
    syncs = {"cpu": lambda: None, "cuda": cuda.synchronize}
    try:
        scene = dl.middlebury_scene(shape)
        scene_note = "Middlebury"
    except Exception as exc:  # keep benchmarking on a synthetic scene
        print(f"middlebury_scene failed ({exc}); using synthetic_scene", flush=True)
        scene = dl.synthetic_scene(shape, seed=0)
        scene_note = "synthetic scene (Middlebury failed)"
    aif = scene.aif.astype(np.float32)
    stack = dl.render_stack(aif, scene.depth, cam, kernel_size=k, backend="cpu")
    x = np.moveaxis(aif, -1, 0)
    b = np.moveaxis(stack, -1, 1)
    cands = dl.depth_candidates((0.1, 10.0), cfg["num_depths"])
    # One engine per backend for the whole size: buffers stay allocated
    # across calls, as they do in a solve.
    setups = {}
    for name in ("cpu", "cuda"):
        eng = engines.resolve(name)
        x_e, b_e = eng.asarray(x), eng.asarray(b)
        w_e = eng.weights(eng.asarray(scene.depth), eng.optics(thin_lens_coefficients(cam)), k)
        setups[name] = dict(eng=eng, x=x_e, b=b_e, w=w_e)

    def timed(name, fn):
        return median_time(fn, reps[name], syncs[name])

    def both(step, fn, notes=lambda out: ""):
        """Time ``fn(setup)`` on both engines; ``notes`` compares their results.

        ``fn`` returns engine arrays (or a tuple of them), which stay on the
        device while timed, as they do in a solve; they are copied to the
        host afterwards, for ``notes`` only.
        """
        t = {name: timed(name, lambda s=setups[name]: fn(s)) for name in ("cpu", "cuda")}
        out = {}
        for name in ("cpu", "cuda"):
            res = fn(setups[name])
            out[name] = (tuple(host(setups[name], a) for a in res) if isinstance(res, tuple)
                         else host(setups[name], res))
        table.add(size, step, t["cpu"], t["cuda"], notes(out))
        return t, out

    def host(setup, arr):
        return setup["eng"].to_host(arr)

    def blur_ops():
        both("forward A x", lambda s: s["eng"].forward(s["x"], s["w"]),
             lambda o: f"max abs diff {np.max(np.abs(o['cpu'] - o['cuda'])):.1e}")
        both("adjoint A^T y", lambda s: s["eng"].adjoint(s["b"], s["w"]),
             lambda o: f"max abs diff {np.max(np.abs(o['cpu'] - o['cuda'])):.1e}")

    def fista_iter():
        n = 2 if cfg["smoke"] else 10
        lip = power_iteration(setups["cpu"]["eng"], setups["cpu"]["w"], shape)
        per_iter = {}
        for name, s in setups.items():
            x0 = s["eng"].asarray(b.mean(axis=0))

            def run(iters, s=s, x0=x0):
                return run_fista(s["eng"], s["w"], s["b"], x0, num_iters=iters, lipschitz=lip,
                                 lo=0.0, hi=1.0)
            # (n iterations - 0 iterations) / n removes the start-up forward pass
            per_iter[name] = (timed(name, lambda: run(n)) - timed(name, lambda: run(0))) / n
        table.add(size, "one FISTA iteration", per_iter["cpu"], per_iter["cuda"],
                  "iterates stay on the device; one scalar read per iteration")

    def depth_search(psf):
        label = "" if psf == "gaussian" else f"{psf} PSF: "
        cam_psf = cam.with_psf(psf)
        b_psf = b if psf == "gaussian" else np.moveaxis(
            dl.render_stack(aif, scene.depth, cam_psf, kernel_size=k, backend="cpu"), -1, 1)
        searches = {name: DepthSearch(s["eng"], s["eng"].asarray(b_psf), cam_psf, k)
                    for name, s in setups.items()}
        t_grid, grid = both(f"{label}grid search, {cands.size} candidates",
                            lambda s: searches[s["eng"].name].grid(s["x"], cands, 1)[0],
                            lambda o: "same index at %.2f %% of pixels" % (
                                100 * np.mean(o["cpu"] == o["cuda"])))
        idx = {name: setups[name]["eng"].asarray(grid["cpu"], np.int32) for name in setups}

        def refine(s):
            name = s["eng"].name
            return tuple(searches[name].refine(s["x"], cands, idx[name], 1e-2))
        t_gold, gold = both(f"{label}golden-section refinement (tol 1 cm)", refine,
                            lambda o: "median abs dZ %.1e m, loss sum rel. diff %.1e" % (
                                np.median(np.abs(o["cpu"][0] - o["cuda"][0])),
                                abs(o["cuda"][1].sum() / o["cpu"][1].sum() - 1)))
        total = {name: t_grid[name] + t_gold[name] for name in t_grid}
        table.add(size, f"{label}depth search (grid + golden)", total["cpu"], total["cuda"],
                  "the issue's target: >= 20x the same machine's CPU" if psf == "gaussian"
                  else "")

    def solve():
        if cfg["smoke"]:
            kw = dict(num_epochs=cfg["epochs"], num_depths=cfg["num_depths"], progress=False,
                      kernel_size=k, aif_num_iters=1)
        else:  # the schedule of bench/run.py, so the CPU tables compare
            from bench.run import solve_settings
            kw = dict(solve_settings(*shape), kernel_size=k)
        results = {}
        for name in ("cuda", "cpu"):
            if name == "cpu" and cfg["skip_cpu_solve"]:
                continue
            t0 = time.perf_counter()
            res = dl.solve(stack, cam, backend=setups[name]["eng"], **kw)
            syncs[name]()
            results[name] = (time.perf_counter() - t0,
                             dl.depth_metrics(res.depth, scene.depth, mask=scene.valid)["rmse"])
        t_cpu, rmse_cpu = results.get("cpu", (None, float("nan")))
        t_gpu, rmse_gpu = results["cuda"]
        table.add(size, f"solve, {kw['num_epochs']} epochs x {kw.get('aif_num_iters')} "
                        f"FISTA iterations (end to end)", t_cpu, t_gpu,
                  f"{scene_note}; depth RMSE CPU {rmse_cpu:.3f} m, CUDA {rmse_gpu:.3f} m")

    for step, fn in (("forward/adjoint", blur_ops), ("FISTA", fista_iter),
                     ("depth search", lambda: depth_search("gaussian")),
                     ("disc depth search", lambda: depth_search("disc")), ("solve", solve)):
        guarded(table, size, step, fn)


def warm_up(cfg):
    """Compile every CUDA and CPU kernel on a tiny problem (not timed)."""
    import dfd_lite as dl

    t0 = time.perf_counter()
    cam = dl.Camera.nyuv2()
    side = 8 if cfg["smoke"] else 16
    scene = dl.synthetic_scene((side, side), seed=0)
    stack = dl.render_stack(scene.aif, scene.depth, cam, kernel_size=5, backend="cpu")
    for backend in ("cuda", "cpu"):
        dl.solve(stack, cam, kernel_size=5, num_depths=3, num_epochs=1 if cfg["smoke"] else 2,
                 aif_num_iters=1, window=1, progress=False, backend=backend)
        dl.grid_search(scene.aif, stack, cam, [1.0, 2.0, 3.0], kernel_size=5, window=3,
                       backend=backend)
        op = dl.BlurOperator(scene.depth, cam, kernel_size=5, backend=backend)
        op.adjoint(op.forward(scene.aif))
    return time.perf_counter() - t0


def environment_lines(has_gpu):
    import numba
    import numpy as np
    from numba import cuda

    lines = [f"python {platform.python_version()}, numpy {np.__version__}, "
             f"numba {numba.__version__}, numba.cuda implementation: "
             f"{getattr(cuda, 'implementation', 'unknown')}",
             f"CPU: {os.cpu_count()} logical cores, numba threads {numba.get_num_threads()}"]
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        lines.append("GPU: none - CUDA SIMULATOR (timings say nothing about GPU speed)")
    else:
        try:
            dev = cuda.get_current_device()
            name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
            lines.append(f"GPU: {name}, compute capability {dev.compute_capability}")
        except Exception as exc:
            lines.append(f"GPU: unknown ({exc})")
    return lines


def main(argv=None):
    args = parse_args(argv)
    has_gpu = setup_environment(args)
    if not args.smoke and not has_gpu:
        print("No NVIDIA GPU found (nvidia-smi missing). Run with --smoke to check the "
              "script in the CUDA simulator.", file=sys.stderr)
        return 2
    smoke = args.smoke
    if args.sizes:
        sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    else:
        sizes = [(16, 16)] if smoke else [(240, 320), (480, 640)]
    cfg = dict(
        smoke=smoke,
        repeats=args.repeats or (1 if smoke else 10),
        cpu_repeats=args.cpu_repeats or (1 if smoke else 3),
        epochs=args.epochs or (1 if smoke else 5),
        num_depths=args.num_depths or (4 if smoke else 100),
        skip_cpu_solve=args.skip_cpu_solve,
    )

    import dfd_lite as dl  # noqa: F401  (after the environment is set)

    try:
        env = environment_lines(has_gpu)
    except Exception as exc:
        traceback.print_exc()
        env = [f"environment: ERROR {type(exc).__name__}: {exc}"]
    for line in env:
        print(line, flush=True)
    out = os.environ.get("OUT")
    if out:
        os.makedirs(out, exist_ok=True)
    preamble = [
        "# dfd_lite: CUDA kernels vs CPU (Numba)", "",
        *[f"- {line}" for line in env],
        f"- F = 5 slices, RGB, NYUv2 camera; GPU: median of {cfg['repeats']} after warm-up, "
        f"CPU: median of {cfg['cpu_repeats']}; solve: one run each"]
    table = Table(preamble, os.path.join(out, "cuda_bench.md") if out else None)
    try:
        print(f"warm-up (compiles the kernels): {warm_up(cfg):.1f} s", flush=True)
    except Exception:
        traceback.print_exc()
        table.add("-", "warm-up", notes="ERROR during warm-up (see log)")
    for shape in sizes:
        k = 5 if smoke else dl.default_kernel_size(*shape)
        print(f"== {shape[0]}x{shape[1]}, K={k}", flush=True)
        guarded(table, f"{shape[0]}x{shape[1]}", "setup", lambda: bench_size(table, shape, k, cfg))

    print()
    print(table.text())
    table.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
