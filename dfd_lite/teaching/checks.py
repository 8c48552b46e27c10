"""Automatic feedback for the book's coding exercises.

Each ``check_*`` function runs a student's function on a few small cases,
compares the answers with :mod:`dfd_lite`, and prints one friendly
message: the first case that failed (expected against got: shape, dtype,
largest error and where) or that every case passed. The checks never
raise: an exception in the student's code, including the
``NotImplementedError`` of an unfinished exercise, is reported as a message.
Each returns ``True`` when every case passed, else ``False``.

Example
-------
>>> from dfd_lite.teaching.checks import check_coc_radius
>>> import dfd_lite as dl
>>> check_coc_radius(lambda depth, camera: dl.coc_radius(depth, camera))
check_coc_radius: all 4 cases passed.
True
"""

from __future__ import annotations

import math

import numpy as np

from ..blur import BlurOperator, gaussian_weights
from ..metrics import depth_metrics
from ..optics import Camera, coc_radius

__all__ = [
    "check_coc_radius",
    "check_gaussian_weights",
    "check_adjoint",
    "check_fista_step",
    "check_power_iteration",
    "check_golden_section",
    "check_grid_argmin",
    "check_depth_metrics",
]


class _Fail(Exception):
    """A case's answer is wrong; the message says how (raised by the comparisons below)."""


# ---------------------------------------------------------------------------
# The shared "run each case, compare, report" machinery
# ---------------------------------------------------------------------------

def _run(title, fn, cases):
    """Run ``case(fn)`` for each ``(label, case)``; print one message; return True/False.

    A case returns nothing when the answer is right and raises :class:`_Fail`
    when it is wrong. Exceptions from the student's function are reported,
    never propagated.
    """
    if not callable(fn):
        print(f"{title}: expected a function, got {type(fn).__name__}. "
              f"Pass the function itself (no parentheses after its name).")
        return False
    for number, (label, case) in enumerate(cases, 1):
        where = f"case {number} of {len(cases)} ({label})"
        try:
            case(fn)
        except NotImplementedError:
            print(f"{title}: not implemented yet: replace the `raise NotImplementedError` "
                  f"line with your code.")
            return False
        except _Fail as fail:
            print(f"{title}: {where} failed:\n  {fail}")
            return False
        except Exception as exc:  # the student's code crashed: report it, don't raise
            print(f"{title}: {where} raised {type(exc).__name__}: {exc}")
            return False
    print(f"{title}: all {len(cases)} cases passed.")
    return True


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, (float, np.floating)) else repr(v)


def _array(name, got, expected, rtol=1e-5, atol=1e-6):
    """Compare an array answer with the expected one; raise _Fail saying what differs."""
    if got is None:
        raise _Fail(f"{name} is None: did you forget to `return` it?")
    try:
        arr = np.asarray(got)
    except Exception:
        raise _Fail(f"{name} is not an array (got {type(got).__name__})") from None
    expected = np.asarray(expected)
    if arr.shape != expected.shape:
        raise _Fail(f"{name} has shape {arr.shape}, expected {expected.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise _Fail(f"{name} has dtype {arr.dtype}, expected numbers")
    a, e = arr.astype(np.float64), expected.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise _Fail(f"{name} contains NaN or inf (e.g. a division by zero)")
    err = np.abs(a - e)
    bad = err > atol + rtol * np.abs(e)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err, -1.0)), err.shape) if err.ndim else ()
        at = f" at index {tuple(int(v) for v in i)}" if err.ndim else ""
        raise _Fail(f"{name}: largest error {err[i]:.3g}{at}: expected {_fmt(e[i])}, "
                    f"got {_fmt(a[i])} ({int(bad.sum())} of {bad.size} values wrong)")


def _float32(name, got):
    """Hot arrays must stay float32 (half the memory and time of float64)."""
    dtype = getattr(got, "dtype", None)
    if dtype != np.float32:
        raise _Fail(f"{name} has dtype {dtype}, expected float32\n  hint: a NumPy float64 "
                    f"scalar (e.g. from np.sqrt) turns float32 arrays into float64 under "
                    f"NumPy 2; wrap such scalars in float() or np.float32()")


def _scalar(name, got, expected, rtol=1e-6, atol=1e-9):
    """Compare a number; raise _Fail naming it."""
    try:
        value = float(np.asarray(got).item())
    except Exception:
        raise _Fail(f"{name} should be a single number, got {type(got).__name__} "
                    f"{np.shape(got) if hasattr(got, 'shape') else got!r}") from None
    if not math.isfinite(value) or abs(value - expected) > atol + rtol * abs(expected):
        raise _Fail(f"{name}: expected {_fmt(expected)}, got {_fmt(value)}")
    return value


def _hint(fail, message):
    """Append a hint to a failure message."""
    return _Fail(f"{fail}\n  hint: {message}")


def _exact_lipschitz(op):
    """``||A||^2`` exactly, from the dense ``A^T A`` of a tiny operator.

    Exact and cheaper than many power iterations on these few-pixel images.
    """
    a = op.to_sparse().astype(np.float64)
    return float(np.linalg.eigvalsh((a.T @ a).toarray())[-1])


def _small_scene(shape, seed, channels=3, depth_range=(0.8, 7.0)):
    """A random depth map, image and stack of the given shape (small and fast)."""
    rng = np.random.default_rng(seed)
    depth = rng.uniform(*depth_range, size=shape).astype(np.float32)
    aif = rng.random(shape + (channels,)).astype(np.float32)
    return rng, depth, aif


# ---------------------------------------------------------------------------
# The checks, one per coding exercise
# ---------------------------------------------------------------------------

def check_coc_radius(fn):
    """Check ``fn(depth, camera) -> (F,) + depth.shape`` clamped blur radii in pixels.

    Must equal :func:`dfd_lite.coc_radius` (with ``clamp=True``).
    """
    nyu = Camera.nyuv2()

    def case(depth, cam):
        def run(f):
            got = f(np.array(depth, copy=True), cam)
            want = coc_radius(depth, cam)
            try:
                _array("radius", got, want, rtol=1e-5, atol=1e-6)
            except _Fail as fail:
                g = np.asarray(got, dtype=np.float64) if np.shape(got) == want.shape else None
                raw = coc_radius(depth, cam, clamp=False)
                if g is not None and np.allclose(g, raw, rtol=1e-5):
                    raise _hint(fail, f"these are the unclamped radii: raise radii below "
                                      f"camera.min_radius ({cam.min_radius} px) to it") from None
                doubled = [2 * raw, np.maximum(2 * raw, cam.min_radius)]
                if g is not None and any(np.allclose(g, d, rtol=1e-5) for d in doubled):
                    raise _hint(fail, "twice the expected value: that is the CoC diameter; "
                                      "the radius is half of it") from None
                metres = [raw * cam.pixel_size, 2 * raw * cam.pixel_size]
                if g is not None and (any(np.allclose(g, m, rtol=1e-4) for m in metres)
                                      or np.allclose(g, cam.min_radius)):
                    raise _hint(fail, "looks like metres on the sensor: divide by the pixel "
                                      "size to get pixels") from None
                raise
        return run

    depth_map = np.random.default_rng(1).uniform(0.5, 8.0, size=(3, 4))
    return _run("check_coc_radius", fn, [
        ("a 3x4 depth map, NYUv2 camera", case(depth_map, nyu)),
        ("depths equal to the focus distances, so the radius is clamped to min_radius",
         case(np.array(nyu.focus_distances), nyu)),
        ("a camera with min_radius=0: no clamping, radius 0 in focus",
         case(np.array([[0.7, 1.0], [2.5, 9.0]]), Camera(0.035, 2.8, 1e-5, [1.0, 2.5, 9.0], 0.0))),
        ("Make3D camera (7 planes), a 5x7 depth map",
         case(np.random.default_rng(2).uniform(0.3, 70.0, size=(5, 7)), Camera.make3d())),
    ])


def check_gaussian_weights(fn):
    """Check ``fn(radius, kernel_size) -> (K,)`` normalised 1-D Gaussian weights.

    Must equal :func:`dfd_lite.gaussian_weights` for a scalar radius.
    """
    def case(radius, k):
        def run(f):
            got = f(radius, k)
            want = gaussian_weights(radius, k)
            try:
                _array("weights", got, want, rtol=1e-4, atol=1e-6)
            except _Fail as fail:
                g = np.asarray(got, dtype=np.float64) if np.shape(got) == want.shape else None
                if g is not None and np.all(np.isfinite(g)) and abs(g.sum() - 1) > 1e-4:
                    raise _hint(fail, f"your weights sum to {g.sum():.4g}; divide by their "
                                      f"sum so that they sum to 1") from None
                if g is not None and np.allclose(g, gaussian_weights(radius / 2, k), atol=1e-6):
                    raise _hint(fail, "the radius is the Gaussian's sigma: "
                                      "exp(-o**2 / (2 * sigma**2))") from None
                if g is not None and np.allclose(g, gaussian_weights(radius * 2, k), atol=1e-6):
                    raise _hint(fail, "the Gaussian is exp(-o**2 / (2 * sigma**2)), "
                                      "with sigma squared") from None
                raise
        return run

    return _run("check_gaussian_weights", fn, [
        ("radius 1.5 px, kernel_size 7", case(1.5, 7)),
        ("radius 2.0 px, kernel_size 11", case(2.0, 11)),
        ("a tiny radius (0.05 px): all the weight in the centre", case(0.05, 5)),
        ("a radius much wider than the window (50 px, kernel_size 3): nearly uniform",
         case(50.0, 3)),
    ])


def check_adjoint(fn):
    """Check ``fn(op, stack) -> (H, W, C)``: ``A^T`` of an ``(F, H, W, C)`` stack.

    Must equal ``op.adjoint(stack)``.
    """
    def case(shape, channels, kernel_size, seed):
        def run(f):
            rng, depth, _ = _small_scene(shape, seed, channels)
            op = BlurOperator(depth, Camera.nyuv2(), kernel_size=kernel_size, backend="cpu")
            stack = rng.standard_normal((op.num_planes,) + shape + (channels,)).astype(np.float32)
            got = f(op, stack.copy())
            want = op.adjoint(stack)
            try:
                _array("A^T stack", got, want, rtol=1e-4, atol=1e-4)
            except _Fail as fail:
                if np.shape(got) == want.shape[::-1] or np.shape(got) == (channels,) + shape:
                    raise _hint(fail, "return (H, W, C): move the channel axis last") from None
                raise
        return run

    return _run("check_adjoint", fn, [
        ("6x7 RGB, kernel_size 5", case((6, 7), 3, 5, 0)),
        ("one channel, stack (F, H, W, 1)", case((5, 5), 1, 3, 1)),
        ("odd shape 4x9, kernel_size 7 (wider than the image is tall)", case((4, 9), 3, 7, 2)),
    ])


def _fista_reference(op, b, x, y, t, step, lo, hi):
    grad = op.adjoint(op.forward(y) - b)
    x_new = np.clip(y - np.float32(step) * grad, lo, hi).astype(np.float32)
    t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
    y_new = (x_new + np.float32((t - 1.0) / t_new) * (x_new - x)).astype(np.float32)
    return x_new, y_new, t_new


def check_fista_step(fn):
    """Check one FISTA step ``fn(op, stack, x, y, t, step, bounds) -> (x_new, y_new, t_new)``.

    ``x_new = clip(y - step A^T (A y - b), lo, hi)``,
    ``t_new = (1 + sqrt(1 + 4 t^2)) / 2``,
    ``y_new = x_new + ((t - 1) / t_new) (x_new - x)``; arrays ``(H, W, C)`` float32.
    """
    def case(shape, channels, t, bounds, seed):
        def run(f):
            rng, depth, aif = _small_scene(shape, seed, channels)
            op = BlurOperator(depth, Camera.nyuv2(), kernel_size=5, backend="cpu")
            b = op.forward(aif)
            x = rng.random(aif.shape).astype(np.float32)
            y = np.clip(x + 0.3 * rng.standard_normal(aif.shape), 0, 1).astype(np.float32)
            step = 1.0 / _exact_lipschitz(op)
            if bounds is None:
                got = f(op, b.copy(), x.copy(), y.copy(), t, step)
                lo, hi = 0.0, 1.0
            else:
                got = f(op, b.copy(), x.copy(), y.copy(), t, step, bounds=bounds)
                lo, hi = bounds
            want = _fista_reference(op, b, x, y, t, step, np.float32(lo), np.float32(hi))
            if not isinstance(got, (tuple, list)) or len(got) != 3:
                raise _Fail(f"return the three values (x_new, y_new, t_new); "
                            f"got {type(got).__name__}")
            try:
                _array("x_new", got[0], want[0], rtol=1e-4, atol=1e-5)
            except _Fail as fail:
                g = np.asarray(got[0])
                if g.shape == want[0].shape and (g.min() < lo - 1e-6 or g.max() > hi + 1e-6):
                    raise _hint(fail, f"x_new leaves the box [{lo}, {hi}]: clip it "
                                      f"(np.clip) after the gradient step") from None
                raise
            _scalar("t_new", got[2], want[2], rtol=1e-6)
            try:
                _array("y_new", got[1], want[1], rtol=1e-4, atol=1e-5)
            except _Fail as fail:
                raise _hint(fail, "y_new = x_new + ((t - 1) / t_new) * (x_new - x), with the "
                                  "OLD t and the new t_new") from None
            _float32("x_new", got[0])
            _float32("y_new", got[1])
        return run

    return _run("check_fista_step", fn, [
        ("first step, t=1 (no momentum yet), 6x7 RGB", case((6, 7), 3, 1.0, None, 0)),
        ("a later step, t=3.2, 5x8 RGB", case((5, 8), 3, 3.2, None, 1)),
        ("narrow box bounds=(0.3, 0.6): the clip matters", case((6, 6), 3, 2.0, (0.3, 0.6), 2)),
        ("one channel (H, W, 1)", case((7, 5), 1, 1.7, (0.0, 1.0), 3)),
    ])


def check_power_iteration(fn):
    """Check ``fn(op, num_iters) -> float``, an estimate of ``||A||^2 = ||A^T A||_2``.

    Must be within 5 % of the exact value (what :func:`dfd_lite.lipschitz_constant`
    converges to, without its safety factor).
    """
    def case(shape, kernel_size, cam, num_iters, seed):
        def run(f):
            _, depth, _ = _small_scene(shape, seed)
            op = BlurOperator(depth, cam, kernel_size=kernel_size, backend="cpu")
            want = _exact_lipschitz(op)
            got = f(op, num_iters)
            try:
                _scalar("||A||^2 estimate", got, want, rtol=0.05)
            except _Fail as fail:
                value = float(np.asarray(got).ravel()[0]) if np.size(got) == 1 else None
                if value is not None and abs(value - math.sqrt(want)) < 0.05 * math.sqrt(want):
                    raise _hint(fail, "that is ||A||; the step needs its square "
                                      "(the largest eigenvalue of A^T A)") from None
                raise
        return run

    return _run("check_power_iteration", fn, [
        ("8x9 depth map, NYUv2 camera, 20 iterations", case((8, 9), 5, Camera.nyuv2(), 20, 0)),
        ("12x10, kernel_size 7, 15 iterations", case((12, 10), 7, Camera.nyuv2(), 15, 1)),
        ("Make3D camera (7 planes), 20 iterations", case((6, 11), 5, Camera.make3d(), 20, 2)),
    ])


def check_golden_section(fn):
    """Check ``fn(f, lo, hi, tol) -> z``, a minimiser of ``f`` on ``[lo, hi]`` within ``tol``.

    Also checks that it needs about as few evaluations of ``f`` as golden
    section does (a fine grid would find the minimum too, but slowly).
    """
    golden = (1 + math.sqrt(5)) / 2

    def case(func, lo, hi, tol, zmin):
        def run(f):
            calls = [0]

            def counted(z):
                calls[0] += 1
                return func(float(z))

            got = f(counted, lo, hi, tol)
            if isinstance(got, (tuple, list)):
                raise _Fail(f"return only z (a number), got a {type(got).__name__} "
                            f"{tuple(got)!r}")
            z = _scalar("z", got, zmin, rtol=0.0, atol=tol * 1.001)
            if not lo - 1e-12 <= z <= hi + 1e-12:
                raise _Fail(f"z = {z:.6g} is outside the bracket [{lo}, {hi}]")
            budget = 3 * math.ceil(math.log((hi - lo) / tol, golden)) + 6
            if calls[0] > budget:
                raise _Fail(f"your search evaluated f {calls[0]} times; golden section needs "
                            f"about {budget // 3} for this bracket and tol\n  hint: shrink the "
                            f"bracket by 0.618 each step and reuse one interior point")
        return run

    return _run("check_golden_section", fn, [
        ("(z - 2.3)^2 on [0, 5], tol 1e-2", case(lambda z: (z - 2.3) ** 2, 0.0, 5.0, 1e-2, 2.3)),
        ("|z - 0.7| (not smooth) on [0.1, 10], tol 1e-3",
         case(lambda z: abs(z - 0.7), 0.1, 10.0, 1e-3, 0.7)),
        ("increasing f: the minimum is the bracket's lower end",
         case(lambda z: z ** 3, 1.0, 4.0, 1e-2, 1.0)),
        ("decreasing f: the minimum is the bracket's upper end",
         case(lambda z: -z, 2.0, 3.0, 1e-3, 3.0)),
    ])


def check_grid_argmin(fn):
    """Check ``fn(loss_volume (N, H, W), candidates (N,)) -> (H, W)`` depth of the smallest loss."""
    def case(loss, cands):
        def run(f):
            got = f(loss.copy(), cands.copy())
            idx = np.argmin(loss, axis=0)
            want = cands[idx]
            try:
                _array("depth", got, want, rtol=0, atol=1e-9)
            except _Fail as fail:
                g = np.asarray(got) if np.shape(got) == want.shape else None
                if g is not None and np.array_equal(g, idx):
                    raise _hint(fail, "those are indices; turn them into depths with "
                                      "candidates[index]") from None
                if g is not None and np.allclose(g, cands[np.argmax(loss, axis=0)]):
                    raise _hint(fail, "that picks the LARGEST loss: use argmin") from None
                raise
        return run

    rng = np.random.default_rng(0)
    inverse = np.sort(1.0 / np.linspace(1 / 0.5, 1 / 10.0, 9))
    edge = rng.random((6, 3, 4))
    edge[0, 0, :] = -1.0   # first row of pixels: minimum at the first candidate
    edge[-1, 1, :] = -1.0  # second row: at the last candidate
    return _run("check_grid_argmin", fn, [
        ("7 linear candidates, 4x5 pixels", case(rng.random((7, 4, 5)), np.linspace(1, 4, 7))),
        ("9 unevenly spaced candidates, 1x6 pixels", case(rng.random((9, 1, 6)), inverse)),
        ("minima at the first and last candidate", case(edge, np.linspace(0.5, 3.0, 6))),
        ("a single candidate", case(rng.random((1, 2, 3)), np.array([2.0]))),
    ])


def check_depth_metrics(fn):
    """Check ``fn(pred, gt) -> dict`` with ``rmse``, ``absrel`` and ``delta1``."""
    def case(pred, gt):
        def run(f):
            got = f(np.array(pred, copy=True), np.array(gt, copy=True))
            want = depth_metrics(pred, gt)
            if not isinstance(got, dict):
                raise _Fail(f"return a dict with keys 'rmse', 'absrel', 'delta1'; "
                            f"got {type(got).__name__}")
            missing = [key for key in ("rmse", "absrel", "delta1") if key not in got]
            if missing:
                raise _Fail(f"the dict has no key {missing[0]!r} (its keys: {sorted(got)})")
            for key in ("rmse", "absrel", "delta1"):
                try:
                    _scalar(key, got[key], want[key], rtol=1e-6, atol=1e-9)
                except _Fail as fail:
                    if key == "absrel":
                        raise _hint(fail, "AbsRel = mean(|pred - gt| / gt): divide by the "
                                          "TRUE depth") from None
                    if key == "delta1":
                        raise _hint(fail, "delta1 = fraction of pixels with max(pred/gt, "
                                          "gt/pred) < 1.25 (strictly less)") from None
                    if key == "rmse":
                        raise _hint(fail, "RMSE = sqrt(mean((pred - gt)^2))") from None
                    raise
        return run

    rng = np.random.default_rng(0)
    gt = rng.uniform(1.0, 6.0, size=(4, 5))
    return _run("check_depth_metrics", fn, [
        ("random 4x5 prediction", case(gt * rng.uniform(0.7, 1.4, size=gt.shape), gt)),
        ("a perfect prediction", case(gt.copy(), gt)),
        ("predictions too small by a factor 1.3 (ratio gt/pred)", case(gt / 1.3, gt)),
        ("ratios exactly 1.25 (not counted in delta1)", case(np.array([[2.5, 5.0]]),
                                                             np.array([[2.0, 4.0]]))),
    ])
