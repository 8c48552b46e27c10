"""fill_depth: against a direct double loop, its properties, and what it does to a noisy solve."""

import numpy as np
import pytest

import dfd_lite as dl


def _fill_loops(depth, std, image, radius, sigma_color, std_floor):
    # the definition, one pixel and one neighbour at a time (edge padding)
    h, w = depth.shape
    out = np.empty((h, w))
    for y in range(h):
        for x in range(w):
            num = den = 0.0
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    qy, qx = min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1)
                    spatial = np.exp(-(dy * dy + dx * dx) / (2 * (radius / 2) ** 2))
                    color = np.exp(-np.sum((image[qy, qx] - image[y, x]) ** 2)
                                   / (2 * sigma_color ** 2))
                    weight = spatial * color / (std[qy, qx] ** 2 + std_floor ** 2)
                    num += weight * depth[qy, qx]
                    den += weight
            out[y, x] = num / den
    return out


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


def test_a_noisy_solve_gains():
    # measured at 240 x 320 in bench/noise.py; here a reduced scene at 1 % noise
    scene = dl.middlebury_scene((96, 128))
    cam = dl.Camera.nyuv2()
    stack = dl.focal_stack(scene, cam, noise_std=0.01, seed=1)
    res = dl.solve(stack, cam, num_epochs=4, aif_num_iters=50, progress=False, backend="cpu")
    filled = dl.fill_depth(res.depth, res.depth_std, np.clip(res.aif, 0, 1))
    before = dl.depth_metrics(res.depth, scene.depth, mask=scene.valid)["rmse"]
    after = dl.depth_metrics(filled, scene.depth, mask=scene.valid)["rmse"]
    assert after < 0.95 * before, (before, after)


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
