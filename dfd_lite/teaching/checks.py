"""Automatic feedback for the book's coding exercises.

Each ``check_*`` function runs a student's function on a few small cases,
compares the answers with ``dfd_lite`` (or with the property the
exercise asks for), and prints one friendly message: the first case that
failed (expected against got: shape, dtype, largest error and where) or
that every case passed. The checks never raise: an exception in the
student's code, including the ``NotImplementedError`` of an unfinished
exercise, is reported as a message.

Each returns a :class:`CheckResult`, true when every case passed. In a
notebook it shows nothing below the printed message.

Every check takes two keyword-only options:

* ``seed=None`` runs the cases shown in the book; an integer draws fresh,
  random cases (shapes, cameras, parameters and data) from it. The grader
  (:mod:`dfd_lite.teaching.grade`) uses fresh cases, so a function written
  to pass the book's cases only does not pass there.
* ``verbose=True`` prints the message; the grader turns it off and reads
  :attr:`CheckResult.message`.

Example
-------
>>> from dfd_lite.teaching.checks import check_coc_radius
>>> import dfd_lite as dl
>>> result = check_coc_radius(lambda depth, camera: dl.coc_radius(depth, camera))
check_coc_radius: all 4 cases passed.
>>> bool(result)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..aif import fista, sharpness
from ..blur import BlurOperator, gaussian_weights, psf_weights
from ..data import focal_stack, synthetic_scene
from ..depth import depth_candidates, pixel_loss
from ..metrics import depth_metrics
from ..optics import Camera, coc_radius

__all__ = [
    "CheckResult",
    "check_depth_from_focus",
    "check_coc_radius",
    "check_gaussian_weights",
    "check_adjoint",
    "check_fista_step",
    "check_power_iteration",
    "check_aif_loop",
    "check_golden_section",
    "check_grid_argmin",
    "check_loss_kernel",
    "check_depth_metrics",
    "check_loss_confidence",
    "check_disc_row_areas",
    "check_box_average",
    "check_dfd_solver",
    "CAPSTONE",
]

GOLDEN_RATIO = (1 + math.sqrt(5)) / 2


@dataclass(frozen=True)
class CheckResult:
    """What a check found; true when every case passed.

    Attributes
    ----------
    name : str
        The check, e.g. ``"check_coc_radius"``.
    passed : bool
    message : str
        The message the check prints: which case failed and how, or that all passed.
    num_cases : int
    measured : dict
        Numbers a check measured, e.g. ``{"rmse": 0.59}`` for the solver.
    """

    name: str
    passed: bool
    message: str
    num_cases: int
    measured: dict = field(default_factory=dict)

    def __bool__(self):
        return self.passed

    def _ipython_display_(self):
        # The check printed its message already; echoing the result below it
        # (the first edition showed a bare True/False) only adds noise.
        pass


class _Fail(Exception):
    """A case's answer is wrong; the message says how (raised by the comparisons below)."""


# ---------------------------------------------------------------------------
# The shared "run each case, compare, report" machinery
# ---------------------------------------------------------------------------

def _run(title, fn, cases, *, verbose=True, on_error=None, kind="a function", measured=None,
         success=None):
    """Run ``case(fn)`` for each ``(label, case)``; return a :class:`CheckResult`.

    A case returns nothing when the answer is right and raises :class:`_Fail`
    when it is wrong. Exceptions from the student's function are reported,
    never propagated; ``on_error(exc)`` may return a hint for them (e.g. the
    shapes that a transposed matrix would produce). ``measured`` is a dict
    the cases fill with numbers for :attr:`CheckResult.measured`;
    ``success()`` may replace the "all cases passed" message.
    """
    measured = {} if measured is None else measured
    passed, message = _outcome(fn, cases, on_error, kind)
    if passed and success is not None:
        message = success()
    result = CheckResult(title, passed, f"{title}: {message}", len(cases), measured)
    if verbose:
        print(result.message)
    return result


def _outcome(fn, cases, on_error, kind):
    """``(passed, message)`` of running the cases (see :func:`_run`)."""
    if not callable(fn):
        return False, (f"expected {kind}, got {type(fn).__name__}. Pass the function itself "
                       f"(no parentheses after its name).")
    for number, (label, case) in enumerate(cases, 1):
        where = f"case {number} of {len(cases)} ({label})"
        try:
            case(fn)
        except NotImplementedError:
            return False, ("not implemented yet: replace the `raise NotImplementedError` "
                           "line with your code.")
        except _Fail as fail:
            return False, f"{where} failed:\n  {fail}"
        except Exception as exc:  # the student's code crashed: report it, don't raise
            hint = on_error(exc) if on_error is not None else None
            more = f"\n  hint: {hint}" if hint else ""
            return False, f"{where} raised {type(exc).__name__}: {exc}{more}"
    return True, f"all {len(cases)} cases passed." if len(cases) > 1 else "passed."


def _rng(seed, default):
    """The cases' random generator: the book's fixed one, or a fresh one from ``seed``."""
    return np.random.default_rng(default if seed is None else seed)


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


def _small_scene(rng, shape, channels=3, depth_range=(0.8, 7.0)):
    """A random depth map and image of the given shape (small and fast)."""
    depth = rng.uniform(*depth_range, size=shape).astype(np.float32)
    aif = rng.random(tuple(shape) + (channels,)).astype(np.float32)
    return depth, aif


def _random_camera(rng):
    """A plausible camera: 3-6 focus distances, f = 25-85 mm, f/2-f/8, 4-12 um pixels."""
    focal_length = rng.uniform(0.025, 0.085)
    focus = np.sort(rng.uniform(0.6, 8.0, size=rng.integers(3, 7)))
    return Camera(focal_length, focal_length / rng.uniform(2.0, 8.0), rng.uniform(4e-6, 12e-6),
                  [float(z) for z in focus], float(rng.choice([0.0, 0.5, 1.0, 2.0])))


def _shape(rng, low=4, high=10):
    return int(rng.integers(low, high)), int(rng.integers(low, high))


# ---------------------------------------------------------------------------
# The checks, one per coding exercise
# ---------------------------------------------------------------------------

def check_depth_from_focus(fn, *, seed=None, verbose=True):
    """Check ``fn(stack, camera) -> (H, W)``: the focus distance of each pixel's sharpest slice.

    "Sharpest" is the largest :func:`~dfd_lite.aif.sharpness`; chapter 1's exercise.
    """
    rng = _rng(seed, 0)

    def case(shape, cam, channels):
        def run(f):
            depth, aif = _small_scene(rng, shape, channels)
            op = BlurOperator(depth, cam, kernel_size=5, backend="cpu")
            stack = op.forward(aif)
            got = f(stack.copy(), cam)
            index = np.argmax(sharpness(stack), axis=0)
            want = np.asarray(cam.focus_distances)[index]
            try:
                _array("depth", got, want, rtol=1e-6, atol=1e-9)
            except _Fail as fail:
                g = np.asarray(got) if np.shape(got) == want.shape else None
                if g is not None and np.array_equal(g, index):
                    raise _hint(fail, "those are slice indices; turn them into distances "
                                      "with camera.focus_distances") from None
                if g is not None and np.allclose(
                        g, np.asarray(cam.focus_distances)[np.argmin(sharpness(stack), axis=0)]):
                    raise _hint(fail, "that picks the BLURRIEST slice: use argmax") from None
                raise
        return run

    cams = [Camera.nyuv2(), Camera.make3d()] if seed is None else \
        [_random_camera(rng), _random_camera(rng)]
    return _run("check_depth_from_focus", fn, [
        ("8x10 RGB, NYUv2 camera" if seed is None else "random RGB scene", case(
            (8, 10) if seed is None else _shape(rng, 6, 14), cams[0], 3)),
        ("one channel, Make3D camera (7 slices)" if seed is None else "random grey scene",
         case((7, 9) if seed is None else _shape(rng, 6, 14), cams[1], 1)),
    ], verbose=verbose)


def check_coc_radius(fn, *, seed=None, verbose=True):
    """Check ``fn(depth, camera) -> (F,) + depth.shape`` clamped blur radii in pixels.

    Must equal :func:`~dfd_lite.optics.coc_radius` (with ``clamp=True``).
    """
    rng = _rng(seed, 1)

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

    nyu = Camera.nyuv2()
    if seed is None:
        unclamped = Camera(0.035, 2.8, 1e-5, [1.0, 2.5, 9.0], 0.0)
        return _run("check_coc_radius", fn, [
            ("a 3x4 depth map, NYUv2 camera", case(rng.uniform(0.5, 8.0, size=(3, 4)), nyu)),
            ("depths equal to the focus distances, so the radius is clamped to min_radius",
             case(np.array(nyu.focus_distances), nyu)),
            ("a camera with min_radius=0: no clamping, radius 0 in focus",
             case(np.array([[0.7, 1.0], [2.5, 9.0]]), unclamped)),
            ("Make3D camera (7 planes), a 5x7 depth map",
             case(rng.uniform(0.3, 70.0, size=(5, 7)), Camera.make3d())),
        ], verbose=verbose)
    cams = [_random_camera(rng) for _ in range(3)]
    return _run("check_coc_radius", fn, [
        (f"a random camera ({c.num_planes} slices, min_radius={c.min_radius}), {s} depths",
         case(rng.uniform(0.4, 12.0, size=s), c))
        for c, s in zip(cams, [_shape(rng), (int(rng.integers(2, 9)),), _shape(rng)])
    ] + [("depths at the focus distances, clamped", case(np.array(cams[0].focus_distances),
                                                          cams[0]))], verbose=verbose)


def check_gaussian_weights(fn, *, seed=None, verbose=True):
    """Check ``fn(radius, kernel_size) -> (K,)`` normalised 1-D Gaussian weights.

    Must equal :func:`~dfd_lite.blur.gaussian_weights` for a scalar radius, and
    must not divide by zero at radius 0 (all the weight in the centre).
    """
    rng = _rng(seed, 2)

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
                if radius == 0.0:
                    raise _hint(fail, "at radius 0 floor sigma at a small value (e.g. 1e-3) "
                                      "instead of dividing by zero") from None
                raise
        return run

    if seed is None:
        cases = [
            ("radius 1.5 px, kernel_size 7", case(1.5, 7)),
            ("radius 2.0 px, kernel_size 11", case(2.0, 11)),
            ("a tiny radius (0.05 px): all the weight in the centre", case(0.05, 5)),
            ("a radius much wider than the window (50 px, kernel_size 3): nearly uniform",
             case(50.0, 3)),
        ]
    else:
        cases = [(f"radius {r:.3g} px, kernel_size {k}", case(r, k)) for r, k in
                 [(float(rng.uniform(0.3, 6.0)), int(2 * rng.integers(1, 8) + 1))
                  for _ in range(3)]]
    cases.append(("radius 0: must not divide by zero", case(0.0, 5)))
    return _run("check_gaussian_weights", fn, cases, verbose=verbose)


def _shape_hint(exc):
    """For a NumPy/SciPy shape error: what a product with A (not A^T) would have needed."""
    text = str(exc)
    if isinstance(exc, ValueError) and ("shape" in text or "dimension" in text
                                         or "mismatch" in text or "reshape" in text):
        return ("A maps an image of H*W*C values to a stack of F*H*W*C; A^T goes back. "
                "Multiply the flattened stack by the TRANSPOSE of op.to_sparse() and reshape "
                "the result to (H, W, C)")
    return None


def check_adjoint(fn, *, seed=None, verbose=True):
    """Check ``fn(op, stack) -> (H, W, C)``: ``A^T`` of an ``(F, H, W, C)`` stack.

    Must equal ``op.adjoint(stack)``.
    """
    rng = _rng(seed, 3)

    def case(shape, channels, kernel_size, cam):
        def run(f):
            depth, _ = _small_scene(rng, shape, channels)
            op = BlurOperator(depth, cam, kernel_size=kernel_size, backend="cpu")
            stack = rng.standard_normal((op.num_planes,) + tuple(shape) + (channels,))
            stack = stack.astype(np.float32)
            got = f(op, stack.copy())
            want = op.adjoint(stack)
            try:
                _array("A^T stack", got, want, rtol=1e-4, atol=1e-4)
            except _Fail as fail:
                if np.shape(got) == want.shape[::-1] or np.shape(got) == (channels,) + shape:
                    raise _hint(fail, "return (H, W, C): move the channel axis last") from None
                if np.size(got) == want.size * op.num_planes:
                    raise _hint(fail, "that is the size of a stack: did you apply A instead "
                                      "of its transpose?") from None
                raise
        return run

    nyu = Camera.nyuv2()
    if seed is None:
        cases = [
            ("6x7 RGB, kernel_size 5", case((6, 7), 3, 5, nyu)),
            ("one channel, stack (F, H, W, 1)", case((5, 5), 1, 3, nyu)),
            ("odd shape 4x9, kernel_size 7 (wider than the image is tall)",
             case((4, 9), 3, 7, nyu)),
        ]
    else:
        cases = [("random camera and depth, RGB", case(_shape(rng), 3, 5, _random_camera(rng))),
                 ("one channel", case(_shape(rng), 1, 3, _random_camera(rng))),
                 ("kernel_size 7", case(_shape(rng, 4, 8), 3, 7, nyu))]
    return _run("check_adjoint", fn, cases, verbose=verbose, on_error=_shape_hint)


def _fista_reference(op, b, x, y, t, step, lo, hi):
    grad = op.adjoint(op.forward(y) - b)
    x_new = np.clip(y - np.float32(step) * grad, lo, hi).astype(np.float32)
    t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
    y_new = (x_new + np.float32((t - 1.0) / t_new) * (x_new - x)).astype(np.float32)
    return x_new, y_new, t_new


def check_fista_step(fn, *, seed=None, verbose=True):
    """Check one FISTA step ``fn(op, stack, x, y, t, step, bounds) -> (x_new, y_new, t_new)``.

    ``x_new = clip(y - step A^T (A y - b), lo, hi)``,
    ``t_new = (1 + sqrt(1 + 4 t^2)) / 2``,
    ``y_new = x_new + ((t - 1) / t_new) (x_new - x)``; arrays ``(H, W, C)`` float32.
    """
    rng = _rng(seed, 4)

    def case(shape, channels, t, bounds):
        def run(f):
            depth, aif = _small_scene(rng, shape, channels)
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
                if np.allclose(np.asarray(got[1]), want[0], atol=1e-5) and t > 1:
                    raise _hint(fail, "y_new equals x_new: the momentum term "
                                      "((t - 1) / t_new) * (x_new - x) is missing") from None
                raise _hint(fail, "y_new = x_new + ((t - 1) / t_new) * (x_new - x), with the "
                                  "OLD t and the new t_new") from None
            _float32("x_new", got[0])
            _float32("y_new", got[1])
        return run

    if seed is None:
        cases = [
            ("first step, t=1 (no momentum yet), 6x7 RGB", case((6, 7), 3, 1.0, None)),
            ("a later step, t=3.2, 5x8 RGB", case((5, 8), 3, 3.2, None)),
            ("narrow box bounds=(0.3, 0.6): the clip matters", case((6, 6), 3, 2.0, (0.3, 0.6))),
            ("one channel (H, W, 1)", case((7, 5), 1, 1.7, (0.0, 1.0))),
        ]
    else:
        lo = float(rng.uniform(0.1, 0.4))
        cases = [(f"a later step, t={t:.3g}", case(_shape(rng), 3, t, None))
                 for t in rng.uniform(1.5, 6.0, size=2)]
        cases.append((f"bounds=({lo:.3g}, {lo + 0.3:.3g})",
                      case(_shape(rng), 3, float(rng.uniform(1.0, 4.0)), (lo, lo + 0.3))))
        cases.append(("one channel", case(_shape(rng), 1, 1.0, (0.0, 1.0))))
    return _run("check_fista_step", fn, cases, verbose=verbose, on_error=_shape_hint)


def check_power_iteration(fn, *, seed=None, verbose=True):
    """Check ``fn(op, num_iters) -> float``, an estimate of ``||A||^2 = ||A^T A||_2``.

    Must be within 5 % of the exact value (what :func:`~dfd_lite.aif.lipschitz_constant`
    converges to, without its safety factor).
    """
    rng = _rng(seed, 5)

    def case(shape, kernel_size, cam, num_iters):
        def run(f):
            depth, _ = _small_scene(rng, shape)
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

    if seed is None:
        cases = [
            ("8x9 depth map, NYUv2 camera, 20 iterations", case((8, 9), 5, Camera.nyuv2(), 20)),
            ("12x10, kernel_size 7, 15 iterations", case((12, 10), 7, Camera.nyuv2(), 15)),
            ("Make3D camera (7 planes), 20 iterations", case((6, 11), 5, Camera.make3d(), 20)),
        ]
    else:
        cases = [("random camera, 20 iterations", case(_shape(rng, 6, 12), 5,
                                                       _random_camera(rng), 20))
                 for _ in range(3)]
    return _run("check_power_iteration", fn, cases, verbose=verbose, on_error=_shape_hint)


def check_aif_loop(fn, *, seed=None, verbose=True):
    """Check ``fn(op, stack, num_iters, x0) -> (H, W, C)``: ``num_iters`` FISTA steps from ``x0``.

    Must match :func:`~dfd_lite.aif.fista` (step ``1 / dl.lipschitz_constant(op)``,
    box [0, 1], momentum) to within 1e-3.
    """
    rng = _rng(seed, 6)

    def case(shape, num_iters):
        def run(f):
            depth, aif = _small_scene(rng, shape)
            op = BlurOperator(depth, Camera.nyuv2(), kernel_size=5, backend="cpu")
            stack = op.forward(aif)
            x0 = stack.mean(axis=0)
            got = f(op, stack.copy(), num_iters, x0.copy())
            want = fista(op, stack, num_iters=num_iters, x0=x0).aif
            try:
                _array("image", got, want, rtol=0.0, atol=1e-3)
            except _Fail as fail:
                if np.shape(got) == want.shape:
                    plain = fista(op, stack, num_iters=num_iters, x0=x0, momentum=False).aif
                    if np.allclose(got, plain, atol=1e-3):
                        raise _hint(fail, "this is projected gradient without momentum: "
                                          "carry y and t from one step to the next") from None
                    if np.allclose(got, x0, atol=1e-6):
                        raise _hint(fail, "the image did not change: return the last x") \
                            from None
                raise _hint(fail, "start from x = y = x0 and t = 1, then x, y, t = "
                                  "fista_step(op, stack, x, y, t, step) num_iters times") \
                    from None
        return run

    cases = [("6x7 RGB, 30 iterations", case((6, 7), 30)),
             ("9x5 RGB, 5 iterations", case((9, 5), 5))] if seed is None else \
        [(f"random scene, {n} iterations", case(_shape(rng), int(n)))
         for n in rng.integers(3, 40, size=2)]
    return _run("check_aif_loop", fn, cases, verbose=verbose, on_error=_shape_hint)


def golden_section_evaluations(lo, hi, tol):
    """How many evaluations golden-section search needs to shrink ``[lo, hi]`` below ``tol``.

    Two for the first interior points, then one per step; each step keeps
    0.618 of the bracket.
    """
    return 2 + max(0, math.ceil(math.log((hi - lo) / tol, GOLDEN_RATIO)))


def check_golden_section(fn, *, seed=None, verbose=True):
    """Check ``fn(f, lo, hi, tol) -> z``, a minimiser of ``f`` on ``[lo, hi]`` within ``tol``.

    Also checks the exercise's rule of one new evaluation of ``f`` per step:
    at most ``golden_section_evaluations`` plus one spare (a second
    evaluation per step, or a fine grid, uses about twice as many).
    """
    rng = _rng(seed, 7)

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
            if calls[0] == 0:
                raise _Fail("f was never evaluated: the answer cannot depend on f")
            budget = golden_section_evaluations(lo, hi, tol) + 1
            if calls[0] > budget:
                raise _Fail(f"your search evaluated f {calls[0]} times; golden section needs "
                            f"{budget - 1} for this bracket and tol (two to start, then one "
                            f"per step)\n  hint: shrink the bracket by 0.618 each step and "
                            f"reuse the interior point you keep, with its value")
        return run

    if seed is None:
        cases = [
            ("(z - 2.3)^2 on [0, 5], tol 1e-2", case(lambda z: (z - 2.3) ** 2, 0.0, 5.0, 1e-2, 2.3)),
            ("|z - 0.7| (not smooth) on [0.1, 10], tol 1e-3",
             case(lambda z: abs(z - 0.7), 0.1, 10.0, 1e-3, 0.7)),
            ("increasing f: the minimum is the bracket's lower end",
             case(lambda z: z ** 3, 1.0, 4.0, 1e-2, 1.0)),
            ("decreasing f: the minimum is the bracket's upper end",
             case(lambda z: -z, 2.0, 3.0, 1e-3, 3.0)),
        ]
    else:
        cases = []
        for _ in range(3):
            lo = float(rng.uniform(-5.0, 5.0))
            hi = lo + float(rng.uniform(0.5, 10.0))
            zmin = float(rng.uniform(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo)))
            tol = float(10.0 ** rng.uniform(-4, -2))
            scale = float(rng.uniform(0.5, 3.0))
            cases.append((f"a unimodal f on [{lo:.3g}, {hi:.3g}], tol {tol:.2g}",
                          case(lambda z, m=zmin, s=scale: s * abs(z - m) ** 1.5,
                               lo, hi, tol, zmin)))
        cases.append(("increasing f: the minimum is the lower end",
                      case(lambda z: math.exp(z), -1.0, 2.0, 1e-3, -1.0)))
    return _run("check_golden_section", fn, cases, verbose=verbose)


def check_grid_argmin(fn, *, seed=None, verbose=True):
    """Check ``fn(loss_volume (N, H, W), candidates (N,)) -> (H, W)`` depth of the smallest loss."""
    rng = _rng(seed, 8)

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

    inverse = np.sort(1.0 / np.linspace(1 / 0.5, 1 / 10.0, 9))
    n = 6 if seed is None else int(rng.integers(4, 12))
    edge = rng.random((n, 3, 4))
    edge[0, 0, :] = -1.0   # first row of pixels: minimum at the first candidate
    edge[-1, 1, :] = -1.0  # second row: at the last candidate
    if seed is None:
        cases = [("7 linear candidates, 4x5 pixels",
                  case(rng.random((7, 4, 5)), np.linspace(1, 4, 7))),
                 ("9 unevenly spaced candidates, 1x6 pixels", case(rng.random((9, 1, 6)), inverse))]
    else:
        m = int(rng.integers(5, 30))
        cands = np.sort(rng.uniform(0.3, 10.0, size=m))
        cases = [(f"{m} random candidates", case(rng.random((m,) + _shape(rng)), cands))]
    cases += [("minima at the first and last candidate",
               case(edge, np.sort(rng.uniform(0.5, 3.0, size=n)) if seed is not None
                    else np.linspace(0.5, 3.0, 6))),
              ("a single candidate", case(rng.random((1, 2, 3)), np.array([2.0])))]
    return _run("check_grid_argmin", fn, cases, verbose=verbose)


def check_loss_kernel(kernel, *, seed=None, verbose=True):
    """Check a CUDA kernel ``kernel(x, b, w, out)``: the per-pixel loss of a given depth map.

    ``x`` is ``(C, H, W)``, ``b`` ``(F, C, H, W)``, ``w`` the ``(F, K, H, W)``
    weights of a :class:`~dfd_lite.blur.BlurOperator`; ``out`` ``(H, W)`` must
    equal :func:`~dfd_lite.depth.pixel_loss`. Launched with 16 x 16 blocks; needs
    Numba's CUDA target (a GPU, or the simulator on small images).
    """
    rng = _rng(seed, 9)

    def case(shape, kernel_size):
        def run(k):
            if not hasattr(k, "__getitem__"):
                raise _Fail("expected a kernel decorated with @cuda.jit (launched as "
                            "kernel[blocks, threads](...)), got a plain function")
            depth, aif = _small_scene(rng, shape)
            cam = Camera.nyuv2()
            op = BlurOperator(depth, cam, kernel_size=kernel_size, backend="cpu")
            stack = op.forward(aif) + 0.05 * rng.standard_normal((op.num_planes,) + aif.shape)
            stack = stack.astype(np.float32)
            x = np.ascontiguousarray(np.moveaxis(aif, -1, 0))
            b = np.ascontiguousarray(np.moveaxis(stack, -1, 1))
            out = np.zeros(shape, dtype=np.float32)
            height, width = shape
            k[((width + 15) // 16, (height + 15) // 16), (16, 16)](x, b, op.weights, out)
            want = pixel_loss(aif, stack, depth, cam, kernel_size=kernel_size, backend="cpu")
            try:
                _array("out", out, want, rtol=1e-4, atol=1e-6)
            except _Fail as fail:
                raise _hint(fail, "pixels outside the image count as zero, and the weights "
                                  "are read at the OUTPUT pixel (py, px)") from None
        return run

    cases = [("12x16 RGB, K = 5", case((12, 16), 5)),
             ("odd 9x21 (a partly empty block), K = 3", case((9, 21), 3))] if seed is None else \
        [("random 2-block image", case((int(rng.integers(5, 20)), int(rng.integers(17, 30))), 5))]
    return _run("check_loss_kernel", kernel, cases, verbose=verbose,
                kind="a kernel (decorated with @cuda.jit)")


def check_depth_metrics(fn, *, seed=None, verbose=True):
    """Check ``fn(pred, gt) -> dict`` with ``rmse``, ``absrel`` and ``delta1``."""
    rng = _rng(seed, 10)

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

    gt = rng.uniform(1.0, 6.0, size=(4, 5) if seed is None else _shape(rng))
    factor = 1.3 if seed is None else float(rng.uniform(1.1, 1.6))
    return _run("check_depth_metrics", fn, [
        ("random prediction", case(gt * rng.uniform(0.7, 1.4, size=gt.shape), gt)),
        ("a perfect prediction", case(gt.copy(), gt)),
        (f"predictions too small by a factor {factor:.3g} (ratio gt/pred)",
         case(gt / factor, gt)),
        ("ratios exactly 1.25 (not counted in delta1)", case(np.array([[2.5, 5.0]]),
                                                             np.array([[2.0, 4.0]]))),
    ], verbose=verbose)


def check_loss_confidence(fn, *, seed=None, verbose=True):
    """Check ``fn(volume (N, H, W)) -> (H, W)``: a confidence that is high at sharp minima.

    Chapter 8 leaves the formula open (median minus minimum is one choice),
    so this checks the properties any answer needs: one finite value per
    pixel, zero for a flat curve, unchanged when a constant is added to a
    curve, and larger for a deeper minimum of the same shape.
    """
    rng = _rng(seed, 11)

    def run(f):
        n, (h, w) = int(rng.integers(8, 20)), _shape(rng)
        depth_axis = np.linspace(-1.0, 1.0, n)[:, None, None]
        centre = rng.uniform(-0.6, 0.6, size=(1, h, w))
        depth_of_minimum = rng.uniform(0.5, 2.0, size=(1, h, w))
        volume = depth_of_minimum * np.minimum((depth_axis - centre) ** 2 * 4, 1.0)
        volume[:, 0, :] = 1.0  # the first row of pixels: flat curves, no information
        offset = rng.uniform(0.0, 5.0, size=(1, h, w))
        got = f(volume.copy())
        conf = np.asarray(got, dtype=np.float64) if got is not None else None
        if conf is None:
            raise _Fail("the confidence is None: did you forget to `return` it?")
        if conf.shape != (h, w):
            raise _Fail(f"the confidence has shape {conf.shape}, expected one value per "
                        f"pixel {(h, w)}\n  hint: reduce over axis 0 (the candidates)")
        if not np.all(np.isfinite(conf)):
            raise _Fail("the confidence contains NaN or inf")
        scale = float(np.abs(conf).max()) or 1.0
        if np.abs(conf[0]).max() > 1e-6 * scale:
            raise _Fail("a flat loss curve (first row of pixels) must have confidence 0")
        shifted = np.asarray(f(volume + offset), dtype=np.float64)
        if not np.allclose(shifted, conf, rtol=1e-6, atol=1e-9 * scale):
            raise _Fail("adding a constant to a loss curve changed its confidence: measure "
                        "the minimum's depth relative to the curve (e.g. median - min)")
        deeper = np.asarray(f(volume * 3.0), dtype=np.float64)
        if not np.all(deeper[1:] > conf[1:]):
            raise _Fail("a curve with a three times deeper minimum must get a larger "
                        "confidence")

    return _run("check_loss_confidence", fn, [
        ("random single-minimum curves and flat ones", run),
        ("other random curves (a different number of candidates)", run),
    ], verbose=verbose, on_error=_shape_hint)


def check_disc_row_areas(fn, *, seed=None, verbose=True):
    """Check ``fn(radius, K) -> (K,)``: the disc's area between heights ``dy - 1/2`` and ``dy + 1/2``.

    Rows must add up to ``pi r^2`` and, normalised, equal the row sums of
    ``dl.psf_weights(radius, K, psf="disc")``.
    """
    rng = _rng(seed, 12)

    def case(radius, k):
        def run(f):
            got = f(radius, k)
            want = psf_weights(radius, k, psf="disc").sum(axis=1).astype(np.float64) \
                * math.pi * radius ** 2
            if np.shape(got) != (k,):
                raise _Fail(f"the areas have shape {np.shape(got)}, expected one per row "
                            f"({k},)")
            total = float(np.sum(got))
            if not math.isclose(total, math.pi * radius ** 2, rel_tol=1e-5):
                raise _Fail(f"the rows add up to {total:.6g}, not the disc's area "
                            f"pi r^2 = {math.pi * radius ** 2:.6g}\n  hint: clip t to "
                            f"[-r, r] before G(t)")
            _array("row areas", got, want, rtol=1e-4, atol=1e-5 * radius ** 2)
        return run

    radii = [0.8, 2.0, 5.3] if seed is None else [float(r) for r in rng.uniform(0.4, 7.0, 3)]
    return _run("check_disc_row_areas", fn, [
        (f"radius {r:.3g} px, K = {2 * math.ceil(r) + 3}", case(r, 2 * math.ceil(r) + 3))
        for r in radii], verbose=verbose)



def check_box_average(fn, *, seed=None, verbose=True):
    """Check ``fn(volume (N, H, W), window) -> (N, H, W)``: box means with edges repeated.

    Must equal ``scipy.ndimage.uniform_filter(volume, size=(1, window, window),
    mode="nearest")``, the box aggregation of :func:`~dfd_lite.depth.grid_search`.
    """
    import scipy.ndimage as ndi

    rng = _rng(seed, 13)

    def case(shape, window):
        def run(f):
            volume = rng.random(shape) * rng.uniform(0.5, 5.0)
            got = f(volume.copy(), window)
            want = ndi.uniform_filter(volume, size=(1, window, window), mode="nearest")
            try:
                _array("averages", got, want, rtol=1e-6, atol=1e-9)
            except _Fail as fail:
                g = np.asarray(got, dtype=np.float64) if np.shape(got) == want.shape else None
                if g is not None and np.allclose(g, want * window ** 2, rtol=1e-6):
                    raise _hint(fail, "those are the sums: divide by window**2") from None
                zero = ndi.uniform_filter(volume, size=(1, window, window), mode="constant")
                if g is not None and np.allclose(g, zero, rtol=1e-6):
                    raise _hint(fail, "beyond the border repeat the edge pixels "
                                      "(np.pad(..., mode='edge')), not zeros") from None
                raise
        return run

    if seed is None:
        cases = [("3 candidates, 6x7 pixels, window 3", case((3, 6, 7), 3)),
                 ("window 5 on a 4x9 image (wider than it is tall)", case((2, 4, 9), 5)),
                 ("window 1: unchanged", case((2, 5, 5), 1))]
    else:
        cases = [(f"window {w}", case((int(rng.integers(1, 5)),) + _shape(rng, 3, 12), w))
                 for w in (3, 2 * int(rng.integers(2, 6)) + 1)]
    return _run("check_box_average", fn, cases, verbose=verbose, on_error=_shape_hint)

#: The capstone's final task - the scene, camera, window and settings its
#: ``dfd_mine`` runs with, and the depth RMSE (metres) it must stay below.
#: Correct code reaches 0.51 - 0.55 m on freshly seeded stacks; a grid argmax
#: or off by one, a midpoint golden section, an unclamped radius or the CoC
#: diameter give 0.87 - 4.4 m (``bench/capstone.py``, table in bench/README.md).
CAPSTONE = {"shape": (64, 80), "kernel_size": 11, "noise_std": 0.01,
            "depth_range": (0.5, 10.0), "num_depths": 5, "target_rmse": 0.7}


def capstone_problem(seed=0):
    """The capstone's scene, camera, noisy stack and candidates (noise drawn from ``seed``)."""
    scene = synthetic_scene(CAPSTONE["shape"])
    cam = Camera.nyuv2()
    stack = focal_stack(scene, cam, kernel_size=CAPSTONE["kernel_size"],
                        noise_std=CAPSTONE["noise_std"], seed=seed)
    candidates = depth_candidates(CAPSTONE["depth_range"], num_depths=CAPSTONE["num_depths"])
    return scene, cam, stack, candidates


def check_dfd_solver(fn, *, seed=None, verbose=True, parts=None):
    """Check the capstone's ``fn(stack, camera, candidates, K) -> (depth, aif)`` on its scene.

    The depth RMSE must be below ``CAPSTONE["target_rmse"]``. ``seed=None``
    uses the notebook's stack (noise seed 0); an integer draws fresh noise.

    Parameters
    ----------
    parts : dict, optional
        ``{name: (check, function)}`` for the pieces the solver is built
        from: on a miss the message names the pieces that fail their own
        check (run quietly on their book cases), which is where the cause is.
    """
    scene, cam, stack, candidates = capstone_problem(0 if seed is None else seed)
    measured = {}

    def run(f):
        result = f(stack.copy(), cam, candidates.copy(), CAPSTONE["kernel_size"])
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise _Fail(f"return (depth, aif); got {type(result).__name__}")
        depth = np.asarray(result[0], dtype=np.float64)
        if depth.shape != scene.shape:
            raise _Fail(f"the depth map has shape {depth.shape}, expected {scene.shape}")
        if not np.all(np.isfinite(depth)):
            raise _Fail("the depth map contains NaN or inf")
        rmse = float(depth_metrics(depth, scene.depth)["rmse"])
        measured["rmse"] = rmse
        if rmse >= CAPSTONE["target_rmse"]:
            broken = [name for name, (check, part) in (parts or {}).items()
                      if not check(part, verbose=False)]
            cause = (f"these parts fail their checks: {', '.join(broken)}" if broken else
                     "every part passes its check, so look at dfd_mine itself: the blur "
                     "operator needs kernel_size=K, the depth step window=window and "
                     "previous_depth=depth, and each epoch must start from the last image")
            raise _Fail(f"depth RMSE {rmse:.3f} m is not below the target "
                        f"{CAPSTONE['target_rmse']} m\n  hint: {cause}")

    label = "the notebook's stack" if seed is None else "a freshly seeded stack"
    return _run("check_dfd_solver", fn, [(label, run)], verbose=verbose, measured=measured,
                success=lambda: (f"depth RMSE {measured['rmse']:.3f} m on {label}, below the "
                                 f"target {CAPSTONE['target_rmse']} m."))
