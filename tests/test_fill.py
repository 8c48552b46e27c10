"""fill_depth and weighted_median_depth: against direct loops, their properties, and what they
do to a noisy solve."""

import numpy as np
import pytest

import dfd_lite as dl
from dfd_lite.fill import MAX_RADIUS
from dfd_lite.solve import MEDIAN_RADIUS


def _neighbourhoods(depth, std, image, radius, sigma_color, std_floor):
    # the definition, one pixel and one neighbour at a time (edge padding):
    # every pixel's neighbours' depths and weights
    h, w = depth.shape
    for y in range(h):
        for x in range(w):
            values, weights = [], []
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    qy, qx = min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1)
                    spatial = np.exp(-(dy * dy + dx * dx) / (2 * (radius / 2) ** 2))
                    color = np.exp(-np.sum((image[qy, qx] - image[y, x]) ** 2)
                                   / (2 * sigma_color ** 2))
                    weights.append(spatial * color / (std[qy, qx] ** 2 + std_floor ** 2))
                    values.append(depth[qy, qx])
            yield y, x, np.array(values, np.float64), np.array(weights)


def _fill_loops(depth, std, image, radius, sigma_color, std_floor):
    out = np.empty(depth.shape)
    for y, x, values, weights in _neighbourhoods(depth, std, image, radius, sigma_color,
                                                 std_floor):
        out[y, x] = np.sum(weights * values) / np.sum(weights)
    return out


def _l1_cost(values, weights, d):
    return np.sum(weights * np.abs(values - d))


def test_matches_the_definition():
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 5, (9, 11)).astype(np.float32)
    std = rng.uniform(0, 0.5, (9, 11)).astype(np.float32)
    image = rng.uniform(0, 1, (9, 11, 3)).astype(np.float32)
    for radius, sigma_color in ((1, 0.3), (3, 0.1)):
        got = dl.fill_depth(depth, std, image, radius=radius, sigma_color=sigma_color)
        np.testing.assert_allclose(got, _fill_loops(depth, std, image, radius, sigma_color, 0.01),
                                   rtol=2e-5)


def test_confident_pixels_win_and_image_edges_hold():
    # two halves of different colour and depth; every pixel unsure except one
    # confident pixel on each side, which must set its side's depth, not the other's
    depth = np.where(np.arange(20) < 10, 2.0, 5.0)[None, :].repeat(12, 0).astype(np.float32)
    image = np.where(np.arange(20) < 10, 0.2, 0.8)[None, :, None].repeat(12, 0).repeat(3, 2)
    noisy = depth + np.random.default_rng(1).normal(0, 0.3, depth.shape).astype(np.float32)
    std = np.full(depth.shape, 1.0, np.float32)
    std[6, 5] = std[6, 14] = 0.0
    noisy[6, 5], noisy[6, 14] = 2.0, 5.0
    filled = dl.fill_depth(noisy, std, image, radius=7)
    assert filled[6, 5] == pytest.approx(2.0, abs=1e-3) and filled[6, 14] == pytest.approx(5.0, abs=1e-3)
    # the unsure pixels near each confident one take its depth, across no image edge
    assert np.abs(filled[4:9, 3:8] - 2.0).max() < 0.05
    assert np.abs(filled[4:9, 12:17] - 5.0).max() < 0.05
    # a constant map stays constant
    flat = np.full((8, 8), 3.0, np.float32)
    np.testing.assert_allclose(dl.fill_depth(flat, np.ones((8, 8)), np.zeros((8, 8))), 3.0,
                               rtol=1e-6)


def test_weighted_median_minimises_the_weighted_l1_cost():
    # an independent oracle: the weighted median is a minimiser of
    # sum_q w_q |d - d_q|, and one of the neighbourhood's own depths
    rng = np.random.default_rng(2)
    depth = rng.uniform(1, 5, (9, 11)).astype(np.float32)
    std = rng.uniform(0, 0.5, (9, 11)).astype(np.float32)
    image = rng.uniform(0, 1, (9, 11, 3)).astype(np.float32)
    for radius, sigma_color, with_std in ((1, 0.3, True), (3, 0.1, True), (2, 0.2, False)):
        got = dl.weighted_median_depth(depth, image, depth_std=std if with_std else None,
                                       radius=radius, sigma_color=sigma_color)
        assert got.dtype == np.float32 and got.shape == depth.shape
        neighbours = _neighbourhoods(depth, std if with_std else np.zeros_like(std), image,
                                     radius, sigma_color, 0.01)
        for y, x, values, weights in neighbours:
            assert got[y, x] in values
            best = min(_l1_cost(values, weights, v) for v in values)
            assert _l1_cost(values, weights, got[y, x]) <= best * (1 + 1e-5) + 1e-12


def test_weighted_median_keeps_edges_and_drops_outliers():
    # two layers of different colour and depth, with isolated wrong depths:
    # the median restores both layers exactly and keeps the edge where it was,
    # where the weighted mean smears the outliers into their neighbours
    depth = np.where(np.arange(20) < 10, 2.0, 5.0)[None, :].repeat(12, 0).astype(np.float32)
    image = np.where(np.arange(20) < 10, 0.2, 0.8)[None, :, None].repeat(12, 0).repeat(3, 2)
    spoiled = depth.copy()
    spoiled[3, 4], spoiled[8, 15], spoiled[5, 9], spoiled[6, 10] = 9.0, 0.5, 5.0, 2.0
    median = dl.weighted_median_depth(spoiled, image, radius=3)
    np.testing.assert_array_equal(median, depth)
    mean = dl.fill_depth(spoiled, np.zeros_like(spoiled), image, radius=3)
    assert np.abs(mean - depth).max() > 0.1


def test_a_noisy_solve_gains():
    # measured at 240 x 320 in bench/noise.py; here a reduced scene at 1 % noise.
    # The solve's own weighted median (its default on a noisy stack) is
    # weighted_median_depth of the alternation's depth; both it and the
    # weighted mean of fill_depth lower the error
    scene = dl.middlebury_scene((96, 128))
    cam = dl.Camera.nyuv2()
    stack = dl.focal_stack(scene, cam, noise_std=0.01, seed=1)
    kwargs = dict(num_epochs=4, aif_num_iters=50, progress=False, backend="cpu")
    raw = dl.solve(stack, cam, median_radius=0, **kwargs)
    res = dl.solve(stack, cam, **kwargs)
    assert raw.median_radius == 0 and res.median_radius == MEDIAN_RADIUS and res.window > 1
    np.testing.assert_array_equal(res.aif, raw.aif)
    guide = np.clip(raw.aif, 0, 1)
    np.testing.assert_array_equal(
        res.depth, dl.weighted_median_depth(raw.depth, guide, depth_std=raw.depth_std,
                                            radius=MEDIAN_RADIUS))
    before = dl.depth_metrics(raw.depth, scene.depth, mask=scene.valid)["rmse"]
    median = dl.depth_metrics(res.depth, scene.depth, mask=scene.valid)["rmse"]
    filled = dl.depth_metrics(dl.fill_depth(raw.depth, raw.depth_std, guide), scene.depth,
                              mask=scene.valid)["rmse"]
    assert median < 0.97 * before and filled < 0.95 * before, (before, median, filled)


def test_bad_input_is_refused():
    depth, std, image = np.ones((4, 5)), np.ones((4, 5)), np.zeros((4, 5, 3))
    with pytest.raises(ValueError, match="depth_std has shape"):
        dl.fill_depth(depth, np.ones((4, 4)), image)
    with pytest.raises(ValueError, match="depth_std must be finite"):
        dl.fill_depth(depth, -std, image)
    with pytest.raises(ValueError, match="image has shape"):
        dl.fill_depth(depth, std, np.zeros((5, 5, 3)))
    with pytest.raises(ValueError, match="depth must be positive"):
        dl.fill_depth(-depth, std, image)
    with pytest.raises(ValueError, match="sigma_color"):
        dl.fill_depth(depth, std, image, sigma_color=0.0)
    with pytest.raises((TypeError, ValueError), match="radius"):
        dl.fill_depth(depth, std, image, radius=0)
    with pytest.raises(TypeError, match="depth_std"):
        dl.fill_depth(depth, None, image)
    with pytest.raises(ValueError, match="depth_std has shape"):
        dl.weighted_median_depth(depth, image, depth_std=np.ones((4, 4)))
    with pytest.raises(ValueError, match="image has shape"):
        dl.weighted_median_depth(depth, np.zeros((5, 5)))
    with pytest.raises((TypeError, ValueError), match="radius"):
        dl.weighted_median_depth(depth, image, radius=1.5)
    with pytest.raises(ValueError, match="radius must be at most"):
        dl.weighted_median_depth(depth, image, radius=MAX_RADIUS + 1)
    with pytest.raises(ValueError, match="radius must be at most"):
        dl.fill_depth(depth, std, image, radius=10**6)
    noise = np.random.default_rng(0).uniform(size=(5, 8, 8))
    for bad in (-1, MAX_RADIUS + 1):
        with pytest.raises(ValueError, match="median_radius"):
            dl.solve(noise, dl.Camera.nyuv2(), median_radius=bad, progress=False)
