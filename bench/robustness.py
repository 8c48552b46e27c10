"""How far the solver is from real optics: accuracy off the "inverse crime".

    python bench/robustness.py                    # every row, 240 x 320
    python bench/robustness.py --rows own phys-disc --out bench/results/x.md

Every row renders the Middlebury scene (NYUv2 camera) one way and solves it
one way; only the settings named in the row differ from ``dl.solve``'s
defaults. "own" renders with the solver's own operator; "phys" rows use
``dl.render_physical`` (untruncated supersampled PSFs, scatter or gather,
the scene mirrored beyond the frame, optional sensor noise). Reports depth
RMSE, AbsRel and delta1 on the valid pixels, AIF PSNR, the PSF window the
solve used, whether its model check started it again with priors (and the
window and TV weight it ended with), and its wall time.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dfd_lite as dl  # noqa: E402

NYU = dl.Camera.nyuv2()
DISC = NYU.with_psf("disc")
HALF = NYU.with_psf(blur_scale=0.5)

# name: (what the stack is, how it is rendered, camera of the solve, solve options)
ROWS = {
    "own": ("paper's model (inverse crime)", dict(kind="own", camera=NYU), NYU, {}),
    "own-extend": ("paper's model (inverse crime)", dict(kind="own", camera=NYU), NYU,
                   {"boundary": "extend"}),
    "phys-disc": ("physical disc, scatter", dict(kind="phys"), DISC, {}),
    "phys-disc-gather": ("physical disc, scatter", dict(kind="phys"), DISC,
                         {"spread": "gather"}),
    "phys-disc-zero": ("physical disc, scatter", dict(kind="phys"), DISC, {"boundary": "zero"}),
    "phys-disc-nocheck": ("physical disc, scatter", dict(kind="phys"), DISC,
                          {"model_check": False}),
    "gather-disc": ("physical disc, gather", dict(kind="phys", spread="gather"), DISC, {}),
    "gather-disc-nocheck": ("physical disc, gather", dict(kind="phys", spread="gather"), DISC,
                            {"model_check": False}),
    "noisy-disc": ("physical disc, scatter, 1 % noise, 8-bit",
                   dict(kind="phys", read_noise=0.01, bit_depth=8), DISC, {}),
    "noisy-disc-gather": ("physical disc, scatter, 1 % noise, 8-bit",
                          dict(kind="phys", read_noise=0.01, bit_depth=8), DISC,
                          {"spread": "gather"}),
    "phys-disc-prior": ("physical disc, scatter", dict(kind="phys"), DISC,
                        {"window": 5, "tv_weight": 1.1e-4}),
    "own-prior": ("paper's model (inverse crime)", dict(kind="own", camera=NYU), NYU,
                  {"window": 5, "tv_weight": 1.1e-4}),
    "disc-by-paper": ("physical disc, scatter", dict(kind="phys"), NYU, {"boundary": "extend"}),
    "disc-by-half-gauss": ("physical disc, scatter", dict(kind="phys"), HALF,
                           {"boundary": "extend", "kernel_size": 23}),
    "gauss-by-disc": ("physical Gaussian (sigma = r/2), scatter",
                      dict(kind="phys", psf="gaussian", camera=HALF), DISC, {}),
}


def render(scene, kind, camera=DISC, **kwargs):
    if kind == "own":
        return dl.focal_stack(scene, camera)
    return dl.render_physical(scene.aif, scene.depth, camera, **kwargs)


def run_row(name, scene):
    what, how, cam, options = ROWS[name]
    stack = render(scene, **how)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = dl.solve(stack, cam, progress=False, **options)
    seconds = time.perf_counter() - t0
    m = dl.depth_metrics(res.depth, scene.depth, mask=scene.valid)
    model = f"{cam.psf}, blur_scale={cam.blur_scale:g}"
    opts = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "defaults"
    restarted = "yes" if res.restarted else "no"
    return (f"| {name} | {what} | {model} | {opts} | {res.kernel_size} | {restarted} | "
            f"{res.window} / {res.tv_weight:.2g} | {m['rmse']:.3f} | "
            f"{m['absrel']:.3f} | {m['delta1']:.3f} | {dl.psnr(res.aif, scene.aif):.1f} | "
            f"{seconds:.0f} s |", [str(w.message) for w in caught])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--size", default="240x320")
    parser.add_argument("--out", default=None, help="also write the table here")
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    scene = dl.middlebury_scene((h, w))
    lines = [f"Robustness, {datetime.date.today()}, Middlebury {h} x {w}, NYUv2 camera, "
             f"{platform.machine()}, {os.cpu_count()} cores, `python bench/robustness.py`",
             "",
             "| row | stack | solver's PSF | solve options | K | restarted | window / TV | "
             "depth RMSE (m) | AbsRel | delta1 | AIF PSNR (dB) | time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    print("\n".join(lines), flush=True)
    notes = []
    for name in args.rows:
        line, caught = run_row(name, scene)
        lines.append(line)
        notes += [f"- {name}: {msg}" for msg in caught]
        print(line, flush=True)
    if notes:
        lines += ["", "Warnings:", *notes]
        print("\n".join(notes))
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
