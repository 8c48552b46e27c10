"""The physical renderer: PSFs, spread, boundary, sensor noise and breathing."""

import numpy as np
import pytest
import scipy.ndimage as ndi

import dfd_lite as dl
from dfd_lite.psf import disc_psf, gaussian_psf

CAM = dl.Camera.nyuv2()


@pytest.mark.parametrize("spread", ["scatter", "gather"])
@pytest.mark.parametrize("psf", ["disc", "gaussian"])
def test_point_source_images_to_the_psf(spread, psf):
    img = np.zeros((81, 81))
    img[40, 40] = 1.0
    stack = dl.render_physical(img, np.full((81, 81), 1.7), CAM, psf=psf, spread=spread,
                               boundary="zero")
    for f, r in enumerate(dl.psf_radius(1.7, CAM)):
        kernel = disc_psf(r) if psf == "disc" else gaussian_psf(r)
        h = kernel.shape[0] // 2
        np.testing.assert_allclose(stack[f, 40 - h:41 + h, 40 - h:41 + h], kernel, atol=1e-6)
        assert stack[f].sum() == pytest.approx(1.0, abs=1e-4)


def test_constant_depth_is_one_convolution_with_the_mirrored_scene():
    rng = np.random.default_rng(0)
    img = rng.random((30, 34, 3))
    scatter = dl.render_physical(img, np.full((30, 34), 2.2), CAM)
    gather = dl.render_physical(img, np.full((30, 34), 2.2), CAM, spread="gather")
    np.testing.assert_allclose(scatter, gather, atol=1e-5)
    for f, r in enumerate(dl.psf_radius(2.2, CAM)):
        ref = ndi.correlate(img, disc_psf(r)[:, :, None], mode="mirror")
        # scipy's "mirror" skips the edge pixel; the renderer's repeats it
        ref_sym = ndi.correlate(img, disc_psf(r)[:, :, None], mode="reflect")
        np.testing.assert_allclose(scatter[f], ref_sym, atol=1e-5)
        assert np.abs(scatter[f] - ref).max() > 1e-4


def test_flat_scene_stays_flat_with_any_depth_and_darkens_at_a_black_border():
    depth = np.random.default_rng(1).uniform(1.0, 8.0, (24, 24))
    flat = np.full((24, 24), 0.6)
    for spread in ("scatter", "gather"):
        out = dl.render_physical(flat, depth, CAM, spread=spread)
        np.testing.assert_allclose(out, 0.6, atol=1e-5)
    black = dl.render_physical(flat, np.full((24, 24), 1.0), CAM, boundary="zero")
    assert black[4, 0, 0] < 0.45 and black[4, 12, 12] == pytest.approx(0.6, abs=1e-4)


def test_scatter_spreads_a_blurred_foreground_over_a_focused_background():
    # left half near and bright, right half far (in focus in the last slice) and dark
    h, w = 40, 60
    img = np.zeros((h, w))
    img[:, :30] = 1.0
    depth = np.where(np.arange(w) < 30, 1.0, 6.0)[None, :].repeat(h, 0)
    r_near = dl.psf_radius(1.0, CAM)[-1]
    assert r_near > 6
    scatter = dl.render_physical(img, depth, CAM)[-1]
    gather = dl.render_physical(img, depth, CAM, spread="gather")[-1]
    col = 30 + 4          # 4 px into the background: beyond its own 2 px blur
    assert gather[20, col] < 1e-6
    assert scatter[20, col] > 0.02
    # the solver's own model agrees with the gather renderer here, not the scatter one
    own = dl.render_stack(img, depth, CAM.with_psf("disc"), kernel_size=21)[-1]
    assert own[20, col] < 1e-6


def test_sensor_noise_statistics_and_quantisation():
    flat = np.full((200, 200), 0.5)
    depth = np.full((200, 200), 3.0)
    clean = dl.render_physical(flat, depth, CAM)
    shot = dl.render_physical(flat, depth, CAM, photons=1000.0, seed=1)
    assert np.std(shot - clean) == pytest.approx(np.sqrt(0.5 / 1000), rel=0.05)
    read = dl.render_physical(flat, depth, CAM, read_noise=0.01, seed=1)
    assert np.std(read - clean) == pytest.approx(0.01, rel=0.05)
    q = dl.render_physical(flat, depth, CAM, read_noise=0.01, bit_depth=8, seed=1)
    np.testing.assert_allclose(q * 255, np.round(q * 255), atol=1e-4)
    again = dl.render_physical(flat, depth, CAM, read_noise=0.01, bit_depth=8, seed=1)
    np.testing.assert_array_equal(q, again)
    assert q.min() >= 0 and q.max() <= 1


def test_focus_breathing_magnifies_about_the_centre():
    mags = dl.thin_lens_magnification(CAM)
    assert mags.min() == pytest.approx(1.0) and np.all(np.diff(mags) < 0)  # nearer focus: larger
    img = np.zeros((81, 81))
    img[40, 70] = 1.0                      # 30 px right of the centre
    out = dl.render_physical(img, np.full((81, 81), 6.0), CAM, psf="gaussian",
                             boundary="zero", breathing=[1.0, 1.0, 1.0, 1.0, 1.1])
    assert ndi.center_of_mass(out[-1])[1] - 40 == pytest.approx(33.0, abs=0.3)
    assert ndi.center_of_mass(out[-2])[1] - 40 == pytest.approx(30.0, abs=0.3)


def test_render_physical_refuses_bad_options():
    img, depth = np.zeros((10, 10)), np.full((10, 10), 2.0)
    for kwargs, match in [({"psf": "box"}, "psf must be"), ({"spread": "both"}, "spread"),
                          ({"boundary": "wrap"}, "boundary"), ({"photons": -1.0}, "photons"),
                          ({"bit_depth": 40}, "bit_depth"), ({"breathing": [1.0, 2.0]}, "breathing"),
                          ({"breathing": "zoom"}, "breathing"), ({"radius_step": 0.0}, "radius_step")]:
        with pytest.raises((ValueError, TypeError), match=match):
            dl.render_physical(img, depth, CAM, **kwargs)
