"""Bad input fails early with a clear message naming the parameter."""
import numpy as np
import pytest

import dfd_lite as dl

CAM = dl.Camera.nyuv2()


@pytest.fixture(scope="module")
def stack():
    s = dl.synthetic_scene((16, 20))
    return dl.render_stack(s.aif, s.depth, CAM, kernel_size=5)


def _solve(stack, **kw):
    args = dict(kernel_size=5, num_depths=4, num_epochs=1, aif_num_iters=2, progress=False)
    args.update(kw)
    return dl.solve(stack, args.pop("camera", CAM), **args)


def test_wrong_stack_rank(stack):
    with pytest.raises(ValueError, match=r"stack must have shape \(F, H, W\) or \(F, H, W, C\)"):
        _solve(stack[0, :, :, 0])
    with pytest.raises(ValueError, match="stack"):
        _solve(stack[None])


def test_focus_count_must_match_stack(stack):
    with pytest.raises(ValueError, match="4 slices but camera.focus_distances has 5"):
        _solve(stack[:4])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_images(stack, bad):
    s = stack.copy()
    s[2, 3, 4, 1] = bad
    with pytest.raises(ValueError, match="stack contains NaN or inf"):
        _solve(s)
    aif = np.ones((16, 20, 3))
    aif[0, 0, 0] = bad
    with pytest.raises(ValueError, match="aif contains NaN or inf"):
        dl.render_stack(aif, np.full((16, 20), 2.0), CAM, kernel_size=5)


def test_focus_distance_not_beyond_focal_length():
    with pytest.raises(ValueError, match="beyond the focal length"):
        dl.Camera(0.05, 8, 1.2e-5, [1.0, 0.05])


@pytest.mark.parametrize("field", ["focal_length", "f_number", "pixel_size"])
def test_non_positive_optics(field):
    args = dict(focal_length=0.05, f_number=8.0, pixel_size=1.2e-5, focus_distances=[1, 2])
    args[field] = 0.0
    with pytest.raises(ValueError, match=field):
        dl.Camera(**args)


@pytest.mark.parametrize("rng_", [(2.0, 2.0), (5.0, 1.0), (0.0, 3.0), (-1, 2)])
def test_empty_or_inverted_depth_range(stack, rng_):
    with pytest.raises(ValueError, match="depth_range"):
        _solve(stack, depth_range=rng_)


def test_depth_range_type(stack):
    with pytest.raises(TypeError, match="depth_range"):
        _solve(stack, depth_range=3.0)


@pytest.mark.parametrize("k", [4, 1, 0, -3])
def test_even_or_too_small_kernel(stack, k):
    with pytest.raises(ValueError, match="kernel_size must be an odd integer"):
        _solve(stack, kernel_size=k)
    with pytest.raises(ValueError, match="kernel_size"):
        dl.BlurOperator(np.full((8, 8), 2.0), CAM, kernel_size=k)


def test_kernel_size_type():
    with pytest.raises(TypeError, match="kernel_size"):
        dl.BlurOperator(np.full((8, 8), 2.0), CAM, kernel_size=5.0)


def test_mismatched_aif_and_depth():
    with pytest.raises(ValueError, match="depth has shape"):
        dl.render_stack(np.ones((10, 12, 3)), np.full((10, 11), 2.0), CAM, kernel_size=5)
    op = dl.BlurOperator(np.full((10, 12), 2.0), CAM, kernel_size=5)
    with pytest.raises(ValueError, match="aif has shape"):
        op.forward(np.ones((12, 10, 3)))


def test_bad_depth_values():
    with pytest.raises(ValueError, match="depth must be positive"):
        dl.BlurOperator(np.zeros((8, 8)), CAM, kernel_size=5)
    with pytest.raises(ValueError, match="depth contains NaN"):
        dl.BlurOperator(np.full((8, 8), np.nan), CAM, kernel_size=5)


def test_non_numeric_input(stack):
    with pytest.raises(TypeError, match="stack"):
        _solve(np.array([["a"]]))
    with pytest.raises(TypeError, match="camera"):
        dl.solve(stack, "nyuv2")


def test_other_solver_parameters(stack):
    with pytest.raises(ValueError, match="num_epochs"):
        _solve(stack, num_epochs=0)
    with pytest.raises(ValueError, match="depth_tol"):
        _solve(stack, depth_tol=0.0)
    with pytest.raises(ValueError, match="aif_growth"):
        _solve(stack, aif_growth=float("nan"))
    with pytest.raises(TypeError, match="num_depths"):
        _solve(stack, num_depths=2.5)
    with pytest.raises(ValueError, match="window"):
        _solve(stack, window=2)
    with pytest.raises(ValueError, match="backend"):
        _solve(stack, backend="gpu")
    with pytest.raises(ValueError, match="expected \\[0, 1\\] or \\[0, 255\\]"):
        _solve(stack * 1000)


def test_uint8_and_grayscale_stacks_are_accepted(stack):
    as_u8 = np.round(stack * 255).astype(np.uint8)
    res = _solve(as_u8)
    assert res.aif.shape == (16, 20, 3) and res.aif.max() <= 1.0
    gray = _solve(stack.mean(-1))
    assert gray.aif.shape == (16, 20) and gray.depth.shape == (16, 20)
    scaled = _solve(stack * 255)      # a float stack in [0, 255] keeps its range
    assert scaled.aif.max() > 1.0


def test_negative_stacks_clipped_when_small_refused_when_large(stack):
    # black-level subtraction leaves small negatives: clipped, with a warning
    dipped = stack - stack.min() - 0.02
    with pytest.warns(UserWarning, match="small negative values"):
        res = _solve(dipped)
    assert np.isfinite(res.depth).all()
    with pytest.raises(ValueError, match="stack has values down to -0.4"):
        _solve(np.random.default_rng(0).random(stack.shape) - 0.5)


def test_depth_range_inside_the_focal_length(stack):
    with pytest.raises(ValueError, match="depth_range starts at 0.01 m, not beyond the focal"):
        _solve(stack, depth_range=(0.01, 5.0))


def test_stacks_without_depth_information_warn(stack):
    with pytest.warns(UserWarning, match="constant"):
        _solve(np.zeros_like(stack))
    one_focus = dl.Camera(0.05, 8.0, 1.2e-5, [1.0] * 5, 2.0)
    with pytest.warns(UserWarning, match="fewer than two distinct"):
        dl.solve(stack, one_focus, kernel_size=5, num_depths=4, num_epochs=1,
                 aif_num_iters=2, progress=False)


def test_rgba_is_refused_with_a_hint(stack):
    rgba = np.concatenate([stack, np.ones_like(stack[..., :1])], axis=-1)
    with pytest.raises(ValueError, match=r"4 channels, read as RGBA.*stack\[\.\.\., :3\]"):
        _solve(rgba)
    with pytest.raises(ValueError, match="aif has 4 channels"):
        dl.render_stack(np.ones((16, 20, 4)), np.full((16, 20), 2.0), CAM, kernel_size=5)


def test_depth_functions_check_the_stack_and_candidates_too(stack):
    aif = np.ones(stack.shape[1:], np.float32) * 0.5
    with pytest.raises(ValueError, match="stack has values down to"):
        dl.grid_search(aif, stack - 1.0, CAM, [1.0, 2.0], kernel_size=5)
    with pytest.raises(ValueError, match="candidates start at 0.03 m"):
        dl.depth_step(aif, stack, CAM, [0.03, 1.0, 2.0], kernel_size=5)
    with pytest.warns(UserWarning, match="constant"):
        dl.grid_search(aif, np.full_like(stack, 0.3), CAM, [1.0, 2.0], kernel_size=5)


def test_scalar_options_name_themselves(stack):
    with pytest.raises(TypeError, match="depth_tol must be a real number"):
        _solve(stack, depth_tol="1cm")
    with pytest.raises(TypeError, match="seed must be a non-negative integer"):
        dl.synthetic_scene((8, 8), seed=1.5)
    with pytest.raises(ValueError, match="aif has values of magnitude up to 1e\\+30"):
        dl.render_stack(np.full((8, 8), 1e30), np.full((8, 8), 2.0), CAM, kernel_size=3)
