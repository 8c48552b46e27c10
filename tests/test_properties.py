"""Property-based tests of the blur operator (hypothesis): adjointness over
random shapes, kernel sizes, channel counts and depth maps, and agreement
with the explicit sparse matrix."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import dfd_lite as dl

CAM = dl.Camera.nyuv2()
SETTINGS = settings(max_examples=25, deadline=None, database=None, derandomize=True)


@st.composite
def operators(draw):
    h = draw(st.integers(1, 16))
    w = draw(st.integers(1, 16))
    # any odd window the image can use (wider ones only read the zero padding)
    k = draw(st.sampled_from([k for k in (3, 5, 7, 9, 11) if k <= 2 * max(h, w) + 1]))
    seed = draw(st.integers(0, 2**31 - 1))
    depth = np.random.default_rng(seed).uniform(0.2, 12.0, (h, w))
    return dl.BlurOperator(depth, CAM, kernel_size=k, backend="cpu"), seed


@SETTINGS
@given(operators(), st.integers(1, 4))
def test_adjoint_is_the_transpose(op_seed, channels):
    op, seed = op_seed
    res = dl.dot_test(op, seed=seed, channels=channels, rtol=1e-5)
    assert res.passed, res


@settings(max_examples=10, deadline=None, database=None, derandomize=True)
@given(operators())
def test_operator_equals_its_sparse_matrix(op_seed):
    op, seed = op_seed
    h, w = op.image_shape
    x = np.random.default_rng(seed).random((h, w)).astype(np.float32)
    mat = op.to_sparse()
    np.testing.assert_allclose(op.forward(x).ravel(), mat @ x.ravel(), atol=1e-6)


@SETTINGS
@given(operators())
def test_constant_image_is_preserved_away_from_the_border(op_seed):
    # Every PSF sums to one: a constant image stays constant wherever the
    # window does not reach past the border.
    op, _ = op_seed
    h, w = op.image_shape
    half = op.kernel_size // 2
    out = op.forward(np.full((h, w), 0.7, dtype=np.float32))
    inner = out[:, half:h - half, half:w - half]
    np.testing.assert_allclose(inner, 0.7, rtol=1e-5)
    assert np.all(out <= 0.7 + 1e-6)
