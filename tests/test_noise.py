"""The noise estimate of a focal stack."""

import numpy as np
import pytest

import dfd_lite as dl

CAM = dl.Camera.nyuv2()


@pytest.mark.parametrize("scene", [dl.middlebury_scene((96, 128)),
                                   dl.synthetic_scene((96, 128), seed=2)],
                         ids=["middlebury", "synthetic"])
@pytest.mark.parametrize("std", [0.002, 0.005, 0.01, 0.03])
def test_noise_estimate_within_15_percent(scene, std):
    stack = dl.focal_stack(scene, CAM, noise_std=std, seed=4)
    assert dl.estimate_noise(stack) == pytest.approx(std, rel=0.15)


def test_noise_estimate_of_a_clean_stack_is_far_below_a_noisy_one():
    scene = dl.middlebury_scene((96, 128))
    clean = dl.estimate_noise(dl.focal_stack(scene, CAM))
    assert clean < 0.3 * dl.estimate_noise(dl.focal_stack(scene, CAM, noise_std=0.002))


def test_noise_estimate_units_gray_and_physical_sensor_noise():
    scene = dl.synthetic_scene((96, 128), seed=1)
    stack = dl.render_physical(scene.aif, scene.depth, CAM, read_noise=0.01, seed=0)
    assert dl.estimate_noise(stack) == pytest.approx(0.01, rel=0.15)
    assert dl.estimate_noise(stack[..., 0]) == pytest.approx(0.01, rel=0.15)   # grey
    as_uint8 = np.round(np.clip(stack, 0, 1) * 255).astype(np.uint8)
    assert dl.estimate_noise(as_uint8) == pytest.approx(0.01, rel=0.15)      # scaled to [0, 1]


def test_a_constant_stack_has_no_noise():
    assert dl.estimate_noise(np.full((5, 16, 16, 3), 0.5)) < 1e-6


def test_noise_estimate_refuses_tiny_images():
    with pytest.raises(ValueError, match="at least 4 x 4"):
        dl.estimate_noise(np.zeros((5, 3, 3)))
