"""Throughput of dataset evaluation: scenes per minute with 1 and 2 Dask workers, against serial.

    python bench/evaluate.py                    # 8 synthetic 96 x 128 scenes, 4 epochs
    python bench/evaluate.py --scenes 16 --size 240 320 --epochs 10

Each configuration evaluates the same scenes into a fresh folder
(``dfd_lite.evaluate``): ``serial`` in this process with Numba's threads,
``dask-N`` on a LocalCluster of N single-threaded worker processes. The
first scene of a process pays Numba's compilation (cached on disk after the
first run), so the figures include it, as a real run does. Also reported:
the median time of one scene in the workers and the peak resident memory
of a worker process (``resource.getrusage`` in the worker).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import dfd_lite as dl  # noqa: E402
from dfd_lite import evaluation as ev  # noqa: E402


def _peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=(96, 128))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    specs = ev.synthetic_scenes(args.scenes, shape=tuple(args.size))
    camera = dl.Camera.nyuv2()
    options = {"num_epochs": args.epochs, "backend": "cpu"}
    print(f"# {datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; {args.scenes} synthetic scenes "
          f"{args.size[0]} x {args.size[1]}, {args.epochs} epochs")
    print("| run | wall (s) | scenes / min | median scene (s) | peak memory / worker (MB) |")
    print("| --- | --- | --- | --- | --- |")
    reference = None
    for workers in [0] + list(args.workers):
        with tempfile.TemporaryDirectory() as out:
            if workers == 0:
                t0 = time.perf_counter()
                run = ev.evaluate(specs, camera, out=out, workers=0, solve_options=options,
                                  progress=False)
                wall = time.perf_counter() - t0
                memory = _peak_rss_mb()
                name = "serial (this process, Numba threads)"
            else:
                single = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
                with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  env=single, dashboard_address=None) as cluster, \
                        Client(cluster) as client:
                    t0 = time.perf_counter()
                    run = ev.evaluate(specs, camera, out=out, client=client,
                                      solve_options=options, progress=False)
                    wall = time.perf_counter() - t0
                    memory = max(client.run(_peak_rss_mb).values())
                name = f"dask, {workers} worker{'s' if workers > 1 else ''}"
            rmse = [r["rmse"] for r in run.rows]
            if reference is None:
                reference = rmse
            assert np.allclose(rmse, reference), "every configuration must score the same"
            median = float(np.median([r["seconds"] for r in run.rows]))
            print(f"| {name} | {wall:.1f} | {60 * len(specs) / wall:.1f} | {median:.2f} | "
                  f"{memory:.0f} |")


if __name__ == "__main__":
    main()
