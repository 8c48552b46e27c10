"""The TV-regularised image step and the noise-aware defaults of solve."""

import numpy as np
import pytest
import scipy.optimize as sopt

import dfd_lite as dl
from dfd_lite import engines
from dfd_lite.aif import tv_objective
from dfd_lite.solve import (MODEL_CHECK_EPOCH, MODEL_CHECK_ITERS, MODEL_CHECK_LEVEL,
                            MODEL_ERROR_RATIO, NOISE_FREE, NOISE_FREE_AIF_GROWTH, noise_defaults,
                            noise_floor)

CAM = dl.Camera.nyuv2()
CPU = engines.resolve("cpu")


def _tiny_problem(seed=0, shape=(8, 9), noise=0.02):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(1.0, 5.0, shape)
    truth = np.clip(np.kron(rng.random((4, 3)), np.ones((2, 3))), 0, 1)[:shape[0], :shape[1]]
    op = dl.BlurOperator(depth, CAM, kernel_size=5, backend="cpu")
    stack = op.forward(truth) + rng.normal(0, noise, (5,) + shape).astype(np.float32)
    return op, stack, truth


def _tv_exact(img):
    gy = np.zeros_like(img)
    gx = np.zeros_like(img)
    gy[:-1] = img[1:] - img[:-1]
    gx[:, :-1] = img[:, 1:] - img[:, :-1]
    return np.sqrt(gy ** 2 + gx ** 2).sum()


def test_gradient_and_divergence_are_minus_adjoints():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 7, 11)).astype(np.float32)
    p = rng.standard_normal((2, 3, 7, 11)).astype(np.float32)
    g = CPU.tv_grad(x, np.empty((2, 3, 7, 11), np.float32))
    d = CPU.tv_div(p, np.empty((3, 7, 11), np.float32))
    assert float((g * p).sum()) == pytest.approx(-float((x * d).sum()), rel=1e-5)
    assert CPU.tv_norm(x[:1]) == pytest.approx(_tv_exact(x[0].astype(np.float64)), rel=1e-5)


def test_tv_step_agrees_with_an_independent_solver():
    # Chambolle-Pock on the exact TV against L-BFGS-B (SciPy) on a smoothed
    # TV with the explicit sparse matrix: two algorithms, one minimum
    op, stack, _ = _tiny_problem()
    lam = 0.02
    a = op.to_sparse().toarray().astype(np.float64)
    b = stack.reshape(-1).astype(np.float64)
    shape = op.image_shape
    eps = 1e-5

    def smooth(v):
        img = v.reshape(shape)
        gy = np.zeros_like(img)
        gx = np.zeros_like(img)
        gy[:-1] = img[1:] - img[:-1]
        gx[:, :-1] = img[:, 1:] - img[:, :-1]
        n = np.sqrt(gy ** 2 + gx ** 2 + eps ** 2)
        r = a @ v - b
        f = 0.5 * r @ r + lam * n.sum()
        py, px = gy / n, gx / n
        div = np.zeros_like(img)
        div[:-1] -= py[:-1]
        div[1:] += py[:-1]
        div[:, :-1] -= px[:, :-1]
        div[:, 1:] += px[:, :-1]
        return f, a.T @ r + lam * div.reshape(-1)

    ref = sopt.minimize(smooth, np.full(a.shape[1], 0.5), jac=True, method="L-BFGS-B",
                        bounds=[(0.0, 1.0)] * a.shape[1],
                        options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-12})
    f_ref = 0.5 * np.sum((a @ ref.x - b) ** 2) + lam * _tv_exact(ref.x.reshape(shape))
    res = dl.tv_deconvolve(op, stack, tv_weight=lam, num_iters=4000)
    f_cp = res.objective[-1]
    assert f_cp == pytest.approx(f_ref, rel=2e-3)
    np.testing.assert_allclose(res.aif, ref.x.reshape(shape), atol=2e-2)


def test_tv_prior_beats_plain_deconvolution_on_noise():
    scene = dl.middlebury_scene((48, 64))
    op = dl.BlurOperator(scene.depth, CAM, backend="cpu")
    stack = dl.render_stack(scene.aif, scene.depth, CAM, noise_std=0.02, seed=3)
    plain = dl.fista(op, stack, num_iters=200)
    prior = dl.tv_deconvolve(op, stack, tv_weight=0.1 * 0.02, num_iters=300)
    assert dl.psnr(prior.aif, scene.aif) > dl.psnr(plain.aif, scene.aif) + 2.0
    assert prior.objective[-1] < prior.objective[0]


def test_tv_objective_and_refusals():
    op, stack, truth = _tiny_problem()
    x = CPU.asarray(truth[None])
    b = CPU.asarray(np.moveaxis(stack[..., None], -1, 1))
    data = 0.5 * float(((op.forward(truth) - stack).astype(np.float64) ** 2).sum())
    assert tv_objective(CPU, op.weights, b, x, 0.3) == pytest.approx(
        data + 0.3 * _tv_exact(truth), rel=1e-5)
    with pytest.raises(ValueError, match="tv_weight"):
        dl.tv_deconvolve(op, stack, tv_weight=0.0)
    with pytest.raises(TypeError, match="op must be"):
        dl.tv_deconvolve("op", stack, tv_weight=0.1)


def test_noise_defaults_rule():
    assert noise_defaults(0.0) == (1, 0.0)
    assert noise_defaults(NOISE_FREE * 0.99) == (1, 0.0)
    assert noise_defaults(0.005) == (9, pytest.approx(5e-4))
    assert noise_defaults(0.01)[0] == 15
    assert noise_defaults(0.1) == (21, pytest.approx(0.01))
    windows = [noise_defaults(s)[0] for s in np.linspace(0.002, 0.05, 30)]
    assert windows == sorted(windows) and all(w % 2 == 1 for w in windows)


def test_solve_on_a_clean_stack_is_the_papers_solver():
    scene = dl.synthetic_scene((32, 40), seed=5)
    stack = dl.render_stack(scene.aif, scene.depth, CAM, kernel_size=7)
    kwargs = dict(kernel_size=7, num_depths=20, num_epochs=2, aif_num_iters=20,
                  depth_range=(0.5, 8.0), progress=False, backend="cpu")
    auto = dl.solve(stack, CAM, **kwargs)
    paper = dl.solve(stack, CAM, window=1, tv_weight=0.0, **kwargs)
    assert auto.window == 1 and auto.tv_weight == 0.0 and auto.noise_std < NOISE_FREE
    np.testing.assert_array_equal(auto.depth, paper.depth)
    np.testing.assert_array_equal(auto.aif, paper.aif)


def _image_budgets(result):
    return [rec.num_iters for rec in result.history if rec.step == "aif"]


def test_image_budget_grows_only_on_noise_free_stacks():
    scene = dl.synthetic_scene((32, 40), seed=5)
    stack = dl.render_stack(scene.aif, scene.depth, CAM, kernel_size=7)
    kwargs = dict(kernel_size=7, num_depths=20, num_epochs=4, aif_num_iters=20,
                  depth_range=(0.5, 8.0), model_check=False, progress=False, backend="cpu")
    grown = [int(round(20 * NOISE_FREE_AIF_GROWTH ** e)) for e in range(4)]
    assert grown[-1] > grown[0]
    assert _image_budgets(dl.solve(stack, CAM, noise_std=0.0, **kwargs)) == grown
    # told the stack is noisy (the priors passed, so only the budget's rule differs)
    noisy = dl.solve(stack, CAM, noise_std=0.01, window=1, tv_weight=0.0, **kwargs)
    assert _image_budgets(noisy) == [20] * 4
    # an explicit growth is used as given, whatever the noise
    assert _image_budgets(dl.solve(stack, CAM, noise_std=0.01, aif_growth=1.5,
                                   **kwargs)) == [20, 30, 45, 68]


def test_solve_with_the_prior_never_raises_its_objective():
    # Per-pixel depth (window 1) with the TV prior: both steps descend on
    # 0.5 ||A x - b||^2 + lambda TV(x), and the history shows it. (With a
    # window the safeguard compares aggregated losses, a different criterion.)
    scene = dl.synthetic_scene((32, 40), seed=6)
    stack = dl.render_stack(scene.aif, scene.depth, CAM, kernel_size=7, noise_std=0.01, seed=2)
    res = dl.solve(stack, CAM, kernel_size=7, num_depths=20, num_epochs=4, aif_num_iters=30,
                   depth_range=(0.5, 8.0), window=1, progress=False, backend="cpu")
    assert res.tv_weight == pytest.approx(0.1 * res.noise_std) and res.window == 1
    assert res.noise_std == pytest.approx(0.01, rel=0.2)
    losses = np.array(res.losses)
    assert np.all(np.diff(losses) <= 1e-6 * losses[:-1]), losses


def _guided_brute_force(p, guide, window, eps):
    """He et al.'s guided filter written pixel by pixel (edges replicated)."""
    r = window // 2

    def box(a):
        pad = np.pad(a, r, mode="edge")
        out = np.empty_like(a)
        for y in range(a.shape[0]):
            for x in range(a.shape[1]):
                out[y, x] = pad[y:y + window, x:x + window].mean()
        return out

    mean_i, mean_p = box(guide), box(p)
    a = (box(guide * p) - mean_i * mean_p) / (box(guide * guide) - mean_i ** 2 + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def test_guided_aggregation_matches_brute_force_and_keeps_edges():
    rng = np.random.default_rng(4)
    guide = np.where(np.arange(11) < 5, 0.2, 0.8)[None, :].repeat(9, 0)
    guide = (guide + 0.01 * rng.standard_normal((9, 11))).astype(np.float32)
    volume = rng.random((3, 9, 11)).astype(np.float32)
    got = CPU.guided_mean(volume.copy(), guide, 5, 1e-3)
    for n in range(3):
        want = _guided_brute_force(volume[n].astype(np.float64), guide.astype(np.float64), 5,
                                   1e-3)
        np.testing.assert_allclose(got[n], want, atol=1e-5)
    # a step in the loss that follows the guide's edge survives; a box blurs it
    step = np.where(np.arange(11) < 5, 0.0, 1.0)[None, None, :].repeat(9, 1).astype(np.float32)
    guided = CPU.guided_mean(step.copy(), guide, 5, 1e-3)
    boxed = CPU.box_mean(step.copy(), 5)
    assert np.abs(guided - step).max() < 0.1 < np.abs(boxed - step).max()


def test_defaults_at_one_percent_noise_end_to_end():
    # Reduced Middlebury (96 x 128), 1 % noise, a short schedule: the noise
    # defaults (guided window 15, TV prior) against the paper's solver on the
    # same stack. Measured when written: 0.38 m / delta1 0.94 / 26.4 dB
    # against 2.10 m / 0.57 / 22.9 dB.
    scene = dl.middlebury_scene((96, 128))
    stack = dl.focal_stack(scene, CAM, noise_std=0.01, seed=1)
    kwargs = dict(num_epochs=4, aif_num_iters=50, progress=False, backend="cpu")
    auto = dl.solve(stack, CAM, **kwargs)
    paper = dl.solve(stack, CAM, window=1, tv_weight=0.0, **kwargs)
    m_auto = dl.depth_metrics(auto.depth, scene.depth, mask=scene.valid)
    m_paper = dl.depth_metrics(paper.depth, scene.depth, mask=scene.valid)
    assert m_auto["rmse"] < 0.5 and m_auto["delta1"] > 0.9
    assert m_auto["rmse"] < 0.3 * m_paper["rmse"]
    assert dl.psnr(auto.aif, scene.aif) > dl.psnr(paper.aif, scene.aif) + 2.0
    # the confidence map is informative: the 20 % least confident pixels are
    # at least twice as wrong (median) as the 50 % most confident (4.2x when written)
    err = np.abs(auto.depth - scene.depth)[scene.valid]
    order = np.argsort(auto.depth_std[scene.valid], kind="stable")
    n = order.size
    assert np.median(err[order[-n // 5:]]) >= 2.0 * np.median(err[order[:n // 2]])
    assert auto.depth_std.shape == scene.depth.shape and np.all(auto.depth_std >= 0)


def test_residual_rms_is_the_fits_residual():
    # against an independent forward pass of the returned depth and image
    scene = dl.synthetic_scene((24, 32), seed=2)
    stack = dl.render_stack(scene.aif, scene.depth, CAM, kernel_size=7, noise_std=0.01, seed=3)
    result = dl.solve(stack, CAM, kernel_size=7, num_depths=12, num_epochs=2, aif_num_iters=20,
                      depth_range=(0.5, 8.0), progress=False, backend="cpu")
    op = dl.BlurOperator(result.depth, CAM, kernel_size=7, backend="cpu")
    expected = np.sqrt(np.mean((op.forward(result.aif) - stack) ** 2))
    assert result.residual_rms == pytest.approx(expected, rel=1e-4)


def test_residual_rms_tells_model_error_from_noise():
    # bench/residual.py in small: with the model that rendered the stack the
    # residual falls to the noise; with a wrong PSF it stays well above it
    scene = dl.middlebury_scene((48, 64))
    sigma = 0.005
    kwargs = dict(num_depths=30, num_epochs=4, aif_num_iters=40, depth_range=(1.0, 8.0),
                  window=1, tv_weight=0.0, progress=False, backend="cpu")
    exact = dl.solve(dl.focal_stack(scene, CAM, noise_std=sigma, seed=1), CAM, **kwargs)
    assert 0.5 * sigma < exact.residual_rms < 1.2 * sigma
    disc_stack = dl.render_physical(scene.aif, scene.depth, CAM.with_psf("disc"),
                                    read_noise=sigma, seed=1)
    wrong = dl.solve(disc_stack, CAM, **kwargs)  # the paper's Gaussian on a disc's blur
    assert wrong.residual_rms > 2 * sigma


_CHECK_KWARGS = dict(num_depths=30, num_epochs=5, aif_num_iters=40, depth_range=(1.0, 8.0),
                     progress=False, backend="cpu")


def test_model_check_leaves_an_exact_model_alone():
    scene = dl.middlebury_scene((48, 64))
    stack = dl.focal_stack(scene, CAM, noise_std=0.005, seed=1)
    kwargs = dict(_CHECK_KWARGS, aif_num_iters=MODEL_CHECK_ITERS + 20)
    checked = dl.solve(stack, CAM, **kwargs)
    plain = dl.solve(stack, CAM, model_check=False, **kwargs)
    assert "prior" not in [rec.step for rec in checked.history] and not checked.restarted
    np.testing.assert_array_equal(checked.depth, plain.depth)
    np.testing.assert_array_equal(checked.aif, plain.aif)
    # noise-free, the epochs before the check's first decision are short,
    # and the next one makes up for them
    stack = dl.render_stack(scene.aif, scene.depth, CAM)
    checked = dl.solve(stack, CAM, **kwargs)
    plain = dl.solve(stack, CAM, model_check=False, **kwargs)
    assert not checked.restarted
    full = [int(round((MODEL_CHECK_ITERS + 20) * NOISE_FREE_AIF_GROWTH ** e)) for e in range(5)]
    assert MODEL_CHECK_EPOCH == 2 and _image_budgets(plain) == full
    skipped = full[0] + full[1] - 2 * MODEL_CHECK_ITERS
    assert _image_budgets(checked) == [MODEL_CHECK_ITERS] * 2 + [full[2] + skipped] + full[3:]
    rmse = {name: dl.depth_metrics(res.depth, scene.depth, mask=scene.valid)["rmse"]
            for name, res in (("checked", checked), ("plain", plain))}
    assert rmse["checked"] < 1.1 * rmse["plain"], rmse
    # with fewer than four epochs the check never decides, and no epoch is short
    short = dl.solve(stack, CAM, **dict(kwargs, num_epochs=3))
    assert _image_budgets(short) == full[:3]


def test_model_check_waits_for_a_fit_that_is_still_converging():
    # A short image step on an exact, noise-free model: after two epochs the
    # residual is still above twice the noise floor, but falling fast, so
    # the check must not take it for model error (a restart here would cost
    # a factor of three in depth error)
    scene = dl.synthetic_scene((32, 40), seed=0)
    stack = dl.render_stack(scene.aif, scene.depth, CAM)
    kwargs = dict(num_depths=30, num_epochs=4, aif_num_iters=20, depth_range=(0.5, 8.0),
                  progress=False, backend="cpu")
    kernel_size = dl.default_kernel_size(32, 40)
    residuals = []

    def record(epoch, depth, aif, history):
        op = dl.BlurOperator(depth, CAM, kernel_size=kernel_size, backend="cpu")
        residuals.append(float(np.sqrt(np.mean((op.forward(aif) - stack) ** 2))))

    checked = dl.solve(stack, CAM, callback=record, **kwargs)
    floor = noise_floor(checked.noise_std)
    second = MODEL_CHECK_EPOCH - 1
    assert residuals[second] > MODEL_ERROR_RATIO * floor, (residuals, floor)
    assert residuals[second] < MODEL_CHECK_LEVEL * residuals[second - 1], residuals
    assert "prior" not in [rec.step for rec in checked.history]
    plain = dl.solve(stack, CAM, model_check=False, **kwargs)
    np.testing.assert_array_equal(checked.depth, plain.depth)   # (20 iterations: none skipped)


def test_model_check_starts_again_with_priors_on_model_error():
    # the paper's Gaussian on a disc's blur, noise-free: the residual stays
    # far above the noise floor, so the solve starts again with a TV prior
    # (the window is passed, so only the prior's weight is the check's to set)
    scene = dl.middlebury_scene((48, 64))
    stack = dl.render_physical(scene.aif, scene.depth, CAM.with_psf("disc"))
    res = dl.solve(stack, CAM, window=1, **_CHECK_KWARGS)
    steps = [rec.step for rec in res.history]
    restart = 1 + 2 * MODEL_CHECK_EPOCH
    assert steps.count("prior") == 1 and steps[restart] == "prior", steps
    assert res.restarted
    assert steps[:restart] == ["init"] + ["depth", "aif"] * MODEL_CHECK_EPOCH
    # a noise-free stack's growing image budget stops growing at the restart
    budgets = _image_budgets(res)
    assert budgets[:MODEL_CHECK_EPOCH] == [MODEL_CHECK_ITERS] * MODEL_CHECK_EPOCH
    assert budgets[MODEL_CHECK_EPOCH:] == [40] * (len(budgets) - MODEL_CHECK_EPOCH)
    assert res.window == 1 and res.tv_weight > 0 and res.noise_std < NOISE_FREE
    # the new start's prior: the noise rule's at the residual the check saw,
    # which the fit under the prior keeps (up to a third either way)
    assert res.tv_weight == pytest.approx(noise_defaults(res.residual_rms)[1], rel=0.35)
    # each start's objective never rises (per-pixel depth steps, TV prior)
    losses = np.array(res.losses)
    for part in (losses[:restart], losses[restart:]):
        assert np.all(np.diff(part) <= 1e-6 * part[:-1]), part
    # the restart pays: the image is closer to the scene than without it
    plain = dl.solve(stack, CAM, window=1, model_check=False, **_CHECK_KWARGS)
    assert dl.psnr(res.aif, scene.aif) > dl.psnr(plain.aif, scene.aif) + 1.0
    # with both priors given there is nothing for the check to set
    fixed = dl.solve(stack, CAM, window=1, tv_weight=0.0, **_CHECK_KWARGS)
    np.testing.assert_array_equal(fixed.aif, plain.aif)
    with pytest.raises(TypeError, match="model_check"):
        dl.solve(stack, CAM, model_check="yes", **_CHECK_KWARGS)
