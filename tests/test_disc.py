"""The disc PSF through the model: weights, operator, adjoint, losses."""

import numpy as np
import pytest
import scipy.ndimage as ndi

import dfd_lite as dl
from dfd_lite import engines
from dfd_lite.psf import disc_psf

DISC = dl.Camera.nyuv2().with_psf("disc")


def _random_depth(shape, seed=0):
    return np.random.default_rng(seed).uniform(0.6, 9.0, shape)


def _row_box_disc(radius, k, samples=200_001):
    """The model's disc built independently: strip areas by numerical integration."""
    half = k // 2
    t = np.linspace(-radius, radius, samples)
    chord = 2 * np.sqrt(np.maximum(radius ** 2 - t ** 2, 0))
    out = np.zeros((k, k))
    for a in range(k):
        dy = a - half
        inside = (t >= dy - 0.5) & (t <= dy + 0.5)
        area = np.trapezoid(chord[inside], t[inside]) if inside.sum() > 1 else 0.0
        hw = min(area / 2, half + 0.5)
        for b in range(k):
            dx = b - half
            out[a, b] = max(min(dx + 0.5, hw) - max(dx - 0.5, -hw), 0.0)
    return out / out.sum()


@pytest.mark.parametrize("radius", [0.7, 2.0, 3.4, 5.5])
def test_disc_weights_match_numerical_integration(radius):
    k = 2 * int(np.ceil(radius)) + 3
    got = dl.psf_weights(radius, k, psf="disc")
    np.testing.assert_allclose(got, _row_box_disc(radius, k), atol=2e-5)


@pytest.mark.parametrize("radius", [1.5, 3.0, 6.25])
def test_model_disc_has_the_true_discs_row_sums_and_spread(radius):
    # same rows as exact pixel coverage, and the second moment of a disc: r^2 / 4
    exact = disc_psf(radius, supersample=64)
    k = exact.shape[0]
    model = dl.psf_weights(radius, k, psf="disc").astype(np.float64)
    np.testing.assert_allclose(model.sum(1), exact.sum(1), atol=2e-3)
    o = np.arange(k) - k // 2
    var = (model.sum(1) * o ** 2).sum()
    assert var == pytest.approx(radius ** 2 / 4, rel=0.06)
    assert np.abs(model - exact).sum() < 0.25          # differs only at each row's ends


@pytest.mark.parametrize("shape, k", [((13, 17), 3), ((16, 11), 9), ((9, 30), 13)])
def test_disc_dot_test(shape, k):
    op = dl.BlurOperator(_random_depth(shape, k), DISC, kernel_size=k, backend="cpu")
    assert dl.dot_test(op, seed=k, rtol=1e-5)


@pytest.mark.parametrize("shape, k", [((12, 15), 5), ((17, 11), 9)])
def test_disc_operator_equals_its_sparse_matrix(shape, k):
    depth = _random_depth(shape, 3)
    op = dl.BlurOperator(depth, DISC, kernel_size=k, backend="cpu")
    mat = dl.blur_matrix(depth, DISC, kernel_size=k).toarray()
    rng = np.random.default_rng(1)
    x = rng.random(shape + (2,)).astype(np.float32)
    y = rng.random((5,) + shape + (2,)).astype(np.float32)
    fwd = np.stack([(mat @ x[..., c].ravel()).reshape((5,) + shape) for c in range(2)], -1)
    adj = np.stack([(mat.T @ y[..., c].ravel()).reshape(shape) for c in range(2)], -1)
    np.testing.assert_allclose(op.forward(x), fwd, atol=2e-6)
    np.testing.assert_allclose(op.adjoint(y), adj, atol=2e-5)
    # the matrix rows are the PSFs: each sums to 1 away from the border
    h = k // 2
    rows = mat.sum(1).reshape((5,) + shape)[:, h:-h, h:-h]
    np.testing.assert_allclose(rows, 1.0, atol=1e-5)


def test_disc_constant_depth_equals_blur_constant_and_grid_losses():
    shape, k = (20, 23), 11
    x = np.random.default_rng(2).random(shape + (3,)).astype(np.float32)
    cands = np.array([0.8, 2.0, 3.3, 7.0])
    stack = dl.BlurOperator(_random_depth(shape), DISC, kernel_size=k).forward(x)
    volume = dl.depth_loss_volume(x, stack, DISC, cands, kernel_size=k, backend="cpu")
    for j, z in enumerate(cands):
        op = dl.BlurOperator(np.full(shape, z), DISC, kernel_size=k, backend="cpu")
        pred = op.forward(x)
        for f, r in enumerate(op.radii[:, 0, 0]):
            np.testing.assert_allclose(
                pred[f], dl.blur_constant(x, r, kernel_size=k, psf="disc"), atol=2e-6)
        loss = ((pred - stack) ** 2).sum(axis=(0, 3))
        np.testing.assert_allclose(volume[j], loss, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("step", [None, 0.25, 0.4])
def test_radius_bank_reproduces_every_radius(step):
    radii = dl.psf_radius(np.linspace(0.5, 9.0, 37), DISC).T.astype(np.float32)
    radii[:3] = 2.0                            # on a multiple of 0.25, and shared
    bank = engines.radius_bank(radii, step)
    assert np.all(np.diff(bank.radii) > 0)
    assert bank.lower.shape == bank.weight.shape == radii.shape
    assert np.all((bank.weight >= 0) & (bank.weight < 1))
    mixed = bank.weight > 0
    upper = np.where(mixed, bank.lower + 1, bank.lower)
    assert upper.max() < bank.radii.size
    # every blur the bank holds is read by some candidate and slice
    assert set(np.unique(np.concatenate([bank.lower.ravel(), upper.ravel()]))) == \
        set(range(bank.radii.size))
    lo, hi = bank.radii[bank.lower], bank.radii[upper]
    np.testing.assert_allclose((1 - bank.weight) * lo + bank.weight * hi, radii, rtol=1e-6)
    if step is None:
        assert not mixed.any() and bank.radii.size == np.unique(radii).size
    else:
        np.testing.assert_allclose(bank.radii / step, np.round(bank.radii / step), atol=1e-4)
        assert np.all(hi[mixed] - lo[mixed] == pytest.approx(step, abs=1e-5))
        assert not mixed[:3].any()             # a radius on a multiple reads one blur
        assert bank.radii.size < radii.size / 2


def test_disc_bank_losses_blend_two_exact_discs():
    # the oracle: blur_constant at the two multiples of the step around each
    # radius, mixed linearly, against the stack, written without the engine
    shape, k, step = (18, 21), 13, 0.25
    rng = np.random.default_rng(4)
    x = rng.random(shape + (2,)).astype(np.float32)
    stack = rng.random((5,) + shape + (2,)).astype(np.float32)
    cands = np.array([0.9, 1.7, 4.2])
    radii = dl.psf_radius(cands, DISC).T.astype(np.float32)
    eng = engines.resolve("cpu", psf="disc")
    out = np.empty((3,) + shape, dtype=np.float32)
    eng.constant_depth_losses(np.ascontiguousarray(np.moveaxis(x, -1, 0)),
                              np.ascontiguousarray(np.moveaxis(stack, -1, 1)), radii, k, out,
                              "disc", radius_step=step)
    for j in range(3):
        want = np.zeros(shape)
        for f in range(5):
            r = float(radii[j, f])
            lo = np.floor(r / step) * step
            t = (r - lo) / step
            pred = (1 - t) * dl.blur_constant(x, lo, kernel_size=k, psf="disc") + \
                t * dl.blur_constant(x, lo + step, kernel_size=k, psf="disc")
            want += ((pred - stack[f]) ** 2).sum(-1)
        np.testing.assert_allclose(out[j], want, rtol=1e-4, atol=1e-6)


def test_disc_grid_bank_picks_nearly_the_exact_candidates():
    # the quantised bank (DISC_RADIUS_STEP) against exact radii on one scene:
    # the loss maps stay close and the grid's picks agree
    from dfd_lite.depth import DISC_RADIUS_STEP
    scene = dl.synthetic_scene((40, 48), seed=5)
    stack = dl.render_stack(scene.aif, scene.depth, DISC, kernel_size=15)
    cands = dl.depth_candidates((0.5, 8.0), 60)
    exact = dl.depth_loss_volume(scene.aif, stack, DISC, cands, kernel_size=15, backend="cpu")
    eng = engines.resolve("cpu", psf="disc")
    radii = dl.psf_radius(cands, DISC).T.astype(np.float32)
    banked = np.empty_like(exact)
    eng.constant_depth_losses(np.ascontiguousarray(np.moveaxis(scene.aif, -1, 0)),
                              np.ascontiguousarray(np.moveaxis(stack, -1, 1)), radii, 15,
                              banked, "disc", radius_step=DISC_RADIUS_STEP)
    assert np.abs(banked - exact).max() < 0.01 * exact.max()
    assert not np.array_equal(banked, exact)   # the bank is really in use
    agree = np.abs(cands[banked.argmin(0)] - cands[exact.argmin(0)]) <= cands[1] - cands[0]
    assert agree.mean() > 0.9


def test_disc_grid_search_recovers_depth_on_its_own_model():
    scene = dl.synthetic_scene((40, 48), seed=3)
    stack = dl.render_stack(scene.aif, scene.depth, DISC, kernel_size=15)
    cands = dl.depth_candidates((0.5, 8.0), 60)
    res = dl.depth_step(scene.aif, stack, DISC, cands, kernel_size=15, backend="cpu")
    err = np.abs(res.depth - scene.depth)[4:-4, 4:-4]
    assert np.median(err) < 0.02


def test_gaussian_and_disc_of_equal_spread_are_close_but_not_equal():
    # blur_scale = 0.5 makes the Gaussian's sigma the disc's per-axis std
    x = ndi.gaussian_filter(np.random.default_rng(5).random((30, 30)), 1.0)
    depth = np.full((30, 30), 1.6)
    disc = dl.BlurOperator(depth, DISC, kernel_size=21).forward(x)
    gauss = dl.BlurOperator(depth, dl.Camera.nyuv2().with_psf(blur_scale=0.5),
                            kernel_size=21).forward(x)
    paper = dl.BlurOperator(depth, dl.Camera.nyuv2(), kernel_size=21).forward(x)
    inner = (slice(None), slice(10, -10), slice(10, -10))
    d_matched = np.abs(disc - gauss)[inner].mean()
    d_paper = np.abs(disc - paper)[inner].mean()
    assert 0 < d_matched < 0.5 * d_paper


def test_blur_scale_scales_the_psf_radius():
    cam = dl.Camera.nyuv2().with_psf(blur_scale=0.7)
    z = np.array([1.3, 4.0, 8.0])
    np.testing.assert_allclose(dl.psf_radius(z, cam), 0.7 * dl.coc_radius(z, cam))
    op = dl.BlurOperator(np.full((6, 6), 3.0), cam, kernel_size=5)
    np.testing.assert_allclose(op.radii[:, 0, 0], 0.7 * dl.coc_radius(3.0, cam), rtol=1e-6)


def test_camera_psf_validation_and_round_trip(tmp_path):
    with pytest.raises(ValueError, match="psf must be one of"):
        dl.Camera.nyuv2().with_psf("box")
    with pytest.raises(ValueError, match="blur_scale"):
        dl.Camera.nyuv2().with_psf(blur_scale=0.0)
    with pytest.raises(TypeError, match="blur_scale"):
        dl.Camera.nyuv2().with_psf(blur_scale="1")
    cam = dl.Camera.nyuv2().with_psf("disc", blur_scale=0.8)
    assert cam.with_focus((1.0, 2.0)).psf == "disc"
    stack = np.zeros((5, 8, 8, 3), dtype=np.float32)
    dl.save_stack(tmp_path / "s.npz", stack + 0.5, cam)
    assert dl.load_stack(tmp_path / "s.npz")["camera"] == cam
    assert dl.Camera.nyuv2().psf == "gaussian" and dl.Camera.nyuv2().blur_scale == 1.0


def test_engines_choose_and_refuse_by_psf():
    assert engines.ENGINE_PSFS["cpu"] == ("gaussian", "disc")
    # "auto" never hands the disc to an engine that lacks it
    assert engines.resolve("auto", psf="disc").name == "cpu"

# atol: the box sums are differences of float32 prefix sums along the padded
# row, whose rounding grows with the row's length (about 80 at 150 columns)
@pytest.mark.parametrize("shape, axis, atol", [((24, 10), 0, 2e-6), ((9, 150), 1, 1e-5)])
def test_disc_operator_in_a_wide_window_equals_its_sparse_matrix(shape, axis, atol):
    # depth varies down the image (or across it, over three blocks of
    # EXTENT_COLUMNS), so in every slice some rows (blocks) hold only small
    # discs and the CPU kernels skip the window's rows those discs do not reach
    k = 25
    rng = np.random.default_rng(4)
    ramp = np.linspace(0.8, 9.0, shape[axis])
    depth = (ramp[:, None] if axis == 0 else ramp[None, :]) + rng.uniform(0, 0.05, shape)
    op = dl.BlurOperator(depth, DISC, kernel_size=k, backend="cpu")
    extent = op.weights.row_extent
    assert extent.shape == (5, shape[0], -(-shape[1] // 64))
    assert extent.min() < 4 and extent.max() == k // 2 + 1
    mat = dl.blur_matrix(depth, DISC, kernel_size=k).toarray()
    x = rng.random(shape).astype(np.float32)
    y = rng.random((5,) + shape).astype(np.float32)
    np.testing.assert_allclose(op.forward(x), (mat @ x.ravel()).reshape((5,) + shape), atol=atol)
    np.testing.assert_allclose(op.adjoint(y), (mat.T @ y.ravel()).reshape(shape), atol=2e-5)



def test_disc_adjoint_in_parallel_bands_equals_its_sparse_matrix():
    # a tall image, so the adjoint's bands of one colour run side by side:
    # at the narrowest band it allows (K rows) and at the engine's choice
    from dfd_lite.engines._cpu_disc import (adjoint_band, disc_adjoint_kernel,
                                            scaled_residual_kernel)
    k, shape = 25, (130, 12)
    rng = np.random.default_rng(5)
    depth = rng.uniform(0.6, 9.0, shape)
    op = dl.BlurOperator(depth, DISC, kernel_size=k, backend="cpu")
    w = op.weights
    y = rng.random((5, 1) + shape).astype(np.float32)
    mat = dl.blur_matrix(depth, DISC, kernel_size=k).toarray()
    expected = (mat.T @ y.ravel().astype(np.float64)).reshape(shape)
    np.testing.assert_allclose(op.adjoint(y[:, 0]), expected, atol=2e-5)
    scaled = np.empty_like(y)
    scaled_residual_kernel(y, y, False, w.inv_area, scaled)
    pad = k // 2 + 1
    assert adjoint_band(shape[0], k) >= k
    for band in (k, adjoint_band(shape[0], k)):
        outpad = np.zeros((1, shape[0] + 2 * pad, shape[1] + 2 * pad), dtype=np.float32)
        disc_adjoint_kernel(scaled, w.half_width, w.row_extent, band, outpad)
        np.testing.assert_allclose(outpad[0, pad:-pad, pad:-pad], expected, atol=2e-5)


def test_disc_operator_default_window_holds_the_widest_psf():
    depth = _random_depth((20, 24), 8)
    op = dl.BlurOperator(depth, DISC)
    widest = dl.psf_radius(depth, DISC).max()
    assert op.kernel_size // 2 == dl.optics.support_half_width(widest, "disc")
    wide = dl.BlurOperator(depth, DISC, kernel_size=op.kernel_size + 8)
    x = np.random.default_rng(0).random((20, 24))
    np.testing.assert_allclose(op.forward(x), wide.forward(x), atol=1e-6)   # nothing truncated


def test_prefix_sums_add_rows_as_numpy_does():
    from dfd_lite.engines._cpu_disc import prefix_sums
    rows = np.random.default_rng(3).random((2, 5, 37)).astype(np.float32)
    expected = np.zeros((2, 5, 38), dtype=np.float32)
    expected[..., 1:] = np.cumsum(rows, axis=-1, dtype=np.float64)
    np.testing.assert_array_equal(prefix_sums(rows), expected)
