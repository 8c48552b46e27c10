"""The exercise checkers: right answers pass, typical mistakes fail with a useful message."""

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
from numba import cuda, float32

import dfd_lite as dl
from dfd_lite.teaching import checks


def not_implemented(*args, **kwargs):
    raise NotImplementedError


def run(check, fn, capsys):
    """Run a check; return (result, printed text). The check must never raise."""
    result = check(fn)
    return result, capsys.readouterr().out


def assert_passes(check, fn, capsys):
    result, out = run(check, fn, capsys)
    assert result.passed is True, out
    assert "passed" in out and "failed" not in out


def assert_fails(check, fn, capsys, *fragments):
    result, out = run(check, fn, capsys)
    assert result.passed is False, out
    for fragment in fragments:
        assert fragment in out, f"{fragment!r} not in {out!r}"
    return out


# The checks of plain Python functions (check_loss_kernel takes a CUDA kernel: tested below).
ALL_CHECKS = [getattr(checks, name) for name in checks.__all__
              if name.startswith("check_") and name != "check_loss_kernel"]


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_not_implemented_is_reported_not_raised(check, capsys):
    out = assert_fails(check, not_implemented, capsys, "not implemented yet",
                       "raise NotImplementedError")
    assert out.startswith(check.__name__)


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_other_exceptions_are_reported_with_type_and_case(check, capsys):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    assert_fails(check, broken, capsys, "case 1 of", "ZeroDivisionError: boom")


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_not_a_function(check, capsys):
    assert_fails(check, 42, capsys, "expected a function")


# ---------------------------------------------------------------------------
# check_coc_radius

def coc_right(depth, camera):
    z = np.asarray(depth, dtype=np.float64)
    zf = np.asarray(camera.focus_distances).reshape((-1,) + (1,) * z.ndim)
    f = camera.focal_length
    coc = camera.aperture * np.abs(z - zf) / z * f / (zf - f)
    return np.maximum(coc / (2 * camera.pixel_size), camera.min_radius)


def test_coc_radius_right(capsys):
    assert_passes(checks.check_coc_radius, coc_right, capsys)
    assert_passes(checks.check_coc_radius, lambda d, c: dl.coc_radius(d, c), capsys)


def test_coc_radius_forgot_clamp(capsys):
    assert_fails(checks.check_coc_radius, lambda d, c: dl.coc_radius(d, c, clamp=False),
                 capsys, "case 1 of 4", "unclamped", "min_radius")


def test_coc_radius_diameter_instead_of_radius(capsys):
    def diameter(d, c):
        return np.maximum(2 * dl.coc_radius(d, c, clamp=False), c.min_radius)

    assert_fails(checks.check_coc_radius, diameter, capsys, "diameter")


def test_coc_radius_wrong_units(capsys):
    def metres(d, c):  # forgot to divide by the pixel size
        return dl.coc_radius(d, c, clamp=False) * c.pixel_size

    assert_fails(checks.check_coc_radius, metres, capsys, "pixel size")

    def metres_clamped(d, c):  # the same, then clamped: everything becomes min_radius
        return np.maximum(dl.coc_radius(d, c, clamp=False) * c.pixel_size, c.min_radius)

    assert_fails(checks.check_coc_radius, metres_clamped, capsys, "pixel size")


def test_coc_radius_hard_coded_clamp(capsys):
    # right for NYUv2 (min_radius 2), wrong for the camera with min_radius 0
    def hard(d, c):
        return np.maximum(dl.coc_radius(d, c, clamp=False), 2.0)

    assert_fails(checks.check_coc_radius, hard, capsys, "case 3 of 4", "min_radius=0")


def test_coc_radius_wrong_shape(capsys):
    assert_fails(checks.check_coc_radius, lambda d, c: np.moveaxis(dl.coc_radius(d, c), 0, -1),
                 capsys, "shape (3, 4, 5)", "expected (5, 3, 4)")


def test_coc_radius_returns_none(capsys):
    assert_fails(checks.check_coc_radius, lambda d, c: None, capsys, "forget to `return`")


# ---------------------------------------------------------------------------
# check_gaussian_weights

def weights_right(radius, k):
    o = np.arange(k) - k // 2
    sigma = max(radius, 1e-3)  # the exercise: radius 0 must not divide by zero
    g = np.exp(-o ** 2 / (2.0 * sigma ** 2))
    return g / g.sum()


def test_gaussian_weights_right(capsys):
    assert_passes(checks.check_gaussian_weights, weights_right, capsys)


def test_gaussian_weights_unnormalised(capsys):
    def raw(radius, k):
        o = np.arange(k) - k // 2
        return np.exp(-o ** 2 / (2.0 * radius ** 2))

    assert_fails(checks.check_gaussian_weights, raw, capsys, "case 1 of 5", "sum to 1")


def test_gaussian_weights_sigma_not_squared(capsys):
    def wrong(radius, k):
        o = np.arange(k) - k // 2
        g = np.exp(-o ** 2 / (2.0 * radius))
        return g / g.sum()

    assert_fails(checks.check_gaussian_weights, wrong, capsys, "case 1 of 5", "weights")


def test_gaussian_weights_off_by_one_window(capsys):
    def off(radius, k):  # offsets 0..K-1 instead of centred on 0
        o = np.arange(k)
        g = np.exp(-o ** 2 / (2.0 * radius ** 2))
        return g / g.sum()

    assert_fails(checks.check_gaussian_weights, off, capsys, "largest error")


def test_gaussian_weights_nan_at_radius_zero(capsys):
    # right everywhere except that radius 0 divides by zero, which the exercise forbids
    def unfloored(radius, k):
        o = np.arange(k) - k // 2
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.exp(-o ** 2 / (2.0 * radius ** 2))
        return g / g.sum()

    assert_fails(checks.check_gaussian_weights, unfloored, capsys, "case 5 of 5", "radius 0",
                 "NaN", "floor sigma")


def test_gaussian_weights_wrong_length(capsys):
    assert_fails(checks.check_gaussian_weights, lambda r, k: weights_right(r, k + 1), capsys,
                 "shape (8,)", "expected (7,)")


# ---------------------------------------------------------------------------
# check_adjoint

def adjoint_sparse(op, stack):
    a = op.to_sparse()
    f, h, w, c = stack.shape
    cols = [a.T @ stack[..., ch].reshape(-1) for ch in range(c)]
    return np.stack(cols, axis=-1).reshape(h, w, c)


def test_adjoint_right(capsys):
    assert_passes(checks.check_adjoint, adjoint_sparse, capsys)
    assert_passes(checks.check_adjoint, lambda op, s: op.adjoint(s), capsys)


def test_adjoint_forgot_transpose(capsys):
    def no_transpose(op, stack):  # applies A's first block instead of A^T
        a = op.to_sparse()
        f, h, w, c = stack.shape
        first = a[:h * w]
        return np.stack([first @ stack[0, ..., ch].reshape(-1) for ch in range(c)],
                        -1).reshape(h, w, c)

    assert_fails(checks.check_adjoint, no_transpose, capsys, "case 1 of 3", "largest error")


def test_adjoint_channels_first(capsys):
    assert_fails(checks.check_adjoint, lambda op, s: np.moveaxis(op.adjoint(s), -1, 0),
                 capsys, "channel axis last")


def test_adjoint_only_one_channel(capsys):
    # works on the single-channel case only if channels are looped correctly
    assert_fails(checks.check_adjoint, lambda op, s: op.adjoint(s)[..., :1], capsys,
                 "case 1 of 3", "shape")


# ---------------------------------------------------------------------------
# check_fista_step

def fista_right(op, stack, x, y, t, step, bounds=(0.0, 1.0)):
    grad = op.adjoint(op.forward(y) - stack)
    x_new = np.clip(y - np.float32(step) * grad, bounds[0], bounds[1])
    t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
    y_new = x_new + np.float32((t - 1) / t_new) * (x_new - x)
    return x_new, y_new, t_new


def test_fista_step_right(capsys):
    assert_passes(checks.check_fista_step, fista_right, capsys)


def test_fista_step_forgot_clip(capsys):
    def no_clip(op, stack, x, y, t, step, bounds=(0.0, 1.0)):
        x_new = y - np.float32(step) * op.adjoint(op.forward(y) - stack)
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        return x_new, x_new + np.float32((t - 1) / t_new) * (x_new - x), t_new

    assert_fails(checks.check_fista_step, no_clip, capsys, "x_new", "clip")


def test_fista_step_ignores_bounds(capsys):
    def fixed_box(op, stack, x, y, t, step, bounds=(0.0, 1.0)):
        return fista_right(op, stack, x, y, t, step)

    assert_fails(checks.check_fista_step, fixed_box, capsys, "case 3 of 4", "bounds=(0.3, 0.6)")


def test_fista_step_wrong_gradient_sign(capsys):
    def ascent(op, stack, x, y, t, step, bounds=(0.0, 1.0)):
        x_new = np.clip(y + np.float32(step) * op.adjoint(op.forward(y) - stack), *bounds)
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        return x_new, x_new + np.float32((t - 1) / t_new) * (x_new - x), t_new

    assert_fails(checks.check_fista_step, ascent, capsys, "case 1 of 4", "x_new")


def test_fista_step_wrong_momentum(capsys):
    def new_t_in_beta(op, stack, x, y, t, step, bounds=(0.0, 1.0)):
        x_new, _, t_new = fista_right(op, stack, x, y, t, step, bounds)
        return x_new, x_new + np.float32((t_new - 1) / t_new) * (x_new - x), t_new

    assert_fails(checks.check_fista_step, new_t_in_beta, capsys, "case 1 of 4", "y_new",
                 "OLD t")


def test_fista_step_wrong_t(capsys):
    def t_plus_one(op, stack, x, y, t, step, bounds=(0.0, 1.0)):
        x_new, y_new, _ = fista_right(op, stack, x, y, t, step, bounds)
        return x_new, y_new, t + 1

    assert_fails(checks.check_fista_step, t_plus_one, capsys, "t_new: expected")


def test_fista_step_float64_leak(capsys):
    def leaky(op, stack, x, y, t, step, bounds=(0.0, 1.0)):
        x_new, _, _ = fista_right(op, stack, x, y, t, step, bounds)
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2  # a np.float64 scalar
        return x_new, x_new + ((t - 1) / t_new) * (x_new - x), float(t_new)

    assert_fails(checks.check_fista_step, leaky, capsys, "y_new has dtype float64",
                 "float32")


def test_fista_step_returns_two_values(capsys):
    assert_fails(checks.check_fista_step, lambda *a, **k: fista_right(*a, **k)[:2], capsys,
                 "(x_new, y_new, t_new)")


# ---------------------------------------------------------------------------
# check_power_iteration

def power_right(op, num_iters):
    h, w = op.image_shape
    v = np.random.default_rng(0).random((h, w)).astype(np.float32)
    v /= np.linalg.norm(v)
    est = 0.0
    for _ in range(num_iters):
        u = op.adjoint(op.forward(v))
        est = float(np.linalg.norm(u))
        v = u / np.float32(est)
    return est


def test_power_iteration_right(capsys):
    assert_passes(checks.check_power_iteration, power_right, capsys)
    assert_passes(checks.check_power_iteration,
                  lambda op, n: dl.lipschitz_constant(op, num_iters=n), capsys)  # with 2 % safety


def test_power_iteration_norm_not_squared(capsys):
    assert_fails(checks.check_power_iteration, lambda op, n: math.sqrt(power_right(op, n)),
                 capsys, "case 1 of 3", "||A||")


def test_power_iteration_too_few_iterations(capsys):
    def one_step(op, num_iters):  # ignores num_iters; one step from a spiky start
        h, w = op.image_shape
        v = np.zeros((h, w), dtype=np.float32)
        v[0, 0] = 1.0
        return float(np.linalg.norm(op.adjoint(op.forward(v))))

    assert_fails(checks.check_power_iteration, one_step, capsys, "estimate")


def test_power_iteration_returns_array(capsys):
    assert_fails(checks.check_power_iteration, lambda op, n: np.ones(3), capsys,
                 "single number")


# ---------------------------------------------------------------------------
# check_golden_section

def golden_right(f, lo, hi, tol):
    phi = (math.sqrt(5) - 1) / 2
    c, d = hi - phi * (hi - lo), lo + phi * (hi - lo)
    fc, fd = f(c), f(d)
    while hi - lo > tol:
        if fc <= fd:
            hi, d, fd = d, c, fc
            c = hi - phi * (hi - lo)
            fc = f(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + phi * (hi - lo)
            fd = f(d)
    return c if fc <= fd else d


def test_golden_section_right(capsys):
    assert_passes(checks.check_golden_section, golden_right, capsys)
    assert_passes(checks.check_golden_section,
                  lambda f, lo, hi, tol: dl.golden_section_search(f, lo, hi, xtol=tol)[0], capsys)


def test_golden_section_wrong_branch(capsys):
    def inverted(f, lo, hi, tol):  # keeps the wrong part of the bracket
        phi = (math.sqrt(5) - 1) / 2
        while hi - lo > tol:
            c, d = hi - phi * (hi - lo), lo + phi * (hi - lo)
            if f(c) > f(d):
                hi = d
            else:
                lo = c
        return (lo + hi) / 2

    assert_fails(checks.check_golden_section, inverted, capsys, "case 1 of 4", "z: expected")


def test_golden_section_returns_tuple(capsys):
    assert_fails(checks.check_golden_section,
                 lambda f, lo, hi, tol: dl.golden_section_search(f, lo, hi, xtol=tol), capsys,
                 "return only z")


def test_golden_section_brute_force_is_too_slow(capsys):
    def brute(f, lo, hi, tol):
        zs = np.arange(lo, hi + tol, tol / 2)
        return float(zs[np.argmin([f(z) for z in zs])])

    assert_fails(checks.check_golden_section, brute, capsys, "evaluated f", "0.618")


def test_golden_section_stops_early(capsys):
    # a loose stopping rule (10 * tol) misses the minimiser by more than tol
    assert_fails(checks.check_golden_section,
                 lambda f, lo, hi, tol: golden_right(f, lo, hi, 40 * tol), capsys, "z: expected")


def test_golden_section_outside_bracket(capsys):
    assert_fails(checks.check_golden_section, lambda f, lo, hi, tol: hi + 1.0, capsys,
                 "z: expected")


# ---------------------------------------------------------------------------
# check_grid_argmin

def test_grid_argmin_right(capsys):
    assert_passes(checks.check_grid_argmin, lambda v, c: c[np.argmin(v, axis=0)], capsys)


def test_grid_argmin_returns_index(capsys):
    assert_fails(checks.check_grid_argmin, lambda v, c: np.argmin(v, axis=0), capsys,
                 "case 1 of 4", "indices")


def test_grid_argmin_off_by_one(capsys):
    def shifted(v, c):
        return c[np.minimum(np.argmin(v, axis=0) + 1, len(c) - 1)]

    assert_fails(checks.check_grid_argmin, shifted, capsys, "case 1 of 4", "largest error")


def test_grid_argmin_uses_argmax(capsys):
    assert_fails(checks.check_grid_argmin, lambda v, c: c[np.argmax(v, axis=0)], capsys,
                 "LARGEST")


def test_grid_argmin_assumes_linear_spacing(capsys):
    def linear(v, c):  # rebuilds the candidates as if they were evenly spaced
        even = np.linspace(c[0], c[-1], len(c))
        return even[np.argmin(v, axis=0)]

    assert_fails(checks.check_grid_argmin, linear, capsys, "case 2 of 4", "unevenly")


def test_grid_argmin_wrong_axis(capsys):
    assert_fails(checks.check_grid_argmin, lambda v, c: c[np.argmin(v, axis=1)], capsys,
                 "shape")


# ---------------------------------------------------------------------------
# check_depth_metrics

def metrics_right(pred, gt):
    ratio = np.maximum(pred / gt, gt / pred)
    return {"rmse": np.sqrt(np.mean((pred - gt) ** 2)),
            "absrel": np.mean(np.abs(pred - gt) / gt),
            "delta1": np.mean(ratio < 1.25)}


def test_depth_metrics_right(capsys):
    assert_passes(checks.check_depth_metrics, metrics_right, capsys)
    assert_passes(checks.check_depth_metrics, lambda p, g: dl.depth_metrics(p, g), capsys)


def test_depth_metrics_absrel_divides_by_pred(capsys):
    def by_pred(pred, gt):
        out = metrics_right(pred, gt)
        out["absrel"] = np.mean(np.abs(pred - gt) / pred)
        return out

    assert_fails(checks.check_depth_metrics, by_pred, capsys, "case 1 of 4", "absrel",
                 "TRUE depth")


def test_depth_metrics_one_sided_ratio(capsys):
    def one_sided(pred, gt):
        out = metrics_right(pred, gt)
        out["delta1"] = np.mean(pred / gt < 1.25)
        return out

    assert_fails(checks.check_depth_metrics, one_sided, capsys, "delta1")


def test_depth_metrics_less_or_equal(capsys):
    def le(pred, gt):
        out = metrics_right(pred, gt)
        out["delta1"] = np.mean(np.maximum(pred / gt, gt / pred) <= 1.25)
        return out

    assert_fails(checks.check_depth_metrics, le, capsys, "case 4 of 4", "strictly")


def test_depth_metrics_mse_not_rmse(capsys):
    def mse(pred, gt):
        out = metrics_right(pred, gt)
        out["rmse"] = np.mean((pred - gt) ** 2)
        return out

    assert_fails(checks.check_depth_metrics, mse, capsys, "rmse", "sqrt")


def test_depth_metrics_missing_key(capsys):
    assert_fails(checks.check_depth_metrics,
                 lambda p, g: {"rmse": 0.0, "absrel": 0.0}, capsys, "no key 'delta1'")


def test_depth_metrics_not_a_dict(capsys):
    assert_fails(checks.check_depth_metrics, lambda p, g: (1.0, 2.0, 3.0), capsys,
                 "return a dict")


def test_checks_do_not_modify_or_depend_on_input_mutation(capsys):
    # a student's function that scribbles on its inputs must not corrupt the reference
    def scribble(pred, gt):
        out = metrics_right(pred.copy(), gt.copy())
        pred[...] = 0.0
        gt[...] = 1.0
        return out

    assert_passes(checks.check_depth_metrics, scribble, capsys)


# ---------------------------------------------------------------------------
# Enforcing the exercise text

def test_adjoint_with_a_instead_of_its_transpose_gets_a_hint(capsys):
    def a_not_transpose(op, stack):  # A @ stack: a shape error from SciPy
        a = op.to_sparse()
        f, h, w, c = stack.shape
        return np.stack([a @ stack[..., ch].reshape(-1) for ch in range(c)], -1)

    assert_fails(checks.check_adjoint, a_not_transpose, capsys, "raised ValueError",
                 "hint:", "TRANSPOSE")


def test_golden_section_two_evaluations_per_step_fails(capsys):
    def two_per_step(f, lo, hi, tol):  # right answer, but re-evaluates both points each step
        phi = (math.sqrt(5) - 1) / 2
        while hi - lo > tol:
            c, d = hi - phi * (hi - lo), lo + phi * (hi - lo)
            if f(c) <= f(d):
                hi = d
            else:
                lo = c
        return (lo + hi) / 2

    assert_fails(checks.check_golden_section, two_per_step, capsys, "evaluated f",
                 "one per step")


def test_golden_section_midpoint_without_evaluating_fails(capsys):
    assert_fails(checks.check_golden_section, lambda f, lo, hi, tol: (lo + hi) / 2, capsys,
                 "z: expected")


# ---------------------------------------------------------------------------
# The checks added in the second edition

def aif_loop_right(op, stack, num_iters, x0):
    step = 1.0 / dl.lipschitz_constant(op)
    x = y = np.asarray(x0, dtype=np.float32)
    t = 1.0
    for _ in range(num_iters):
        x, y, t = fista_right(op, stack, x, y, t, step)
    return x


def test_aif_loop(capsys):
    assert_passes(checks.check_aif_loop, aif_loop_right, capsys)

    def no_momentum(op, stack, num_iters, x0):
        step = 1.0 / dl.lipschitz_constant(op)
        x = np.asarray(x0, dtype=np.float32)
        for _ in range(num_iters):
            x, _, _ = fista_right(op, stack, x, x, 1.0, step)
        return x

    assert_fails(checks.check_aif_loop, no_momentum, capsys, "without momentum")
    assert_fails(checks.check_aif_loop, lambda op, s, n, x0: x0, capsys, "did not change")


def test_depth_from_focus(capsys):
    def dff(stack, camera):
        return np.asarray(camera.focus_distances)[np.argmax(dl.sharpness(stack), axis=0)]

    assert_passes(checks.check_depth_from_focus, dff, capsys)
    assert_fails(checks.check_depth_from_focus,
                 lambda s, c: np.argmax(dl.sharpness(s), axis=0).astype(float), capsys,
                 "indices")
    assert_fails(checks.check_depth_from_focus,
                 lambda s, c: np.asarray(c.focus_distances)[np.argmin(dl.sharpness(s), axis=0)],
                 capsys, "BLURRIEST")


def test_loss_confidence(capsys):
    def median_minus_min(volume):
        return np.median(volume, axis=0) - volume.min(axis=0)

    assert_passes(checks.check_loss_confidence, median_minus_min, capsys)
    # another sound choice passes too: the exercise leaves the formula open
    assert_passes(checks.check_loss_confidence, lambda v: v.mean(axis=0) - v.min(axis=0), capsys)
    assert_fails(checks.check_loss_confidence, lambda v: v.min(axis=0), capsys, "flat")
    assert_fails(checks.check_loss_confidence, lambda v: np.median(v, axis=0) / v.min(axis=0),
                 capsys)
    assert_fails(checks.check_loss_confidence, lambda v: v.max(axis=1) - v.min(axis=1), capsys,
                 "one value per pixel")


def disc_rows_right(radius, k):
    def antiderivative(t):
        t = np.clip(t, -radius, radius)
        return t * np.sqrt(radius ** 2 - t ** 2) + radius ** 2 * np.arcsin(t / radius)

    dy = np.arange(k) - k // 2
    return antiderivative(dy + 0.5) - antiderivative(dy - 0.5)


def test_disc_row_areas(capsys):
    assert_passes(checks.check_disc_row_areas, disc_rows_right, capsys)

    def unclipped(radius, k):
        dy = np.arange(k) - k // 2
        with np.errstate(invalid="ignore"):
            t = dy + 0.5
            return 2 * np.sqrt(np.maximum(radius ** 2 - dy ** 2, 0.0)) + 0 * t

    assert_fails(checks.check_disc_row_areas, unclipped, capsys, "pi r^2")
    assert_fails(checks.check_disc_row_areas, lambda r, k: disc_rows_right(r, k)[1:], capsys,
                 "one per row")


# Kernels for check_loss_kernel (module level: the simulator swaps the `cuda` module
# in a kernel's globals when it launches it).
@cuda.jit
def loss_kernel_right(x, b, w, out):
    px, py = cuda.grid(2)
    n_c, height, width = x.shape
    if py >= height or px >= width:
        return
    n_f, k = w.shape[0], w.shape[1]
    half = k // 2
    loss = float32(0.0)
    for i in range(n_f):
        for c in range(n_c):
            pred = float32(0.0)
            for a in range(k):
                yy = py + a - half
                for bb in range(k):
                    xx = px + bb - half
                    if 0 <= yy < height and 0 <= xx < width:
                        pred += w[i, a, py, px] * w[i, bb, py, px] * x[c, yy, xx]
            d = b[i, c, py, px] - pred
            loss += d * d
    out[py, px] = loss

@cuda.jit
def loss_kernel_without_blur(x, b, w, out):  # forgets the blur: compares b with x itself
    px, py = cuda.grid(2)
    n_c, height, width = x.shape
    if py < height and px < width:
        loss = float32(0.0)
        for i in range(w.shape[0]):
            for c in range(n_c):
                d = b[i, c, py, px] - x[c, py, px]
                loss += d * d
        out[py, px] = loss



def test_loss_kernel_in_the_simulator(capsys):
    from dfd_lite.engines import cuda_simulated

    if not cuda_simulated():
        pytest.skip("the check is exercised in Numba's CUDA simulator")
    assert_passes(checks.check_loss_kernel, loss_kernel_right, capsys)
    assert_passes(lambda k: checks.check_loss_kernel(k, seed=3), loss_kernel_right, capsys)
    assert_fails(checks.check_loss_kernel, loss_kernel_without_blur, capsys, "OUTPUT pixel")
    assert_fails(checks.check_loss_kernel, lambda *a: None, capsys, "@cuda.jit")


# ---------------------------------------------------------------------------
# Fresh cases (the grader's), quiet mode, and what a notebook shows

RIGHT_ANSWERS = {
    "check_coc_radius": coc_right,
    "check_gaussian_weights": weights_right,
    "check_adjoint": adjoint_sparse,
    "check_fista_step": fista_right,
    "check_power_iteration": power_right,
    "check_aif_loop": aif_loop_right,
    "check_golden_section": golden_right,
    "check_grid_argmin": lambda v, c: np.asarray(c)[np.argmin(v, axis=0)],
    "check_depth_metrics": metrics_right,
    "check_loss_confidence": lambda v: np.median(v, axis=0) - v.min(axis=0),
    "check_disc_row_areas": disc_rows_right,
    "check_box_average": lambda v, w: ndi.uniform_filter(v, size=(1, w, w), mode="nearest"),
    "check_depth_from_focus":
        lambda s, c: np.asarray(c.focus_distances)[np.argmax(dl.sharpness(s), axis=0)],
}


def test_every_python_check_has_a_right_answer_here():
    # check_dfd_solver runs a whole solver: tested below and by the grader's capstone tests
    assert set(RIGHT_ANSWERS) | {"check_dfd_solver"} == {c.__name__ for c in ALL_CHECKS}


@pytest.mark.parametrize("name", sorted(RIGHT_ANSWERS))
@pytest.mark.parametrize("seed", [1, 2026, 99991])
def test_right_answers_pass_fresh_cases_quietly(name, seed, capsys):
    result = getattr(checks, name)(RIGHT_ANSWERS[name], seed=seed, verbose=False)
    assert result.passed, result.message
    assert result.name == name and "cases passed" in result.message
    assert capsys.readouterr().out == ""


def memorise(check, right):
    """A "solution" that records the book's cases' answers and replays them."""
    answers = []

    def recorder(*args, **kwargs):
        answers.append(right(*args, **kwargs))
        return answers[-1]

    check(recorder, verbose=False)
    replay = iter(answers)
    return lambda *args, **kwargs: next(replay)


@pytest.mark.parametrize("name", ["check_coc_radius", "check_gaussian_weights",
                                  "check_adjoint", "check_grid_argmin", "check_depth_metrics",
                                  "check_disc_row_areas", "check_aif_loop"])
def test_answers_memorised_from_the_book_fail_fresh_cases(name):
    check = getattr(checks, name)
    replay = memorise(check, RIGHT_ANSWERS[name])
    assert check(replay, verbose=False).passed  # the book's own cases: indistinguishable
    replay = memorise(check, RIGHT_ANSWERS[name])
    assert not check(replay, seed=7, verbose=False).passed


def test_fresh_cases_differ_between_seeds():
    seen = []
    for seed in (1, 2):
        calls = []
        checks.check_coc_radius(
            lambda d, c, calls=calls: calls.append(np.array(d)) or dl.coc_radius(d, c),
            seed=seed, verbose=False)
        seen.append(calls[0])
    assert seen[0].shape != seen[1].shape or not np.allclose(seen[0], seen[1])


def test_result_is_truthy_and_not_echoed_in_a_notebook(capsys):
    result = checks.check_grid_argmin(RIGHT_ANSWERS["check_grid_argmin"])
    assert result and result.passed and result.num_cases == 4
    printed = capsys.readouterr().out
    assert printed.strip() == result.message
    # IPython calls _ipython_display_ instead of echoing repr(result) below the cell
    assert result._ipython_display_() is None
    assert capsys.readouterr().out == ""
    failed = checks.check_grid_argmin(lambda v, c: None, verbose=False)
    assert not failed and "forget to `return`" in failed.message


def test_dfd_solver_check_measures_the_rmse_and_names_broken_parts():
    scene, _, _, _ = checks.capstone_problem()
    perfect = checks.check_dfd_solver(lambda s, c, z, k: (scene.depth, scene.aif),
                                      verbose=False)
    assert perfect and perfect.measured["rmse"] == 0.0
    assert "0.000 m on the notebook's stack, below the target 0.7 m" in perfect.message

    def flat(stack, camera, candidates, kernel_size):
        return np.full(stack.shape[1:3], 3.0), stack[0]

    missed = checks.check_dfd_solver(flat, verbose=False)
    assert not missed and missed.measured["rmse"] > 0.7
    assert "every part passes its check" in missed.message and "kernel_size=K" in missed.message
    parts = {"grid_argmin_mine": (checks.check_grid_argmin, lambda v, c: None),
             "coc_radius_mine": (checks.check_coc_radius, coc_right)}
    named = checks.check_dfd_solver(flat, parts=parts, verbose=False)
    assert "these parts fail their checks: grid_argmin_mine" in named.message
    wrong_shape = checks.check_dfd_solver(lambda s, c, z, k: (scene.depth.T, None),
                                          verbose=False)
    assert "shape (80, 64)" in wrong_shape.message


def test_box_average_hints():
    import scipy.ndimage as ndi

    def sums(v, w):
        return ndi.uniform_filter(v, size=(1, w, w), mode="nearest") * w * w

    def zero_padded(v, w):
        return ndi.uniform_filter(v, size=(1, w, w), mode="constant")

    assert "divide by window**2" in checks.check_box_average(sums, verbose=False).message
    assert "repeat the edge" in checks.check_box_average(zero_padded, verbose=False).message
