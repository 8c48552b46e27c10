"""Aligning a focal stack whose magnification changes with focus (breathing).

Stacks come from the physical renderer (disc PSFs up to ~11 px radius on
the NYUv2 preset, occlusion, mirrored surround), breathing applied after
the blur as a lens does; the estimates must come back within 0.2 %.
"""

import numpy as np
import pytest
import scipy.ndimage as ndi

import dfd_lite as dl
from dfd_lite.align import align_stack

CAM = dl.Camera.nyuv2().with_psf("disc")
MAGS = dl.thin_lens_magnification(CAM)           # 1.044 (focus 1 m) ... 1 (6 m)
# A lens with half the blur (f/16) for the cheaper 120 x 160 stacks: at that
# size the full NYUv2 blur leaves the near slice almost without detail.
CAM16 = dl.Camera(0.05, 16.0, 1.2e-5, (1.0, 1.5, 2.5, 4.0, 6.0), 1.0)
CUSTOM = np.array([1.0, 1.03, 0.99, 1.015, 1.02])   # not monotonic: largest is slice 1

SCENES = {"synthetic": dl.synthetic_scene((240, 320), seed=7),
          "middlebury": dl.middlebury_scene((240, 320))}


def relative_error(alignment, true_mags):
    """|estimated / true - 1| of every slice's scale, both relative to the reference."""
    true = np.asarray(true_mags) / true_mags[alignment.reference]
    return np.abs(alignment.scale / true - 1)


@pytest.fixture(scope="module")
def breathing_free():
    scene = SCENES["synthetic"]
    return dl.render_physical(scene.aif, scene.depth, CAM)


@pytest.fixture(scope="module")
def thin_lens():
    scene = SCENES["synthetic"]
    return dl.render_physical(scene.aif, scene.depth, CAM, breathing="thin_lens")


@pytest.fixture(scope="module")
def custom():
    scene = dl.synthetic_scene((120, 160), seed=3)
    return dl.render_physical(scene.aif, scene.depth, CAM16, breathing=CUSTOM)


@pytest.mark.parametrize("read_noise", [0.0, 0.005], ids=["clean", "noisy"])
@pytest.mark.parametrize("name", ["synthetic", "middlebury"])
def test_thin_lens_magnification_recovered_within_0_2_percent(name, read_noise):
    scene = SCENES[name]
    stack = dl.render_physical(scene.aif, scene.depth, CAM, breathing="thin_lens",
                               read_noise=read_noise, seed=1)
    al = align_stack(stack)
    assert al.reference == 0                     # focused nearest, the most magnified
    assert relative_error(al, MAGS).max() <= 0.002
    # breathing is about the centre and turns nothing
    assert np.abs(al.shift).max() < 0.2
    assert np.abs(al.rotation).max() < np.radians(0.05)
    # the others are enlarged onto the largest: every pixel keeps data
    assert al.valid.all()


def test_custom_breathing_recovered_and_largest_found_from_the_estimates(custom):
    al = align_stack(custom)
    assert al.reference == int(np.argmax(CUSTOM)) == 1
    assert relative_error(al, CUSTOM).max() <= 0.002
    assert al.scale[al.reference] == 1.0 and np.all(al.scale <= 1.0)
    # any slice can be the reference; the scales follow it
    al3 = align_stack(custom, reference=3)
    assert al3.reference == 3
    assert relative_error(al3, CUSTOM).max() <= 0.002


def test_an_aligned_stack_is_left_alone(breathing_free):
    al = align_stack(breathing_free, reference=0)
    assert np.abs(al.scale - 1).max() <= 0.002
    assert np.abs(al.shift).max() < 0.1
    assert np.abs(al.rotation).max() < np.radians(0.05)
    # nothing to remove: the residual is what unequal blur leaves either way
    assert np.allclose(al.residual, al.residual_before, atol=0.1)
    assert al.residual.max() < 0.5


@pytest.mark.parametrize("offset", [(1.3, -2.6), (0.0, 3.0)])
def test_a_translated_slice_is_put_back(breathing_free, offset):
    stack = breathing_free.copy()
    stack[2] = ndi.shift(stack[2], offset + (0.0,), order=3, mode="nearest")
    al = align_stack(stack, reference=0)
    assert al.shift[2] == pytest.approx(offset, abs=0.1)
    assert np.abs(np.delete(al.shift, 2, axis=0)).max() < 0.1
    assert np.abs(al.scale - 1).max() <= 0.002
    # the strips the shift brought in from outside hold no data of slice 2
    rows, cols = np.ceil(np.abs(offset)).astype(int)
    if offset[0] > 0:
        assert not al.valid[-rows:].any()
    if offset[1] < 0:
        assert not al.valid[:, :cols].any()
    if offset[1] > 0:
        assert not al.valid[:, -cols:].any()
    assert al.valid[rows + 1:-rows - 2, cols + 1:-cols - 2].all()


def test_aligned_stack_matches_the_breathing_free_render(thin_lens, breathing_free):
    # the breathing-free render is in the frame of the farthest slice
    # (magnification 1): align onto it and compare where every slice has data
    al = align_stack(thin_lens, reference=len(MAGS) - 1)
    assert relative_error(al, MAGS).max() <= 0.002
    v = al.valid
    assert 0.8 < v.mean() < 1.0          # the others were shrunk: borders uncovered

    def rms(stack):
        return np.sqrt(np.mean((stack[:, v] - breathing_free[:, v]) ** 2, axis=(1, 2)))

    before, after = rms(thin_lens), rms(al.stack)
    assert np.all(after[:-1] < 0.1 * before[:-1])
    assert after[-1] == before[-1] == 0.0      # the reference is not touched


def test_residual_tells_aligned_from_unaligned(thin_lens):
    al = align_stack(thin_lens)
    others = np.arange(len(MAGS)) != al.reference
    assert al.residual[al.reference] == al.residual_before[al.reference] == 0.0
    assert np.all(al.residual[others] < 0.3 * al.residual_before[others])
    assert al.residual.max() < 0.5
    # before: about the breathing's displacement, 4.4 % at 160 px from the centre
    assert al.residual_before[-1] > 2.0
    text = al.summary()
    assert text.startswith("aligned onto slice 0") and len(text.splitlines()) == len(MAGS) + 2


def test_gray_and_uint8_stacks(custom):
    gray = custom.mean(axis=-1)
    al = align_stack(gray)
    assert al.stack.shape == gray.shape and al.stack.dtype == np.float32
    assert relative_error(al, CUSTOM).max() <= 0.002
    as_uint8 = np.round(np.clip(custom, 0, 1) * 255).astype(np.uint8)
    al8 = align_stack(as_uint8)
    assert al8.stack.shape == custom.shape and al8.stack.dtype == np.float32
    assert 0.0 <= al8.stack.min() and al8.stack.max() <= 1.0
    assert relative_error(al8, CUSTOM).max() <= 0.002
    # the reference slice comes back as it went in (scaled to [0, 1])
    np.testing.assert_array_equal(al8.stack[al8.reference],
                                  as_uint8[al8.reference].astype(np.float32) / 255)


def test_more_than_breathing_is_warned_about(breathing_free):
    from dfd_lite.render import _breathe

    stack = breathing_free[3:5].copy()
    stack[1] = _breathe(stack[1], 1.12)
    with pytest.warns(UserWarning, match="may not show the same view"):
        al = align_stack(stack, reference=0)
    assert al.scale[1] == pytest.approx(1.12, rel=0.002)


@pytest.mark.parametrize("stack, kwargs, error, match", [
    (np.zeros((1, 32, 32)), {}, ValueError, "at least 2 slices"),
    (np.zeros((3, 31, 40)), {}, ValueError, "at least 32 x 32"),
    (np.zeros((32, 32)), {}, ValueError, "stack must have shape"),
    (np.zeros((3, 32, 32, 4)), {}, ValueError, "RGBA"),
    (np.full((3, 32, 32), np.nan), {}, ValueError, "stack contains NaN"),
    (np.zeros((3, 32, 32), dtype=complex), {}, TypeError, "stack must hold real"),
    (np.zeros((3, 32, 32)), {"reference": 3}, ValueError,
     r"reference must be a slice index in \[0, 2\]"),
    (np.zeros((3, 32, 32)), {"reference": -1}, ValueError, "reference must be a slice index"),
    (np.zeros((3, 32, 32)), {"reference": "smallest"}, ValueError, "reference must be 'largest'"),
    (np.zeros((3, 32, 32)), {"reference": 1.0}, TypeError,
     "reference must be 'largest' or an integer"),
    (np.zeros((3, 32, 32)), {"reference": True}, TypeError, "reference"),
    (np.zeros((3, 32, 32)), {"smoothing": -1.0}, ValueError, "smoothing must be >= 0"),
    (np.zeros((3, 32, 32)), {"refinements": 0}, ValueError, "refinements must be >= 1"),
])
def test_bad_input_is_refused_with_the_parameter_named(stack, kwargs, error, match):
    with pytest.raises(error, match=match):
        align_stack(stack, **kwargs)


def test_smallest_and_featureless_stacks_still_align():
    rng = np.random.default_rng(0)
    texture = ndi.gaussian_filter(rng.random((40, 48)), 1.0)
    stack = np.stack([texture[:32, :32], texture[1:33, 2:34]])    # moved up 1, left 2
    al = align_stack(stack, reference=0)
    assert al.shift[1] == pytest.approx((-1.0, -2.0), abs=0.1)
    flat = align_stack(np.full((3, 32, 32), 0.5))
    assert np.all(flat.scale == 1.0) and np.all(flat.shift == 0.0) and flat.valid.all()
    assert np.all(np.isfinite(flat.residual))
