import numpy as np
import pytest
import scipy.sparse.linalg as spla

import dfd_lite as dl
from dfd_lite.aif import power_iteration
from dfd_lite.engines.cpu import CpuEngine

CAM = dl.Camera.nyuv2()


@pytest.fixture(scope="module")
def scene():
    s = dl.synthetic_scene((40, 48), seed=1)
    op = dl.BlurOperator(s.depth, CAM, kernel_size=7)
    return s, op, op.forward(s.aif)


def test_power_iteration_matches_largest_singular_value():
    depth = np.random.default_rng(0).uniform(0.5, 9, (14, 16))
    op = dl.BlurOperator(depth, CAM, kernel_size=7)
    sigma_max = spla.svds(op.to_sparse().astype(np.float64), k=1, return_singular_vectors=False)[0]
    est = dl.lipschitz_constant(op, num_iters=50)
    assert sigma_max ** 2 <= est <= 1.03 * sigma_max ** 2
    assert dl.lipschitz_constant(op, num_iters=50) == est   # seeded: reproducible


def test_power_iteration_starts_from_the_last_vector():
    # a few iterations from the vector of a nearby operator (the last
    # epoch's, in solve) estimate ||A||^2 as well as many from a random start
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 9, (14, 16))
    ops = [dl.BlurOperator(d, CAM, kernel_size=7)
           for d in (depth, depth * rng.uniform(0.95, 1.05, depth.shape))]
    exact = spla.svds(ops[1].to_sparse().astype(np.float64), k=1,
                      return_singular_vectors=False)[0] ** 2
    eng = CpuEngine()
    vector = eng.asarray(rng.random((1, 14, 16)))
    power_iteration(eng, ops[0].weights, (14, 16), num_iters=50, vector=vector)
    assert np.linalg.norm(vector) == pytest.approx(1.0, rel=1e-5)   # the last iterate
    first = vector.copy()
    warm = power_iteration(eng, ops[1].weights, (14, 16), num_iters=3, vector=vector,
                           safety=1.0)
    cold = power_iteration(eng, ops[1].weights, (14, 16), num_iters=3, safety=1.0)
    # (3 iterations: warm 1 - 1.3e-7 of the exact value, cold 1 - 1.5e-3)
    assert (1 - 1e-5) * exact <= warm <= (1 + 1e-6) * exact and cold < (1 - 1e-4) * exact
    assert not np.array_equal(vector, first)
    with pytest.raises(ValueError, match="vector must have shape"):
        power_iteration(eng, ops[1].weights, (14, 16), vector=eng.empty((14, 16)))
    with pytest.raises(ValueError, match="non-zero"):
        power_iteration(eng, ops[1].weights, (14, 16), vector=eng.full((1, 14, 16), 0.0))


def test_fista_objective_decreases_and_recovers_image(scene):
    s, op, stack = scene
    res = dl.fista(op, stack, num_iters=400)
    obj = np.array(res.objective)
    assert len(obj) == 400
    # FISTA is not monotone step by step, but it is over blocks of iterations
    blocks = obj.reshape(8, 50).min(axis=1)
    assert np.all(np.diff(blocks) <= 0)
    assert obj[-1] < 1e-3 * obj[0]
    h = 6  # interior: the border is attenuated by zero padding and less determined
    err = np.sqrt(np.mean((res.aif[h:-h, h:-h] - s.aif[h:-h, h:-h]) ** 2))
    start_err = np.sqrt(np.mean((stack.mean(0)[h:-h, h:-h] - s.aif[h:-h, h:-h]) ** 2))
    assert err < 0.03 and err < 0.25 * start_err


def test_monotone_fista_never_increases_and_converges_as_fast():
    # A well-conditioned operator (a slight blur): FISTA's momentum overshoots
    # and its objective ripples upwards, which monotone FISTA never does.
    cam = dl.Camera(0.05, 8.0, 1.2e-5, (1.0,), 0.7)
    op = dl.BlurOperator(np.full((16, 16), 1.0), cam, kernel_size=5)
    b = op.forward(np.random.default_rng(0).random((16, 16)))
    plain = np.array(dl.fista(op, b, num_iters=100).objective)
    mono = np.array(dl.fista(op, b, num_iters=100, monotone=True).objective)
    assert np.any(np.diff(plain) > 0)          # plain FISTA does go up here ...
    assert np.all(np.diff(mono) <= 0)          # ... the monotone variant never does
    assert mono[-1] <= 1.05 * plain[-1]


def test_rel_tol_stops_early(scene):
    _, op, stack = scene
    res = dl.fista(op, stack, num_iters=500, rel_tol=1e-2, momentum=False)
    assert 2 <= len(res.objective) < 500
    assert abs(res.objective[-2] - res.objective[-1]) <= 1e-2 * res.objective[-2]


def test_fista_beats_gradient_descent(scene):
    _, op, stack = scene
    fast = dl.fista(op, stack, num_iters=100).objective[-1]
    slow = dl.fista(op, stack, num_iters=100, momentum=False).objective[-1]
    assert fast < 0.5 * slow


def test_warm_start_helps(scene):
    s, op, stack = scene
    warm = dl.fista(op, stack, num_iters=20, x0=s.aif * 0.98)
    cold = dl.fista(op, stack, num_iters=20, x0=np.zeros_like(s.aif))
    assert warm.objective[-1] < cold.objective[-1]


def test_box_constraint_and_float32(scene):
    s, _, stack = scene
    seen = []

    class Spy(CpuEngine):
        def forward(self, x, weights, out=None):
            seen.extend([x.dtype, weights.dtype])
            return super().forward(x, weights, out=out)

        def adjoint(self, y, weights, out=None, minus=None):
            seen.append(y.dtype)
            return super().adjoint(y, weights, out=out, minus=minus)

    op = dl.BlurOperator(s.depth, CAM, kernel_size=7, backend=Spy())
    res = dl.fista(op, stack * 1.3, num_iters=15, bounds=(0.0, 1.0))
    assert res.aif.dtype == np.float32
    assert set(seen) == {np.dtype(np.float32)}   # no silent float64 promotion (NEP 50)
    assert res.aif.min() >= 0.0 and res.aif.max() <= 1.0


def test_focus_stack_picks_sharpest_slice():
    s = dl.synthetic_scene((48, 64), seed=2)
    stack = dl.render_stack(s.aif, s.depth, CAM, kernel_size=9)
    aif, index = dl.focus_stack(stack)
    # box at 1.2 m: sharpest in the 1 m or 1.5 m slice; far background: 4 m or 6 m slice
    assert np.median(index[s.depth == 1.2]) in (0, 1)
    assert np.median(index[s.depth > 4.6]) in (3, 4)
    assert aif.shape == s.aif.shape


def test_fista_rejects_bad_input(scene):
    _, op, stack = scene
    with pytest.raises(ValueError, match="bounds"):
        dl.fista(op, stack, bounds=(1, 0))
    with pytest.raises(ValueError, match="x0"):
        dl.fista(op, stack, x0=np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="slices"):
        dl.fista(op, stack[:3])
    with pytest.raises(ValueError, match="rel_tol"):
        dl.fista(op, stack, rel_tol=-1)
    with pytest.raises(TypeError):
        dl.fista(op, stack, 10)    # options are keyword-only


def test_cpu_vector_operations_match_numpy_bit_for_bit():
    # the image steps' vector operations run as Numba loops on contiguous
    # float32 arrays; NumPy's ufuncs, in the same order, are the reference
    rng = np.random.default_rng(3)
    eng = CpuEngine()
    a, b = (rng.standard_normal((2, 3, 7, 9)).astype(np.float32) for _ in range(2))
    alpha, beta = 0.7, -1.3
    expected = np.float32(alpha) * a + np.float32(beta) * b
    np.testing.assert_array_equal(eng.lincomb(a, alpha, b, beta, out=np.empty_like(a)),
                                  expected)
    a_out, b_out = a.copy(), b.copy()                       # out may be a or b
    np.testing.assert_array_equal(eng.lincomb(a_out, alpha, b, beta, out=a_out), expected)
    np.testing.assert_array_equal(eng.lincomb(a, alpha, b_out, beta, out=b_out), expected)
    beta32 = np.float32(beta)
    expected = (a - b) * beta32 + a
    np.testing.assert_array_equal(eng.extrapolate(a, b, beta, out=np.empty_like(a)), expected)
    expected = np.clip(b * np.float32(-0.25) + a, np.float32(-0.5), np.float32(0.5))
    g = b.copy()
    g[0, 0, 0, :2] = np.nan                                 # NaN stays NaN, as in np.clip
    expected[0, 0, 0, :2] = np.nan
    np.testing.assert_array_equal(eng.prox_step(a, g, 0.25, -0.5, 0.5, out=np.empty_like(a)),
                                  expected)
    # a strided view is written in place all the same (the NumPy path)
    view = np.zeros((2, 3, 7, 18), np.float32)[..., ::2]
    eng.lincomb(a, alpha, b, beta, out=view)
    np.testing.assert_array_equal(view, np.float32(alpha) * a + np.float32(beta) * b)
