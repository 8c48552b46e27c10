"""The scatter model (dfd_lite.scatter): its operator, its depth step, and the solve's last stage."""

import numpy as np
import pytest

import dfd_lite as dl
from dfd_lite import engines
from dfd_lite.optics import thin_lens_coefficients
from dfd_lite.scatter import (ScatterEngine, _sweep_kernel, _tiles, canvas_depth, edge_pixels,
                              running_sums, scatter_depth_sweeps)
from dfd_lite.solve import SCATTER_EPOCHS

# Blur radii of 0.5 - 3.7 px over 1 - 5 m, as in the engine tests
CAM = dl.Camera(focal_length=0.05, f_number=8.0, pixel_size=3.6e-5,
                focus_distances=[1.0, 1.5, 2.5, 4.0, 6.0], min_radius=0.5)
K = 9
MARGIN = K // 2 + 1


def _edge_depth(h, w, column, near=1.2, far=4.5):
    """A near plane left of ``column`` in front of a far one: an occlusion edge."""
    depth = np.full((h, w), far, dtype=np.float32)
    depth[:, :column] = near
    return depth


def _dense_scatter(depth_c, camera, k, margin):
    """The operator from the dense gather matrix: ``crop(A_f^T x) / crop(A_f^T 1)`` per slice."""
    a = dl.blur_matrix(depth_c, camera, kernel_size=k).toarray().astype(np.float64)
    hc, wc = depth_c.shape
    n = hc * wc
    frame = np.zeros((hc, wc), bool)
    frame[margin:hc - margin, margin:wc - margin] = True
    blocks = []
    for f in range(camera.num_planes):
        s = a[f * n:(f + 1) * n].T                     # spread: column q is pixel q's PSF
        cover = s.sum(axis=1)
        blocks.append((s / cover[:, None])[frame.ravel()])
    return np.concatenate(blocks)                      # (F * H * W, Hc * Wc)


@pytest.mark.parametrize("psf", ["disc", "gaussian"])
def test_operator_matches_the_dense_scatter_and_its_transpose(psf):
    cam = CAM.with_psf(psf)
    rng = np.random.default_rng(0)
    h, w, n_c = 8, 10, 2
    depth_c = canvas_depth(_edge_depth(h, w, 4), MARGIN)
    depth_c[MARGIN + 2, MARGIN + 7] = 2.0                       # and one odd pixel
    dense = _dense_scatter(depth_c, cam, K, MARGIN)
    eng = engines.resolve("cpu", psf=psf)
    model = ScatterEngine(eng)
    weights = model.weights(depth_c, eng.optics(thin_lens_coefficients(cam), psf), K, MARGIN)
    x = rng.random((n_c,) + depth_c.shape).astype(np.float32)
    y = model.forward(x, weights)
    frame = (slice(None), slice(None), slice(MARGIN, MARGIN + h), slice(MARGIN, MARGIN + w))
    # the frame holds the model's prediction, the margin nothing
    expected = np.stack([dense @ x[c].ravel() for c in range(n_c)], axis=-1)
    np.testing.assert_allclose(np.moveaxis(y[frame], 1, -1).reshape(-1, n_c), expected,
                               rtol=1e-4, atol=1e-6)
    assert np.all(y[:, :, :MARGIN] == 0) and np.all(y[:, :, :, -MARGIN:] == 0)
    # the adjoint is the transpose: against the dense one, and the dot test
    r = rng.standard_normal(y.shape).astype(np.float32)
    r[:, :, :MARGIN] = 0.0
    minus = rng.standard_normal(y.shape).astype(np.float32)
    g = model.adjoint(r, weights)
    on_frame = np.moveaxis(r[frame], 1, -1).reshape(-1, n_c)
    np.testing.assert_allclose(g.reshape(n_c, -1).T, dense.T @ on_frame, rtol=1e-4, atol=1e-5)
    g_minus = model.adjoint(r + minus, weights, minus=minus, out=np.full(g.shape, np.nan,
                                                                           np.float32))
    np.testing.assert_allclose(g_minus, g, rtol=1e-4, atol=1e-5)
    lhs, rhs = float(np.vdot(y, r)), float(np.vdot(x, g))
    assert abs(lhs - rhs) <= 1e-4 * max(abs(lhs), 1.0)


def _scatter_loss(x, b, depth, psf, smooth):
    """The scatter model's squared error on the frame plus ``smooth`` times the depth's TV."""
    eng = engines.resolve("cpu", psf=psf)
    model = ScatterEngine(eng)
    optics = eng.optics(thin_lens_coefficients(CAM), psf)
    weights = model.weights(canvas_depth(depth, MARGIN), optics, K, MARGIN)
    pred = model.forward(x, weights)
    err = pred - model.pad_stack(b, MARGIN)
    tv = np.abs(np.diff(depth, axis=0)).sum() + np.abs(np.diff(depth, axis=1)).sum()
    return float(np.sum(err.astype(np.float64) ** 2)) + smooth * tv


def _edge_scene(psf, h=20, w=24, column=11):
    rng = np.random.default_rng(1)
    x = rng.random((3, h + 2 * MARGIN, w + 2 * MARGIN)).astype(np.float32)
    depth = _edge_depth(h, w, column)
    eng = engines.resolve("cpu", psf=psf)
    model = ScatterEngine(eng)
    optics = eng.optics(thin_lens_coefficients(CAM.with_psf(psf)), psf)
    weights = model.weights(canvas_depth(depth, MARGIN), optics, K, MARGIN)
    stack = model.forward(x, weights)[:, :, MARGIN:-MARGIN, MARGIN:-MARGIN]
    return x, np.ascontiguousarray(stack), depth, optics


@pytest.mark.parametrize("psf", ["disc", "gaussian"])
def test_sweeps_put_a_displaced_occlusion_edge_back(psf):
    # A stack rendered by the scatter model itself, and a start whose edge
    # is 3 px off (what the gather model's search leaves): the descent moves
    # the edge back, and every sweep lowers the scatter loss it minimises
    x, stack, true_depth, optics = _edge_scene(psf)
    start = _edge_depth(*true_depth.shape, 14)
    smooth = 1e-4
    losses = [_scatter_loss(x, stack, start, psf, smooth)]
    for sweeps in range(1, 6):      # a call's first passes are the same in every call
        depth, moves = scatter_depth_sweeps(x, stack, start, optics, K, margin=MARGIN,
                                            sweeps=sweeps, step=0.1, depth_range=(1.0, 5.0),
                                            smooth=smooth, engine=engines.resolve("cpu", psf=psf))
        losses.append(_scatter_loss(x, stack, depth, psf, smooth))
    assert all(after <= before * (1 + 1e-6) for before, after in zip(losses, losses[1:]))
    assert np.mean(start != true_depth) > 0.1
    # all of it, the frame's first and last rows too (the canvas beyond
    # them continues the border as the passes move it)
    np.testing.assert_array_equal(depth, true_depth)


def test_sweeps_leave_an_exact_depth_alone():
    x, stack, true_depth, optics = _edge_scene("disc")
    depth, moves = scatter_depth_sweeps(x, stack, true_depth, optics, K, margin=MARGIN,
                                        sweeps=2, step=0.1, depth_range=(1.0, 5.0), smooth=0.0,
                                        engine=engines.resolve("cpu", psf="disc"))
    assert moves == [0]
    np.testing.assert_array_equal(depth, true_depth)


def test_a_pass_does_not_depend_on_the_order_of_one_colour_s_tiles():
    # The pass updates tiles of one colour in parallel, which is sound only
    # if no pixel of one tile reads or writes what a pixel of another
    # changes; then visiting a colour's tiles in reverse order, or on more
    # threads, gives the same depth bit for bit
    x, stack, _, optics = _edge_scene("disc", h=40, w=44, column=19)
    start = _edge_depth(40, 44, 24)
    start[::7, 30] = 2.0                            # and stray pixels in the far plane
    eng = engines.resolve("cpu", psf="disc")
    depth_c = canvas_depth(start, MARGIN).astype(np.float64)
    light, cover = running_sums(x, depth_c, optics, K, MARGIN, engine=eng)
    visit, tile_start, colour_start, _ = _tiles(edge_pixels(start, 0.1, 2) + MARGIN, K // 2, 2,
                                                n_workers=1)
    assert np.all(np.diff(colour_start) >= 2)        # every colour has tiles to reorder

    def one_pass(tile_order, n_workers):
        pixels = np.concatenate([visit[tile_start[t]:tile_start[t + 1]] for t in tile_order])
        sizes = np.diff(tile_start)[tile_order]
        starts = np.append(0, np.cumsum(sizes)).astype(np.int64)
        workers = np.arange(len(tile_order), dtype=np.int64) % n_workers
        depth, sums = depth_c.copy(), (light.copy(), cover.copy())
        focus, coef, min_radius, _ = optics
        moves = _sweep_kernel(np.asarray(x, np.float64), np.asarray(stack, np.float64), depth,
                              *sums, pixels, starts, colour_start, workers, n_workers,
                              np.asarray(focus, np.float64), np.asarray(coef, np.float64),
                              float(min_radius), True, K // 2, MARGIN, 2, 0.1, 1.0, 5.0, 1e-4)
        return depth, sums, moves

    forward = np.arange(len(tile_start) - 1)
    backward = np.concatenate([forward[colour_start[c]:colour_start[c + 1]][::-1]
                               for c in range(4)])
    depth_a, sums_a, moves_a = one_pass(forward, 1)
    assert moves_a > 10
    for order, n_workers in ((backward, 1), (backward, 3), (forward, 2)):
        depth_b, sums_b, moves_b = one_pass(order, n_workers)
        assert moves_b == moves_a
        np.testing.assert_array_equal(depth_b, depth_a)
        np.testing.assert_array_equal(sums_b[0], sums_a[0])
        np.testing.assert_array_equal(sums_b[1], sums_a[1])


def test_sweeps_refuse_bad_arguments():
    x, stack, depth, optics = _edge_scene("disc")
    eng = engines.resolve("cpu", psf="disc")
    good = dict(margin=MARGIN, sweeps=1, step=0.1, depth_range=(1.0, 5.0), engine=eng)
    for bad, name in ((dict(margin=MARGIN + 1), "x"), (dict(step=-0.1), "step"),
                      (dict(sweeps=1.5), "sweeps"), (dict(smooth=-1.0), "smooth")):
        with pytest.raises((ValueError, TypeError), match=name):
            scatter_depth_sweeps(x, stack, depth, optics, K, **{**good, **bad})
    with pytest.raises(ValueError, match="b must be"):
        scatter_depth_sweeps(x, stack[0], depth, optics, K, **good)


def test_solve_spread_defaults_and_refusals():
    scene = dl.middlebury_scene((24, 32))
    stack = dl.render_physical(scene.aif, scene.depth, CAM)
    with pytest.raises(ValueError, match="spread"):
        dl.solve(stack, CAM.with_psf("disc"), spread="bounce", progress=False)
    quick = dict(num_epochs=2, num_depths=20, aif_num_iters=5, progress=False, backend="cpu",
                 depth_range=(1.0, 5.0))
    steps = [rec.step for rec in dl.solve(stack, CAM.with_psf("disc"), **quick).history]
    assert steps[-3:] == ["scatter-depth", "scatter-aif", "scatter-depth"]
    assert "scatter-depth" not in [rec.step for rec in dl.solve(stack, CAM, **quick).history]
    steps = [rec.step for rec in dl.solve(stack, CAM, spread="scatter", **quick).history]
    assert steps[-1] == "scatter-depth"
    # the alternation's length follows the spread unless it is given
    quick.pop("num_epochs")
    quick["aif_num_iters"] = 1
    for camera, spread, epochs in ((CAM.with_psf("disc"), None, SCATTER_EPOCHS),
                                   (CAM.with_psf("disc"), "gather", 10), (CAM, None, 10)):
        res = dl.solve(stack, camera, spread=spread, **quick)
        assert res.num_epochs == epochs
        assert [rec.epoch for rec in res.history if rec.step == "aif"] == list(range(epochs))


def test_scatter_stage_lowers_the_depth_error_on_a_physical_stack():
    # The physical renderer spreads light, the gather model does not: at the
    # scene's occlusion edges the scatter stage does better (not a stack
    # rendered by the solver's own model)
    cam = dl.Camera.nyuv2().with_psf("disc")
    scene = dl.middlebury_scene((72, 96))
    stack = dl.render_physical(scene.aif, scene.depth, cam)
    opts = dict(num_epochs=6, progress=False, backend="cpu")
    gather = dl.solve(stack, cam, spread="gather", **opts)
    scatter = dl.solve(stack, cam, **opts)
    err = {name: dl.depth_metrics(res.depth, scene.depth, mask=scene.valid)["rmse"]
           for name, res in (("gather", gather), ("scatter", scatter))}
    assert scatter.spread == "scatter" and gather.spread == "gather"
    assert err["scatter"] < 0.75 * err["gather"], err
    assert scatter.residual_rms < 0.5 * gather.residual_rms
    assert dl.psnr(scatter.aif, scene.aif) > dl.psnr(gather.aif, scene.aif)
    history = scatter.history
    assert [rec.step for rec in history[-3:]] == ["scatter-depth", "scatter-aif", "scatter-depth"]
    scatter_losses = [rec.loss for rec in history[-3:]]
    assert scatter_losses == sorted(scatter_losses, reverse=True)


def test_scatter_stage_is_kept_only_where_it_explains_the_stack_better():
    # A stack made by gathering (each pixel blurred with its own depth's
    # disc) is the gather model's own: there the scatter stage's residual
    # is higher, and the solve returns the alternation's result
    cam = dl.Camera.nyuv2().with_psf("disc")
    scene = dl.middlebury_scene((48, 64))
    opts = dict(num_epochs=4, progress=False, backend="cpu")
    gathered = dl.render_physical(scene.aif, scene.depth, cam, spread="gather")
    default, gather = dl.solve(gathered, cam, **opts), dl.solve(gathered, cam, spread="gather",
                                                                **opts)
    assert default.history[-1].step == "scatter-depth"
    assert default.spread == "gather" and gather.spread == "gather"
    np.testing.assert_array_equal(default.depth, gather.depth)
    np.testing.assert_array_equal(default.aif, gather.aif)
    assert default.residual_rms == gather.residual_rms
    scattered = dl.render_physical(scene.aif, scene.depth, cam)
    assert dl.solve(scattered, cam, **opts).spread == "scatter"
