import numpy as np
import pytest

import dfd_lite as dl


def test_depth_metrics_known_values():
    gt = np.array([[1.0, 2.0], [4.0, 5.0]])
    pred = np.array([[1.0, 2.5], [4.0, 3.0]])
    m = dl.depth_metrics(pred, gt)
    assert m["rmse"] == pytest.approx(np.sqrt((0.25 + 4.0) / 4))
    assert m["mae"] == pytest.approx(2.5 / 4)
    assert m["absrel"] == pytest.approx((0.5 / 2 + 2 / 5) / 4)
    # ratios 1, 1.25, 1, 1.667: delta1 counts strictly below 1.25
    assert m["delta1"] == pytest.approx(0.5)
    assert m["delta2"] == pytest.approx(0.75)
    assert m["delta3"] == pytest.approx(1.0)


def test_depth_metrics_mask_and_nan():
    gt = np.array([[1.0, np.nan], [2.0, 2.0]])
    pred = np.array([[1.0, 7.0], [2.0, 9.0]])
    assert dl.depth_metrics(pred, gt, mask=[[True, True], [True, False]])["rmse"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        dl.depth_metrics(pred, gt[:1])
    with pytest.raises(ValueError, match="no valid pixels"):
        dl.depth_metrics(pred, gt, mask=np.zeros((2, 2), bool))


def test_psnr():
    a = np.zeros((4, 4, 3))
    b = a + 0.1
    assert dl.psnr(b, a) == pytest.approx(20.0)
    assert dl.psnr(a, a) == float("inf")
    assert dl.psnr(b * 255, a, data_range=255) == pytest.approx(20.0)


def test_synthetic_scene_depths():
    s = dl.synthetic_scene((60, 80), seed=0, flat_patch=True)
    assert s.aif.shape == (60, 80, 3) and s.aif.dtype == np.float32
    assert 0 <= s.aif.min() and s.aif.max() <= 1
    assert np.isclose(s.depth, 1.2).any() and np.isclose(s.depth, 2.5).any()
    assert 1.0 <= s.depth.min() and s.depth.max() <= 5.5 + 1e-6
    assert s.valid.all()
    with pytest.raises(ValueError, match="shape"):
        dl.synthetic_scene((4, 4))


def test_middlebury_scene_depth_from_disparity():
    s = dl.middlebury_scene((60, 80))
    assert s.aif.shape == (60, 80, 3)
    d = s.depth[s.valid]
    assert 2.0 < d.min() and d.max() < 5.1           # Z = f B / (d + doffs): 2.1 - 5.0 m
    assert 0.85 < s.valid.mean() < 0.99             # about 7 % occluded
    assert np.all(np.isfinite(s.depth))
    raw = dl.middlebury_scene((60, 80), fill_invalid=False)
    assert np.isnan(raw.depth[~raw.valid]).all()


def test_save_and_load_round_trip(tmp_path):
    cam = dl.Camera.nyuv2()
    s = dl.synthetic_scene((16, 20))
    stack = dl.focal_stack(s, cam, kernel_size=5)
    path = tmp_path / "stack.npz"
    dl.save_stack(path, stack, cam, depth=s.depth, aif=s.aif)
    back = dl.load_stack(path)
    assert back["camera"] == cam
    np.testing.assert_array_equal(back["stack"], stack)
    np.testing.assert_array_equal(back["depth"], s.depth)
    np.save(tmp_path / "other.npy", np.zeros(3))
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a dfd_lite stack file"):
        dl.load_stack(tmp_path / "other.npz")
