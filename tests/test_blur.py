import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.sparse.linalg as spla

import dfd_lite as dl
from dfd_lite.engines.cpu import CpuEngine

CAM = dl.Camera.nyuv2()


def _random_depth(shape, seed=0):
    return np.random.default_rng(seed).uniform(0.4, 9.0, shape)


@pytest.mark.parametrize("shape, k", [((13, 17), 3), ((20, 9), 5), ((31, 30), 7),
                                      ((16, 16), 11), ((9, 40), 13)])
def test_dot_test(shape, k):
    op = dl.BlurOperator(_random_depth(shape, k), CAM, kernel_size=k)
    res = dl.dot_test(op, seed=k)
    assert res and res.passed
    lhs, rhs = res.forward_inner, res.adjoint_inner
    assert abs(lhs - rhs) <= 1e-5 * max(abs(lhs), abs(rhs))
    assert res.relative_error == pytest.approx(abs(lhs - rhs) / max(abs(lhs), abs(rhs)))


def test_dot_test_detects_a_wrong_adjoint():
    # the test must be able to fail: a transpose of a different operator does not pass
    other = dl.BlurOperator(_random_depth((12, 14), seed=9), CAM, kernel_size=5)

    class WrongAdjoint(CpuEngine):
        def adjoint(self, y, weights, out=None, minus=None):
            return super().adjoint(y, other.weights, out=out, minus=minus)

    op = dl.BlurOperator(_random_depth((12, 14)), CAM, kernel_size=5, backend=WrongAdjoint())
    res = dl.dot_test(op)
    assert not res and not res.passed
    assert res.relative_error > 1e-3


@pytest.mark.parametrize("shape, k", [((12, 15), 5), ((17, 11), 9)])
def test_matrix_free_equals_sparse_matrix(shape, k):
    depth = _random_depth(shape, 3)
    op = dl.BlurOperator(depth, CAM, kernel_size=k)
    mat = dl.blur_matrix(depth, CAM, kernel_size=k)
    rng = np.random.default_rng(1)
    x = rng.random(shape + (3,)).astype(np.float32)
    y = rng.random((5,) + shape + (3,)).astype(np.float32)
    fwd = np.stack([(mat @ x[..., c].ravel()).reshape((5,) + shape) for c in range(3)], -1)
    adj = np.stack([(mat.T @ y[..., c].ravel()).reshape(shape) for c in range(3)], -1)
    np.testing.assert_allclose(op.forward(x), fwd, atol=1e-6)
    np.testing.assert_allclose(op.adjoint(y), adj, atol=1e-5)


def _independent_constant_blur(img, sigma, k):
    """2-D Gaussian built from scratch, zero padding, via scipy.ndimage.correlate."""
    o = np.arange(k) - k // 2
    g = np.exp(-(o[:, None] ** 2 + o[None, :] ** 2) / (2 * sigma ** 2))
    g /= g.sum()
    return np.stack([ndi.correlate(img[..., c].astype(np.float64), g, mode="constant")
                     for c in range(img.shape[-1])], -1)


@pytest.mark.parametrize("z", [1.0, 3.3, 8.0])
def test_constant_depth_matches_independent_convolution(z):
    shape, k = (24, 31), 9
    x = np.random.default_rng(2).random(shape + (3,)).astype(np.float32)
    op = dl.BlurOperator(np.full(shape, z), CAM, kernel_size=k)
    stack = op.forward(x)
    for i, r in enumerate(op.radii[:, 0, 0]):
        ref = _independent_constant_blur(x, r, k)
        sep = dl.blur_constant(x, r, kernel_size=k)
        np.testing.assert_allclose(stack[i], ref, atol=2e-6)        # whole image: border too
        np.testing.assert_allclose(sep, ref, atol=2e-6)
        h = k // 2
        np.testing.assert_allclose(stack[i, h:-h, h:-h], sep[h:-h, h:-h], atol=2e-6)


def test_border_uses_zero_padding():
    # a constant image loses brightness at the border (outside pixels are zero)
    op = dl.BlurOperator(np.full((20, 20), 3.0), CAM, kernel_size=7)
    out = op.forward(np.ones((20, 20)))
    assert np.allclose(out[:, 3:-3, 3:-3], 1.0, atol=1e-6)
    assert np.all(out[:, 0, 0] < 0.6)


def test_gather_prediction_depends_only_on_own_depth():
    depth = _random_depth((15, 15))
    x = np.random.default_rng(4).random((15, 15, 3))
    a = dl.BlurOperator(depth, CAM, kernel_size=5).forward(x)
    depth2 = depth.copy()
    depth2[7, 7] = 0.5
    b = dl.BlurOperator(depth2, CAM, kernel_size=5).forward(x)
    changed = np.any(a != b, axis=(0, 3))
    assert changed[7, 7] and changed.sum() == 1


def test_weights_normalised_and_numba_matches_numpy():
    depth = _random_depth((10, 12), 5)
    w = dl.BlurOperator(depth, CAM, kernel_size=11, backend="cpu").weights
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
    ref = np.moveaxis(dl.gaussian_weights(dl.coc_radius(depth, CAM), 11), -1, 1)
    np.testing.assert_allclose(w, ref, atol=1e-7)
    assert w.dtype == np.float32


def test_gray_uint8_and_dtypes():
    depth = _random_depth((16, 18))
    img = (np.random.default_rng(0).random((16, 18)) * 255).astype(np.uint8)
    stack = dl.render_stack(img, depth, CAM, kernel_size=5)
    assert stack.shape == (5, 16, 18) and stack.dtype == np.float32
    ref = dl.render_stack(img.astype(np.float32) / 255, depth, CAM, kernel_size=5)
    np.testing.assert_allclose(stack, ref, atol=1e-6)
    op = dl.BlurOperator(depth, CAM, kernel_size=5)
    assert op.adjoint(stack).shape == (16, 18)
    assert op.adjoint(stack).dtype == np.float32


def test_render_stack_noise_is_seeded_and_clipped():
    s = dl.synthetic_scene((24, 32))
    a = dl.render_stack(s.aif, s.depth, CAM, kernel_size=5, noise_std=0.01, seed=3)
    b = dl.render_stack(s.aif, s.depth, CAM, kernel_size=5, noise_std=0.01, seed=3)
    clean = dl.render_stack(s.aif, s.depth, CAM, kernel_size=5)
    np.testing.assert_array_equal(a, b)
    assert 0.008 < np.std(a - clean) < 0.012
    assert a.min() >= 0 and a.max() <= 1


def test_render_stack_default_seed_matches_focal_stack():
    s = dl.synthetic_scene((16, 20))
    a = dl.render_stack(s.aif, s.depth, CAM, kernel_size=5, noise_std=0.01)
    b = dl.focal_stack(s, CAM, kernel_size=5, noise_std=0.01)
    np.testing.assert_array_equal(a, b)


def test_to_scipy_shape_and_products_match_the_operator():
    depth = _random_depth((9, 11), 2)
    op = dl.BlurOperator(depth, CAM, kernel_size=5)
    assert op.shape == (5 * 9 * 11, 9 * 11)
    lin = op.to_scipy(channels=2)
    assert lin.shape == (5 * 9 * 11 * 2, 9 * 11 * 2)
    rng = np.random.default_rng(0)
    x = rng.random((9, 11, 2)).astype(np.float32)
    y = rng.random((5, 9, 11, 2)).astype(np.float32)
    np.testing.assert_allclose(lin.matvec(x.ravel()), op.forward(x).ravel(), atol=1e-6)
    np.testing.assert_allclose(lin.rmatvec(y.ravel()), op.adjoint(y).ravel(), atol=1e-6)
    mat = dl.blur_matrix(depth, CAM, kernel_size=5)
    one = op.to_scipy()
    v = rng.random(9 * 11)
    np.testing.assert_allclose(one.matvec(v), mat @ v, atol=1e-5)


def test_lsqr_on_to_scipy_reaches_the_fista_image():
    # A tiny unconstrained problem with a well-conditioned operator: SciPy's
    # LSQR on the LinearOperator and FISTA with a wide box agree.
    depth = np.full((10, 12), 1.0)     # every pixel is in focus in one slice
    depth[3:7, 4:9] = 2.5
    cam = dl.Camera(0.05, 8.0, 1.2e-5, (1.0, 2.5), 0.4)
    op = dl.BlurOperator(depth, cam, kernel_size=5)
    x_true = np.random.default_rng(3).random((10, 12)).astype(np.float32)
    b = op.forward(x_true)
    sol = spla.lsqr(op.to_scipy(), b.ravel().astype(np.float64), atol=1e-12, btol=1e-12,
                    iter_lim=2000)[0].reshape(10, 12)
    fis = dl.fista(op, b, num_iters=3000, bounds=(-10.0, 10.0)).aif
    np.testing.assert_allclose(fis, sol, atol=2e-3)
    np.testing.assert_allclose(sol, x_true, atol=2e-2)
