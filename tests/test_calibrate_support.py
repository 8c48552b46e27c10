"""Blur calibration, the PSF window from the optics, and the unknown-boundary solve."""

import warnings

import numpy as np
import pytest
import scipy.ndimage as ndi

import dfd_lite as dl
from dfd_lite import engines
from dfd_lite.optics import (MAX_AUTO_KERNEL, optics_kernel_size, support_half_width,
                             thin_lens_coefficients, warn_if_truncated)

NYU = dl.Camera.nyuv2()


def _target(side=96, seed=0):
    """A printed noise pattern: strong texture at every scale."""
    rng = np.random.default_rng(seed)
    return np.clip(ndi.gaussian_filter(rng.random((side, side)), 0.7) * 3 - 1, 0, 1)


@pytest.mark.parametrize("psf, true_scale", [("disc", 0.8), ("gaussian", 0.55)])
def test_calibration_recovers_a_known_blur_scale(psf, true_scale):
    truth = NYU.with_psf(psf, blur_scale=true_scale)
    stack = dl.render_physical(_target(), np.full((96, 96), 2.0), truth, psf=psf,
                               read_noise=0.005, bit_depth=8)
    cal = dl.calibrate_blur(stack, NYU.with_psf(psf), 2.0, crop=48)
    assert cal.blur_scale == pytest.approx(true_scale, rel=0.03)
    assert cal.camera.blur_scale == cal.blur_scale and cal.camera.psf == psf
    assert cal.residual < 0.02


def test_calibration_can_fit_the_residual_blur_too():
    truth = NYU.with_psf("disc", blur_scale=0.9)
    truth = dl.Camera(truth.focal_length, truth.f_number, truth.pixel_size,
                      truth.focus_distances, 1.5, "disc", 0.9)
    stack = dl.render_physical(_target(seed=1), np.full((96, 96), 2.5), truth)
    cal = dl.calibrate_blur(stack, NYU.with_psf("disc"), 2.5, fit_min_radius=True, crop=48)
    assert cal.blur_scale == pytest.approx(0.9, rel=0.03)
    assert cal.min_radius == pytest.approx(1.5, rel=0.05)


def test_calibration_refuses_what_it_cannot_fit():
    stack = np.random.default_rng(0).random((1, 16, 16))
    with pytest.raises(ValueError, match="at least two focus distances"):
        dl.calibrate_blur(stack, NYU.with_focus((2.0,)), 2.0)
    with pytest.raises(ValueError, match="scale_bounds"):
        dl.calibrate_blur(np.random.default_rng(0).random((5, 16, 16)), NYU, 2.0,
                          scale_bounds=(2.0, 1.0))
    with pytest.raises(ValueError, match="depth"):
        dl.calibrate_blur(np.random.default_rng(0).random((5, 16, 16)), NYU, 0.01)


@pytest.mark.parametrize("radius", [0.3, 1.0, 2.0, 4.6, 7.5])
def test_support_holds_the_whole_disc_and_three_sigma(radius):
    half = support_half_width(radius, "disc")
    wide = dl.psf_weights(radius, 2 * half + 5, psf="disc")
    assert np.all(wide[:2] == 0) and np.all(wide[-2:] == 0)          # nothing beyond
    assert np.all(wide[:, :2] == 0) and np.all(wide[:, -2:] == 0)
    if radius >= 1.0:
        assert wide[2].sum() > 0                                      # the edge row is used
    assert support_half_width(radius, "gaussian") == max(1, int(np.ceil(3 * radius)))


def test_optics_kernel_size_covers_the_range_up_to_the_cap():
    disc = NYU.with_psf("disc")
    k = optics_kernel_size(disc, (2.0, 5.0))
    widest = dl.psf_radius(np.array([2.0, 5.0]), disc).max()
    assert k == 2 * support_half_width(widest, "disc") + 1
    assert optics_kernel_size(disc, (0.1, 10.0)) == MAX_AUTO_KERNEL
    assert optics_kernel_size(NYU, (2.0, 5.0)) > k                   # 3 sigma = 1.5 x the disc


def test_truncation_warning_names_the_window_only_when_the_scene_needs_more():
    disc = NYU.with_psf("disc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_truncated(np.full((4, 4), 3.0), disc, 21) == 0.0
    stray = np.full((10, 10), 3.0)
    stray[0, 0] = 0.3                           # 1 % of the pixels: an outlier, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_truncated(stray, disc, 21) == pytest.approx(0.01)
    depth = np.full((4, 4), 3.0)
    depth[0] = 0.3
    with pytest.warns(UserWarning, match=r"25.0 % of the pixels .*kernel_size=21"):
        assert warn_if_truncated(depth, disc, 21) == pytest.approx(0.25)


def test_operator_from_a_canvas_with_a_margin_is_dot_tested():
    eng = engines.resolve("cpu")
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.8, 6.0, (9, 12)).astype(np.float32)
    for psf in ("gaussian", "disc"):
        cam = NYU.with_psf(psf)
        wts = eng.weights(depth, eng.optics(thin_lens_coefficients(cam), psf), 7)
        for margin in (0, 3, 4, 9):
            x = rng.standard_normal((2, 9 + 2 * margin, 12 + 2 * margin)).astype(np.float32)
            y = rng.standard_normal((5, 2, 9, 12)).astype(np.float32)
            ax = eng.forward(x, wts).astype(np.float64)
            aty = eng.adjoint(y, wts, margin=margin).astype(np.float64)
            assert aty.shape == x.shape
            scale = np.linalg.norm(ax) * np.linalg.norm(y)          # not the (cancelling) sum
            assert abs((ax * y).sum() - (x * aty).sum()) <= 1e-6 * scale
            # pixels beyond the PSF's reach get no gradient
            reach = 4 if psf == "disc" else 3
            if margin > reach:
                assert np.all(aty[:, 0] == 0) and np.all(aty[:, :, -1] == 0)


def test_unknown_boundary_beats_a_black_one_on_a_photograph_like_stack():
    scene = dl.synthetic_scene((48, 64), seed=2)
    disc = NYU.with_psf("disc")
    stack = dl.render_physical(scene.aif, scene.depth, disc, spread="gather")
    kwargs = dict(num_epochs=3, aif_num_iters=60, kernel_size=15, progress=False,
                  depth_range=(0.5, 8.0), num_depths=40, backend="cpu")
    black = dl.solve(stack, disc, boundary="zero", **kwargs)
    unknown = dl.solve(stack, disc, boundary="extend", **kwargs)
    err = {name: np.sqrt(np.mean((r.depth - scene.depth) ** 2))
           for name, r in (("zero", black), ("extend", unknown))}
    assert unknown.aif.shape == scene.aif.shape and unknown.kernel_size == 15
    assert err["extend"] < 0.7 * err["zero"], err
    with pytest.raises(ValueError, match="boundary must be one of"):
        dl.solve(stack, disc, boundary="mirror", **kwargs)


def test_solve_picks_the_window_and_the_border_by_psf():
    scene = dl.synthetic_scene((24, 32), seed=1)
    kwargs = dict(num_epochs=1, aif_num_iters=2, num_depths=8, progress=False, backend="cpu")
    disc = NYU.with_psf("disc")
    stack = dl.render_stack(scene.aif, scene.depth, disc, kernel_size=15)
    res = dl.solve(stack, disc, depth_range=(2.0, 5.0), **kwargs)
    assert res.kernel_size == optics_kernel_size(disc, (2.0, 5.0))
    paper = dl.solve(stack, NYU, depth_range=(2.0, 5.0), **kwargs)
    assert paper.kernel_size == dl.default_kernel_size(24, 32)
    # ... and the border: unknown for the disc (the physical model), black
    # for the paper's Gaussian (its model)
    assert (res.boundary, paper.boundary) == ("extend", "zero")
    np.testing.assert_array_equal(
        res.aif, dl.solve(stack, disc, depth_range=(2.0, 5.0), boundary="extend", **kwargs).aif)
    np.testing.assert_array_equal(
        paper.aif, dl.solve(stack, NYU, depth_range=(2.0, 5.0), boundary="zero", **kwargs).aif)
    # the paper's sigma = r needs 3 r > 20 px here: the capped window says so
    with pytest.warns(UserWarning, match="kernel_size=41"):
        wide = dl.solve(stack, NYU, kernel_size="optics", depth_range=(2.0, 5.0), **kwargs)
    assert wide.kernel_size == optics_kernel_size(NYU, (2.0, 5.0)) == MAX_AUTO_KERNEL
