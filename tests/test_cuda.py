"""The CUDA kernels against the CPU path.

Run in Numba's CUDA simulator (the root conftest.py switches it on before
numba is imported), or on a real GPU with DFD_LITE_REAL_CUDA=1. The
simulator runs every GPU thread as a Python thread, so the images here are
tiny (at most 24 x 32) and most tests use one channel or few candidates.
"""

import subprocess
import sys

import numpy as np
import pytest

import dfd_lite as dl
from dfd_lite import backend as be
from dfd_lite import blur as bl
from dfd_lite import depth as dp

if not be.cuda_available():
    pytest.skip("neither a CUDA GPU nor Numba's CUDA simulator is available",
                allow_module_level=True)

from dfd_lite import cuda as dc  # noqa: E402  (after the skip: needs a CUDA target)

cuda = dc.cuda
# Tiny test images leave most of a real GPU idle; numba-cuda says so.
pytestmark = pytest.mark.filterwarnings("ignore:Grid size")

K = 5
# Blur radii of 0.5 - 3.7 px over 1 - 5 m: the loss is well conditioned for
# K = 5 and 7, so both paths should find the same minima.
CAM = dl.Camera(focal_length=0.05, f_number=8.0, pixel_size=3.6e-5,
                focus_distances=[1.0, 1.5, 2.5, 4.0, 6.0], min_radius=0.5)


@pytest.fixture(scope="module", autouse=True)
def _fast_simulator():
    # The simulator's block manager busy-waits on the GIL while threads sit
    # at a barrier; a shorter switch interval roughly halves its run time.
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    yield
    sys.setswitchinterval(old)


@pytest.fixture(scope="module")
def scene():
    sc = dl.synthetic_scene((24, 32), seed=1)
    depth = (np.clip(sc.depth, 1.0, 5.0) * 0.8 + 0.5).astype(np.float32)
    stack = dl.render_stack(sc.aif, depth, CAM, K, noise_std=0.002, seed=0, backend="cpu")
    return sc.aif, depth, stack


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


# --- the blur operator -----------------------------------------------------

@pytest.mark.parametrize("channels", [3, 1])
def test_forward_adjoint_match_cpu(scene, channels):
    _, depth, _ = scene
    rng = np.random.default_rng(1)
    wts = bl.planar_weights(depth, CAM, K)
    x = rng.random((channels,) + depth.shape).astype(np.float32)
    y = rng.standard_normal((CAM.num_planes, channels) + depth.shape).astype(np.float32)
    op = dc.DeviceBlur(wts)
    fx = op.forward(x)
    aty = op.adjoint(cuda.to_device(y))  # device input, host output
    assert isinstance(fx, np.ndarray) and fx.dtype == np.float32
    assert fx.shape == (CAM.num_planes, channels) + depth.shape
    assert isinstance(aty, np.ndarray) and aty.dtype == np.float32 and aty.shape == x.shape
    assert _rel(fx, bl.forward_planar(x, wts)) < 1e-5
    assert _rel(aty, bl.adjoint_planar(y, wts)) < 1e-5


def test_weights_on_device_match_planar_weights(scene):
    _, depth, _ = scene
    op = dc.DeviceBlur.from_depth(depth, CAM, 7)
    np.testing.assert_allclose(op.weights.copy_to_host(), bl.planar_weights(depth, CAM, 7),
                               rtol=1e-5, atol=1e-6)


def test_cuda_operator_dot_test_and_public_forward(scene):
    aif, depth, _ = scene
    op = dl.BlurOperator(depth, CAM, kernel_size=7, backend="cuda")
    assert op.backend == "cuda"
    ax_y, x_aty = dl.dot_test(op, seed=3, channels=1)
    assert abs(ax_y - x_aty) <= 1e-5 * abs(ax_y)
    gray = aif.mean(axis=-1)
    cpu = dl.BlurOperator(depth, CAM, kernel_size=7, backend="cpu")
    assert _rel(op.forward(gray), cpu.forward(gray)) < 1e-5


def test_device_blur_rejects_wrong_shapes(scene):
    _, depth, _ = scene
    op = dc.DeviceBlur(bl.planar_weights(depth, CAM, K))
    with pytest.raises(ValueError, match="x must have shape"):
        op.forward(np.zeros((1, 5, 5), np.float32))
    with pytest.raises(ValueError, match="y must have shape"):
        op.adjoint(np.zeros((2, 1) + depth.shape, np.float32))


# --- the depth search ------------------------------------------------------

def test_grid_search_matches_cpu(scene):
    aif, _, stack = scene
    cands = dl.depth_candidates((1.0, 5.0), 4)
    i_gpu, l_gpu = dl.grid_search(aif, stack, CAM, cands, K, backend="cuda")
    i_cpu, l_cpu = dl.grid_search(aif, stack, CAM, cands, K, backend="cpu")
    assert i_gpu.dtype == np.int64 and l_gpu.dtype == np.float32
    np.testing.assert_array_equal(i_gpu, i_cpu)
    # The loss is a sum of squared small residuals: float32 rounding of
    # the blurred values shows up relative to the residual, not to b.
    np.testing.assert_allclose(l_gpu, l_cpu, rtol=1e-4, atol=1e-8)


def test_windowed_grid_search_matches_cpu(scene):
    aif, _, stack = scene
    cands = dl.depth_candidates((1.0, 5.0), 4)
    args = (aif[..., :1], stack[..., :1], CAM, cands, K)
    i_gpu, l_gpu = dl.grid_search(*args, window=3, backend="cuda")
    i_cpu, l_cpu = dl.grid_search(*args, window=3, backend="cpu")
    np.testing.assert_array_equal(i_gpu, i_cpu)
    # The loss is a sum of squared small residuals: float32 rounding of
    # the blurred values shows up relative to the residual, not to b.
    np.testing.assert_allclose(l_gpu, l_cpu, rtol=1e-4, atol=1e-8)


def test_channels_staged_one_at_a_time(scene, monkeypatch):
    # Large kernels do not leave room for every channel's tile in shared
    # memory; the kernels then stage one channel at a time.
    aif, depth, stack = scene
    monkeypatch.setattr(dc, "_SHARED_TARGET", 1)
    h, w = 8, 16
    assert dc._tile_config(h, w, K, 3)[2] == 1
    x = np.ascontiguousarray(np.moveaxis(aif[:h, :w], -1, 0))
    b = np.ascontiguousarray(np.moveaxis(stack[:, :h, :w], -1, 1))
    wts = bl.planar_weights(depth[:h, :w], CAM, K)
    assert _rel(dc.DeviceBlur(wts).forward(x), bl.forward_planar(x, wts)) < 1e-5
    cands = dl.depth_candidates((1.0, 5.0), 3)
    i_gpu, l_gpu = dc.grid_search_planar(x, b, CAM, K, cands, 1)
    i_cpu, l_cpu = dp._grid_search_planar(x, b, CAM, K, cands, 1)
    np.testing.assert_array_equal(i_gpu, i_cpu)
    # The loss is a sum of squared small residuals: float32 rounding of
    # the blurred values shows up relative to the residual, not to b.
    np.testing.assert_allclose(l_gpu, l_cpu, rtol=1e-4, atol=1e-8)
    d_gpu, f_gpu = dc.golden_refine_planar(x, b, CAM, K, cands, i_cpu, 0.2)
    d_cpu, f_cpu = dp._refine_planar(x, b, CAM, K, cands, i_cpu, 0.2)
    np.testing.assert_allclose(f_gpu, f_cpu, rtol=1e-4, atol=1e-8)


def _check_refined(d_gpu, f_gpu, d_cpu, f_cpu, tol):
    assert d_gpu.dtype == np.float32 and f_gpu.dtype == np.float32
    # The losses agree to float32 rounding everywhere...
    np.testing.assert_allclose(f_gpu, f_cpu, rtol=1e-4, atol=1e-8)
    # ...and so do the depths, except where the loss is so flat that
    # rounding decides a comparison: those stay within the tolerance.
    diff = np.abs(d_gpu - d_cpu)
    assert np.mean(diff <= 1e-3) > 0.95, f"{np.mean(diff <= 1e-3):.3f} of depths agree"
    assert np.max(diff) <= tol, f"max depth difference {np.max(diff):.4f} m"


def test_golden_refine_matches_cpu(scene):
    aif, _, stack = scene
    cands = dl.depth_candidates((1.0, 5.0), 5)
    args = (aif[..., :1], stack[..., :1], CAM, cands)
    index, _ = dl.grid_search(*args, K, backend="cpu")
    d_gpu, f_gpu = dl.golden_section_refine(*args, index, K, tol=0.05, backend="cuda")
    d_cpu, f_cpu = dl.golden_section_refine(*args, index, K, tol=0.05, backend="cpu")
    _check_refined(d_gpu, f_gpu, d_cpu, f_cpu, 0.05)
    # the refined loss is never above the grid point's
    grid_loss = dl.pixel_loss(aif[..., :1], stack[..., :1], cands[index], CAM, K)
    assert np.all(f_gpu <= grid_loss * (1 + 1e-4) + 1e-8)


def test_depth_step_with_safeguard_matches_cpu(scene):
    aif, depth, stack = scene
    cands = dl.depth_candidates((1.0, 5.0), 4)
    prev = np.where(np.arange(depth.shape[1]) < 16, depth, 3.0).astype(np.float32)
    kw = dict(kernel_size=K, previous_depth=prev, refine=False)
    r_gpu = dl.depth_step(aif[..., :1], stack[..., :1], CAM, cands, backend="cuda", **kw)
    r_cpu = dl.depth_step(aif[..., :1], stack[..., :1], CAM, cands, backend="cpu", **kw)
    assert r_cpu.kept_previous.any() and not r_cpu.kept_previous.all()
    np.testing.assert_array_equal(r_gpu.grid_index, r_cpu.grid_index)
    np.testing.assert_array_equal(r_gpu.kept_previous, r_cpu.kept_previous)
    np.testing.assert_allclose(r_gpu.depth, r_cpu.depth, rtol=1e-6)
    np.testing.assert_allclose(r_gpu.loss, r_cpu.loss, rtol=1e-4, atol=1e-8)


# --- FISTA and the whole solver ---------------------------------------------

def test_solve_cuda_matches_cpu(scene):
    _, _, stack = scene
    gray = stack[:, :8, :16].mean(axis=-1)
    kw = dict(depth_range=(1.0, 5.0), kernel_size=K, num_depths=4, epochs=1, aif_iters=3,
              tol=0.05, progress=False)
    r_gpu = dl.solve(gray, CAM, backend="cuda", **kw)
    r_cpu = dl.solve(gray, CAM, backend="cpu", **kw)
    assert r_gpu.aif.shape == gray.shape[1:] and r_gpu.aif.dtype == np.float32
    assert r_gpu.depth.dtype == np.float32
    assert [h["step"] for h in r_gpu.history] == [h["step"] for h in r_cpu.history]
    np.testing.assert_allclose(r_gpu.losses, r_cpu.losses, rtol=1e-4)
    assert r_gpu.losses[-1] < r_gpu.losses[0]
    # Only 128 pixels: a few flat-bottomed losses may end the golden-section
    # search elsewhere in the final bracket (see _check_refined).
    diff = np.abs(r_gpu.depth - r_cpu.depth)
    assert np.mean(diff <= 1e-3) > 0.9, f"{np.mean(diff <= 1e-3):.3f} of depths agree"
    assert np.max(diff) <= 0.05, f"max depth difference {np.max(diff):.4f} m"
    np.testing.assert_allclose(r_gpu.aif, r_cpu.aif, atol=1e-3)


# --- choosing the backend ----------------------------------------------------

def test_cuda_without_gpu_raises_clear_error(scene, monkeypatch):
    aif, depth, stack = scene
    monkeypatch.setattr(be, "cuda_available", lambda: False)
    with pytest.raises(RuntimeError, match="NUMBA_ENABLE_CUDASIM") as info:
        be.resolve_backend("cuda")
    assert "dfd_lite[cuda]" in str(info.value) and "backend='cpu'" in str(info.value)
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        dl.BlurOperator(depth, CAM, K, backend="cuda")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        dl.grid_search(aif, stack, CAM, [1.0, 2.0], K, backend="cuda")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        dl.solve(stack, CAM, kernel_size=K, epochs=1, progress=False, backend="cuda")
    assert be.resolve_backend("auto") == "cpu"


@pytest.mark.skipif(not be.cuda_simulated(), reason="only meaningful in the simulator")
def test_auto_never_picks_the_simulator(scene):
    _, depth, _ = scene
    assert be.resolve_backend("auto") == "cpu"
    assert dl.BlurOperator(depth, CAM, K).backend == "cpu"


def test_bad_backend_and_kernel_size():
    with pytest.raises(ValueError, match="backend"):
        be.resolve_backend("gpu")
    with pytest.raises(ValueError, match="kernel_size"):
        dc._tile_config(32, 32, dc.max_kernel_size() + 2, 3)


def test_package_imports_without_touching_cuda():
    code = ("import sys, dfd_lite as dl; import numpy as np; "
            "dl.grid_search(np.ones((8, 8)), np.ones((5, 8, 8)), dl.Camera.nyuv2(), [1.0, 2.0], 5,"
            " backend='cpu'); "
            "assert 'dfd_lite.cuda' not in sys.modules; assert 'numba.cuda' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_host_arrays_reach_the_device_with_plain_strides():
    # A gray stack moved to planar layout has a length-1 channel axis with
    # an odd stride; numba-cuda cannot reshape such a device array.
    planar = np.ascontiguousarray(np.moveaxis(np.zeros((5, 8, 16, 1), np.float32), -1, 1))
    assert planar.strides[1] != 8 * 16 * 4
    dev = dc._to_device(planar)
    assert tuple(dev.strides) == (8 * 16 * 4, 8 * 16 * 4, 16 * 4, 4)
    assert dc._flat(dev).shape == (5 * 8 * 16,)
