"""The ``dfd-lite`` command: depth from a folder of photographs, stacks to test it on, datasets.

``dfd-lite solve STACK_DIR --out OUT_DIR`` reads a focal stack folder (see
:mod:`dfd_lite.io` for the format), aligns its slices, solves, and writes
the depth map, the all-in-focus image, a confidence map, a one-page report
and ``result.json``. ``dfd-lite render IMAGE DEPTH --camera camera.toml
--out STACK_DIR`` writes a stack in that format from an image and its depth,
so the two round-trip. ``dfd-lite evaluate DATASET --out RESULTS`` scores
the solver over a dataset (:func:`~dfd_lite.evaluation.evaluate`), on a local Dask
cluster or any other. ``python -m dfd_lite`` is the same command.

Bad input (a missing or malformed camera file, unreadable images, sizes
that differ, ...) ends with one line on stderr and exit code 2; nothing is
written to the output folder unless the whole run succeeds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

__all__ = ["main", "EXIT_OK", "EXIT_USAGE"]

EXIT_OK = 0
#: Exit status for bad input, as argparse uses for bad arguments.
EXIT_USAGE = 2

#: Longest image side ``solve`` works at unless told (``--max-size``).
DEFAULT_MAX_SIZE = 640

#: ``confidence.png`` is white where the depth uncertainty is 0 and black from
#: this fraction of the searched depth range up.
CONFIDENCE_SPAN = 0.05


#: A slice that alignment would move by less than this anywhere in the frame
#: (pixels) is not resampled: the interpolation's blur would cost more.
MIN_WARP_PX = 0.5


class InputError(ValueError):
    """Bad input found by the command itself (rather than by the library)."""


def _parser():
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="dfd-lite", description="Depth from defocus by direct optimization.")
    parser.add_argument("--version", action="version", version=f"dfd-lite {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    solve = sub.add_parser("solve", help="depth and an all-in-focus image from a stack folder",
                           description="Solve a focal stack folder (images + camera.toml).")
    solve.add_argument("stack_dir", metavar="STACK_DIR", help="folder of images, one per focus")
    solve.add_argument("--camera", metavar="FILE",
                       help="camera file (default: STACK_DIR/camera.toml)")
    solve.add_argument("--out", required=True, metavar="OUT_DIR", help="folder for the results")
    solve.add_argument("--backend", choices=("auto", "cpu", "cuda"), default="auto")
    solve.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE, metavar="PX",
                       help=f"downsample so the longer side is at most PX pixels "
                            f"(default {DEFAULT_MAX_SIZE}; 0 keeps the full size)")
    solve.add_argument("--align", action=argparse.BooleanOptionalAction, default=True,
                       help="undo focus breathing (per-slice scale and shift) before solving")
    solve.add_argument("--depth-range", nargs=2, type=float, metavar=("NEAR", "FAR"),
                       help="depths searched, metres (default: the camera file's "
                            "depth_range, else 0.1 10)")
    solve.add_argument("--epochs", type=int, default=None,
                       help="alternations (default 10, or 6 before the disc's scatter stage)")
    solve.add_argument("--psf", choices=("gaussian", "disc"),
                       help="PSF model (default: the camera file's)")
    solve.add_argument("--blur-scale", type=float, metavar="K",
                       help="PSF size per thin-lens radius (default: the camera file's)")
    solve.add_argument("--quiet", action="store_true", help="no progress bar or messages")

    render = sub.add_parser("render", help="a focal stack folder from an image and its depth",
                            description="Render a focal stack folder from an image and a "
                                        "depth map (metres in .npy, or millimetres in a "
                                        "16-bit PNG/TIFF).")
    render.add_argument("image", metavar="IMAGE")
    render.add_argument("depth", metavar="DEPTH")
    render.add_argument("--camera", required=True, metavar="FILE", help="camera file")
    render.add_argument("--out", required=True, metavar="STACK_DIR")
    render.add_argument("--physical", action="store_true",
                        help="the physical renderer (disc PSF, no truncation, light spread "
                             "by depth layers) instead of the solver's own model")
    render.add_argument("--noise", type=float, default=0.0, metavar="STD",
                        help="Gaussian noise, standard deviation in [0, 1] units")
    render.add_argument("--breathing", action="store_true",
                        help="with --physical: a thin lens's focus breathing")
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--bit-depth", type=int, choices=(8, 16), default=16)
    render.add_argument("--quiet", action="store_true", help="no messages")

    evaluate = sub.add_parser(
        "evaluate", help="depth errors over a whole dataset, serially or on Dask",
        description="Render every scene of a dataset, solve it and score it against the "
                    "truth; one row per scene (resumable), then a summary of means and medians.")
    evaluate.add_argument("dataset", metavar="DATASET",
                          help="synthetic:N (N generated scenes), middlebury, a folder of "
                               "NAME.png + NAME_depth.npy pairs, or NYUv2's labeled .mat")
    evaluate.add_argument("--out", required=True, metavar="RESULTS")
    evaluate.add_argument("--scheduler", metavar="ADDRESS",
                          help="a running Dask scheduler, e.g. tcp://host:8786")
    evaluate.add_argument("--workers", type=int, metavar="N",
                          help="LocalCluster processes (default: one per core; 0 runs in this "
                               "process without Dask)")
    evaluate.add_argument("--limit", type=int, metavar="N", help="only the first N scenes")
    evaluate.add_argument("--render", choices=("paper", "physical"), default="paper",
                          help="the solver's own model (default) or the physical renderer")
    evaluate.add_argument("--noise", type=float, default=0.0, metavar="STD")
    evaluate.add_argument("--epochs", type=int, default=None,
                          help="alternations (default: the solve's)")
    evaluate.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                          help="scene size for synthetic and middlebury")
    evaluate.add_argument("--camera", metavar="FILE",
                          help="camera file (default: the NYUv2 camera)")
    evaluate.add_argument("--retry-failed", action="store_true",
                          help="compute again the scenes an earlier run recorded as failed")
    evaluate.add_argument("--quiet", action="store_true")
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    run = {"solve": _solve, "render": _render, "evaluate": _evaluate}[args.command]
    try:
        return run(args)
    except (ValueError, TypeError, OSError) as exc:
        # one line, no traceback: the messages name the file or field
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"dfd-lite: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dfd-lite: interrupted; nothing written", file=sys.stderr)
        return 130


def _check_out(out):
    """The output folder, refused at once (before any work) if a file is in the way."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    return out


class _Staging:
    """Files written to a hidden sibling folder, moved into ``out`` only on success."""

    def __init__(self, out):
        self.out = _check_out(out)
        parent = self.out.resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=parent))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.out.mkdir(exist_ok=True)
            for item in sorted(self.dir.iterdir()):
                os.replace(item, self.out / item.name)
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def _say(args, text):
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)


def _solve(args):
    from . import io
    from ._validate import as_depth_range
    from .align import MIN_SIDE, align_stack
    from .solve import MODEL_ERROR_RATIO, noise_floor, solve, stack_noise_std

    timings = {}
    t0 = time.perf_counter()
    _check_out(args.out)
    if args.max_size < 0 or 0 < args.max_size < 16:
        raise InputError(f"--max-size must be 0 (full size) or at least 16 pixels, "
                         f"got {args.max_size}")
    if args.epochs is not None and args.epochs < 1:
        raise InputError(f"--epochs must be >= 1, got {args.epochs}")
    stack, camera, file_range = io.load_stack_folder(args.stack_dir, args.camera)
    full_shape = stack.shape[1:3]
    if args.max_size:
        stack, camera = io.resize_stack(stack, camera, max_size=args.max_size)
    if args.psf is not None or args.blur_scale is not None:
        camera = camera.with_psf(args.psf, blur_scale=args.blur_scale)
    depth_range = tuple(args.depth_range) if args.depth_range else (file_range or (0.1, 10.0))
    depth_range = as_depth_range(depth_range, camera)
    timings["load"] = time.perf_counter() - t0
    _say(args, f"dfd-lite: {camera.num_planes} slices of {stack.shape[2]} x {stack.shape[1]} "
               f"(from {full_shape[1]} x {full_shape[0]}), {camera.psf} PSF, depths "
               f"{depth_range[0]:g}-{depth_range[1]:g} m")

    # the noise is measured before alignment: resampling smooths it (the
    # estimate of an aligned 8-bit stack with 0.5 % noise fell by a third)
    noise_std = stack_noise_std(stack)
    alignment = None
    caught = []
    if args.align and min(stack.shape[1:3]) < MIN_SIDE:
        _say(args, f"dfd-lite: images under {MIN_SIDE} px cannot be registered; not aligned")
    elif args.align:
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught_here:
            warnings.simplefilter("always")
            alignment = align_stack(stack)
        caught += caught_here
        moved = alignment.largest_move()
        # resampling blurs a little, which the solver reads as defocus: a slice
        # the estimate moves by less than this is left as it was
        warped = moved >= MIN_WARP_PX
        stack = np.where(warped.reshape((-1,) + (1,) * (stack.ndim - 1)), alignment.stack,
                         stack).astype(np.float32)
        timings["align"] = time.perf_counter() - t0
        _say(args, "dfd-lite: alignment; magnification per slice " +
                   ", ".join(f"{s:.4f}" for s in alignment.scale) +
                   f"; {int(warped.sum())} of {warped.size} slices moved by "
                   f"{MIN_WARP_PX} px or more and resampled")

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught_here:
        warnings.simplefilter("always")
        result = solve(stack, camera, depth_range=depth_range, num_epochs=args.epochs,
                       boundary="extend", noise_std=noise_std, progress=not args.quiet,
                       backend=args.backend)
    caught += caught_here
    timings["solve"] = time.perf_counter() - t0
    notes = [" ".join(str(w.message).split()) for w in caught]
    # the solve's model check: a residual this far above the noise is model error
    floor = noise_floor(result.noise_std)
    if result.residual_rms > MODEL_ERROR_RATIO * floor:
        notes.append(f"the model explains the stack to {100 * result.residual_rms:.2f} % RMS, "
                     f"{result.residual_rms / floor:.1f} times its noise "
                     f"({100 * floor:.2f} %): check the focus distances, the PSF "
                     f"(psf, blur_scale) and the alignment"
                     + ("; the solve started again with priors against it (window "
                        f"{result.window}, tv_weight {result.tv_weight:.3g})"
                        if result.restarted else ""))
    for note in notes:
        _say(args, f"dfd-lite: warning: {note}")

    t0 = time.perf_counter()
    with _Staging(args.out) as staging:
        _write_solve_outputs(staging.dir, stack, camera, result, depth_range)
        timings["write"] = time.perf_counter() - t0
        report = {
            "command": "solve",
            "stack_dir": str(Path(args.stack_dir).resolve()),
            "image_size": {"height": int(stack.shape[1]), "width": int(stack.shape[2]),
                           "original_height": int(full_shape[0]),
                           "original_width": int(full_shape[1])},
            "camera": _camera_dict(camera),
            "settings": {"depth_range": list(depth_range), "num_epochs": result.num_epochs,
                         "backend": args.backend, "max_size": args.max_size,
                         "align": args.align, "boundary": result.boundary,
                         "kernel_size": result.kernel_size, "window": result.window,
                         "tv_weight": result.tv_weight},
            "noise_std": result.noise_std,
            "residual_rms": result.residual_rms,
            "spread": result.spread,
            "alignment": None if alignment is None else {
                "reference": int(alignment.reference),
                "largest_move_px": [float(v) for v in moved],
                "resampled": [bool(v) for v in warped],
                "scale": [float(s) for s in alignment.scale],
                "shift": [[float(v) for v in row] for row in alignment.shift],
                "residual_px": [float(r) for r in alignment.residual]},
            "depth": {"min": float(result.depth.min()), "median": float(np.median(result.depth)),
                      "max": float(result.depth.max())},
            "confidence_png": f"white: depth_std 0; black: depth_std >= {CONFIDENCE_SPAN:g} x "
                              f"the depth range = "
                              f"{CONFIDENCE_SPAN * (depth_range[1] - depth_range[0]):.4g} m",
            "warnings": notes,
            "timings_s": timings,
            "history": [{"epoch": r.epoch, "step": r.step, "loss": r.loss,
                         "seconds": r.seconds, "num_iters": r.num_iters}
                        for r in result.history],
        }
        (staging.dir / "result.json").write_text(json.dumps(report, indent=2) + "\n",
                                                 encoding="utf-8")
    _say(args, f"dfd-lite: wrote {args.out}/ (depth.npy, depth.png, depth_color.png, aif.png, "
               f"confidence.png, report.png, result.json)")
    return EXIT_OK


def _camera_dict(camera):
    return {"focal_length": camera.focal_length, "f_number": camera.f_number,
            "pixel_size": camera.pixel_size, "focus_distances": list(camera.focus_distances),
            "min_radius": camera.min_radius, "psf": camera.psf,
            "blur_scale": camera.blur_scale}


def _write_solve_outputs(folder, stack, camera, result, depth_range):
    import matplotlib
    from matplotlib.figure import Figure

    from . import plotting
    from .io import write_png

    depth = result.depth.astype(np.float32)
    np.save(folder / "depth.npy", depth)
    np.save(folder / "depth_std.npy", result.depth_std.astype(np.float32))
    millimetres = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
    write_png(folder / "depth.png", millimetres)
    near, far = depth_range
    colors = matplotlib.colormaps["turbo"](np.clip((depth - near) / (far - near), 0, 1))
    write_png(folder / "depth_color.png", _to_uint8(colors[..., :3]))
    write_png(folder / "aif.png", _to_uint8(result.aif))
    span = CONFIDENCE_SPAN * (far - near)
    confidence = 1.0 - np.clip(result.depth_std / span, 0.0, 1.0)
    write_png(folder / "confidence.png", _to_uint8(confidence))

    gray = stack.ndim == 3
    picks = sorted({0, stack.shape[0] // 2, stack.shape[0] - 1})
    fig = Figure(figsize=(3.2 * 3, 2.9 * 2 * stack.shape[1] / stack.shape[2] + 1.0),
                 layout="constrained")
    axes = fig.subplots(2, 3)
    for a, i in zip(axes[0], picks):
        a.imshow(np.clip(stack[i], 0, 1), cmap="gray" if gray else None, vmin=0, vmax=1)
        a.set_title(f"slice {i}: focus {camera.focus_distances[i]:g} m", fontsize=9)
        a.axis("off")
    for a in axes[0][len(picks):]:
        a.axis("off")
    axes[1][0].imshow(np.clip(result.aif, 0, 1), cmap="gray" if gray else None, vmin=0, vmax=1)
    axes[1][0].set_title("all-in-focus", fontsize=10)
    axes[1][0].axis("off")
    plotting.show_depth(depth, ax=axes[1][1], vmin=near, vmax=far, title="depth")
    plotting.show_uncertainty(result.depth_std, ax=axes[1][2], title="uncertainty")
    fig.suptitle(f"dfd-lite: {camera.num_planes} slices, {camera.psf} PSF, "
                 f"noise {result.noise_std:.3g}", fontsize=10)
    fig.savefig(folder / "report.png", dpi=110)


def _to_uint8(img):
    return np.round(np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0) * 255).astype(np.uint8)


def _render(args):
    from . import io
    from .blur import render_stack
    from .render import render_physical

    _check_out(args.out)
    image = io.read_image(args.image, name=f"image {args.image}")
    depth = io.read_depth(args.depth)
    if depth.shape != image.shape[:2]:
        raise InputError(f"depth {args.depth} is {depth.shape[1]} x {depth.shape[0]} but image "
                         f"{args.image} is {image.shape[1]} x {image.shape[0]}; they must match")
    if not (np.isfinite(args.noise) and args.noise >= 0):
        raise InputError(f"--noise must be >= 0, got {args.noise}")
    if args.breathing and not args.physical:
        raise InputError("--breathing needs --physical (the solver's own model has none)")
    parsed = io.read_camera(args.camera)
    camera = parsed.camera
    if camera.num_planes < 2:
        raise InputError(f"camera file {args.camera}: a focal stack needs at least 2 focus "
                         f"distances, got {camera.num_planes}")
    if args.physical:
        stack = render_physical(image, depth, camera, read_noise=args.noise,
                                breathing="thin_lens" if args.breathing else None,
                                seed=args.seed)
    else:
        stack = render_stack(image, depth, camera, noise_std=args.noise, seed=args.seed)
        if args.noise > 0:
            stack = np.clip(stack, 0.0, 1.0)
    with _Staging(args.out) as staging:
        io.save_stack_folder(staging.dir, stack, camera, bit_depth=args.bit_depth,
                             depth_range=parsed.depth_range)
    _say(args, f"dfd-lite: wrote {camera.num_planes} slices and camera.toml to {args.out}/")
    return EXIT_OK


def _dataset(spec, size):
    """The scene specs a DATASET argument names."""
    from . import evaluation as ev

    if spec.startswith("synthetic:"):
        try:
            count = int(spec.split(":", 1)[1])
        except ValueError:
            raise InputError(f"DATASET {spec!r}: expected synthetic:N with N a number") \
                from None
        if count < 1:
            raise InputError(f"DATASET {spec!r}: N must be >= 1")
        return ev.synthetic_scenes(count, shape=size or (96, 128))
    if spec == "middlebury":
        return ev.middlebury_scenes(shape=size or (240, 320))
    path = Path(spec)
    if path.is_dir():
        return ev.folder_scenes(path)
    if path.is_file() and path.suffix.lower() == ".mat":
        return ev.nyuv2_scenes(path)
    raise InputError(f"DATASET {spec!r}: not synthetic:N, middlebury, a folder or a .mat file")


def _evaluate(args):
    from . import evaluation as ev
    from . import io
    from .optics import Camera

    if args.size is not None and min(args.size) < 8:
        raise InputError(f"--size must be at least 8 8, got {args.size}")
    if args.workers is not None and args.workers < 0:
        raise InputError(f"--workers must be >= 0, got {args.workers}")
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be >= 1, got {args.limit}")
    if args.epochs is not None and args.epochs < 1:
        raise InputError(f"--epochs must be >= 1, got {args.epochs}")
    camera = io.read_camera(args.camera).camera if args.camera else Camera.nyuv2()
    specs = _dataset(args.dataset, tuple(args.size) if args.size else None)
    _check_out(args.out)
    result = ev.evaluate(specs, camera, out=args.out, render=args.render, noise_std=args.noise,
                         solve_options={} if args.epochs is None else {"num_epochs": args.epochs},
                         workers=args.workers,
                         scheduler=args.scheduler, limit=args.limit,
                         retry_failed=args.retry_failed, progress=not args.quiet)
    print(f"{len(result.rows)} scenes: {len(result.computed)} computed, "
          f"{len(result.resumed)} from an earlier run, {len(result.failed)} failed")
    for name in result.failed:
        row = next(r for r in result.rows if r["name"] == name)
        print(f"  failed: {name}: {row['error']}")
    print(f"{'metric':10s} {'mean':>10s} {'median':>10s}")
    for s in result.summary:
        print(f"{s['metric']:10s} {s['mean']:10.4f} {s['median']:10.4f}")
    print(f"tables: {Path(args.out) / 'scenes.csv'}, {Path(args.out) / 'summary.csv'}")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
