import numpy as np
import pytest

import dfd_lite as dl


def test_nyuv2_preset_matches_explicit_camera():
    cam = dl.Camera(focal_length=0.05, f_number=8.0, pixel_size=1.2e-5,
                    focus_distances=[1, 1.5, 2.5, 4, 6], min_radius=2.0)
    assert cam == dl.Camera.nyuv2()
    assert cam.aperture == pytest.approx(0.05 / 8)
    assert cam.num_planes == 5


def test_coc_is_zero_at_focus_before_clamping():
    cam = dl.Camera.nyuv2()
    r = dl.coc_radius(np.array(cam.focus_distances), cam, clamp=False)
    # slice i is in focus exactly at its own focus distance
    np.testing.assert_allclose(np.diag(r), 0.0, atol=1e-12)
    assert np.all(r[~np.eye(5, dtype=bool)] > 0)


def test_coc_units_against_hand_computation():
    # f = 50 mm, N = 8 -> D = 6.25 mm; Zf = 1 m, Z = 3 m:
    # CoC = 6.25e-3 * (2/3) * 0.05 / 0.95 m; radius = CoC / (2 * 12 um) pixels.
    cam = dl.Camera.nyuv2()
    coc = 6.25e-3 * (2 / 3) * 0.05 / 0.95
    assert dl.coc_diameter(3.0, 1.0, 0.05, 6.25e-3) == pytest.approx(coc)
    assert dl.coc_radius(3.0, cam)[0] == pytest.approx(coc / 2.4e-5)
    assert 9.0 < coc / 2.4e-5 < 9.3


def test_coc_two_sided_shape():
    cam = dl.Camera.nyuv2().with_focus([2.0])
    z = np.linspace(0.5, 20.0, 2000)
    r = dl.coc_radius(z, cam, clamp=False)[0]
    near, far = z < 2.0, z > 2.0
    assert np.all(np.diff(r[near]) < 0)      # shrinks while approaching focus
    assert np.all(np.diff(r[far]) > 0)       # grows behind it ...
    limit = cam.aperture * cam.focal_length / (2.0 - cam.focal_length) / (2 * cam.pixel_size)
    assert r[far].max() < limit              # ... towards a finite limit at infinity
    # the same blur on both sides: the front/back ambiguity of one image
    z_front = 1.5
    r_front = dl.coc_radius(z_front, cam, clamp=False)[0]
    z_back = z[far][np.argmin(np.abs(r[far] - r_front))]
    assert z_back > 2.0 and abs(dl.coc_radius(z_back, cam, clamp=False)[0] - r_front) < 0.01


def test_clamp_raises_small_radii():
    cam = dl.Camera.nyuv2()
    r = dl.coc_radius(np.linspace(0.5, 9, 50), cam)
    assert r.min() >= cam.min_radius
    assert r.shape == (5, 50)


def test_default_kernel_size_matches_reference_heuristic():
    assert dl.default_kernel_size(240, 320) == 11
    assert dl.default_kernel_size(480, 640) == 23
    assert dl.default_kernel_size(32, 32) == 7
    assert dl.default_kernel_size(100, 100) % 2 == 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(focal_length=-0.05), "focal_length"),
    (dict(focal_length=0.0), "focal_length"),
    (dict(f_number=0), "f_number"),
    (dict(pixel_size=float("nan")), "pixel_size"),
    (dict(focus_distances=[1, 0.04]), "focus distance must be beyond the focal length"),
    (dict(focus_distances=[]), "focus_distances"),
    (dict(focus_distances=[1, float("inf")]), "focus_distances"),
    (dict(min_radius=-1), "min_radius"),
])
def test_camera_rejects_bad_optics(kwargs, match):
    base = dict(focal_length=0.05, f_number=8.0, pixel_size=1.2e-5,
                focus_distances=[1, 2], min_radius=1.0)
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        dl.Camera(**base)


def test_camera_rejects_wrong_types():
    with pytest.raises(TypeError, match="focal_length"):
        dl.Camera("50mm", 8, 1e-5, [1, 2])
    with pytest.raises(TypeError, match="camera"):
        dl.coc_radius(2.0, "nyuv2")


def test_presets_are_valid():
    for cam in (dl.Camera.make3d(), dl.Camera.fod500()):
        assert cam.num_planes in (5, 7)
        assert np.all(dl.coc_radius(np.array([0.5, 1.0]), cam) >= 0)
