"""Does the capstone's target separate right from wrong code? Its solver with broken pieces.

    python bench/capstone.py                    # every variant, noise seeds 0-3
    python bench/capstone.py --variants correct coc_diameter --seeds 0 1

Runs the capstone notebook's own solver (the teacher's ``dfd_mine`` with the
notebook's ``depth_step_mine`` and the student functions, taken from
``book/capstone.ipynb``) with one piece swapped for a typical wrong answer,
on the capstone's scene with freshly seeded noise
(``dfd_lite.teaching.checks.capstone_problem``), and reports the depth RMSE
against ``CAPSTONE["target_rmse"]``. The table says which mistakes the
RMSE target catches on its own and which only the parts' own checks catch.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nbformat  # noqa: E402
import numpy as np  # noqa: E402

import dfd_lite as dl  # noqa: E402
from dfd_lite.teaching.checks import CAPSTONE, capstone_problem  # noqa: E402
from dfd_lite.teaching.grade import notebook_definitions  # noqa: E402

NOTEBOOK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "book",
                        "capstone.ipynb")


def notebook_functions(path=NOTEBOOK):
    """The notebook's imports and top-level functions, run in a fresh namespace.

    Only ``import`` statements and ``def`` blocks are run, so no cell's
    computation or plotting happens.
    """
    namespace = {}
    exec("\n".join(notebook_definitions(nbformat.read(path, as_version=4))),  # noqa: S102
         namespace)
    return namespace


def variants(ns):
    """Typical wrong answers, each a {name: function} to put in the notebook's namespace."""
    right = {name: ns[name] for name in ("coc_radius_mine", "fista_step", "grid_argmin_mine",
                                         "golden_section_mine")}

    def no_momentum(op, stack, x, y, t, step, bounds=(0.0, 1.0)):
        x_new, _, t_new = right["fista_step"](op, stack, x, y, t, step, bounds)
        return x_new, x_new, t_new

    def no_clip(op, stack, x, y, t, step, bounds=(0.0, 1.0)):
        return right["fista_step"](op, stack, x, y, t, step, (-np.inf, np.inf))

    def argmax(volume, candidates):
        return np.asarray(candidates)[np.argmax(volume, axis=0)]

    def off_by_one(volume, candidates):
        index = np.minimum(np.argmin(volume, axis=0) + 1, len(candidates) - 1)
        return np.asarray(candidates)[index]

    def midpoint(f, lo, hi, tol):
        return (lo + hi) / 2

    def two_steps(f, lo, hi, tol):  # stops after two steps, whatever tol says
        return right["golden_section_mine"](f, lo, hi, (hi - lo) * 0.382 ** 2 * 1.001)

    def unclamped(depth, camera):
        return dl.coc_radius(depth, camera, clamp=False)

    def diameter(depth, camera):
        return np.maximum(2 * dl.coc_radius(depth, camera, clamp=False), camera.min_radius)

    return {
        "correct": {},
        "FISTA without momentum": {"fista_step": no_momentum},
        "FISTA without the clip": {"fista_step": no_clip},
        "grid argmax": {"grid_argmin_mine": argmax},
        "grid argmin off by one": {"grid_argmin_mine": off_by_one},
        "golden section: midpoint": {"golden_section_mine": midpoint},
        "golden section: two steps": {"golden_section_mine": two_steps},
        "radius not clamped": {"coc_radius_mine": unclamped},
        "CoC diameter as radius": {"coc_radius_mine": diameter},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--variants", nargs="+", default=None,
                        help="names as in the table (default: all)")
    parser.add_argument("--out", default=None, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    ns = notebook_functions()
    table = variants(ns)
    names = args.variants or list(table)
    unknown = sorted(set(names) - set(table))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {list(table)}")
    originals = {name: ns[name] for swap in table.values() for name in swap}
    lines = ["# Capstone target: the notebook's solver with broken pieces",
             "",
             f"{datetime.date.today()}, {platform.processor() or platform.machine()}, "
             f"`python bench/capstone.py`; target RMSE {CAPSTONE['target_rmse']} m, "
             f"{CAPSTONE['num_depths']} candidates, K = {CAPSTONE['kernel_size']}, "
             f"noise {CAPSTONE['noise_std']}",
             "",
             "| variant | " + " | ".join(f"seed {s}" for s in args.seeds)
             + " | worst | caught by the target | s per run |",
             "| --- | " + " | ".join("---" for _ in args.seeds) + " | --- | --- | --- |"]
    problems = {seed: capstone_problem(seed) for seed in args.seeds}
    for name in names:
        ns.update(originals)
        ns.update(table[name])
        rmses, seconds = [], []
        for seed in args.seeds:
            scene, cam, stack, candidates = problems[seed]
            start = time.perf_counter()
            depth, _ = ns["dfd_mine"](stack, cam, candidates, CAPSTONE["kernel_size"])
            seconds.append(time.perf_counter() - start)
            rmses.append(dl.depth_metrics(depth, scene.depth)["rmse"])
        worst = max(rmses) if name == "correct" else min(rmses)
        caught = "-" if name == "correct" else \
            ("yes" if worst >= CAPSTONE["target_rmse"] else "no")
        lines.append(f"| {name} | " + " | ".join(f"{r:.3f}" for r in rmses)
                     + f" | {worst:.3f} | {caught} | {sum(seconds) / len(seconds):.1f} |")
        print(lines[-1], flush=True)
    lines += ["", "worst: the largest RMSE for correct code, the smallest for a wrong one."]
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    print("\n".join(lines[:3]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
