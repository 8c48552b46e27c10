import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import dfd_lite as dl  # noqa: E402
from dfd_lite import plotting  # noqa: E402

CAM = dl.Camera.nyuv2()


def test_figures_draw_what_they_are_given():
    s = dl.synthetic_scene((16, 20))
    stack = dl.focal_stack(s, CAM, kernel_size=5)
    fig = plotting.show_stack(stack, CAM)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["focus 1 m", "focus 1.5 m"]
    ax = plotting.plot_coc(CAM, depth_range=(0.5, 8.0))
    assert len(ax.lines) == CAM.num_planes
    np.testing.assert_allclose(ax.lines[0].get_ydata().min(), CAM.min_radius)
    res = dl.solve(stack, CAM, depth_range=(0.5, 8.0), kernel_size=5, num_depths=5,
                   num_epochs=2, aif_num_iters=3, progress=False)
    ax = plotting.plot_losses(res.history)
    assert ax.lines[0].get_ydata().tolist() == res.losses
    fig = plotting.compare_results(res, s)
    assert len(fig.axes) >= 4
    ax = plotting.show_depth(s.depth, vmin=1, vmax=6)
    assert ax.images[-1].get_clim() == (1, 6)
    plt.close("all")


def test_plots_draw_on_the_axes_they_are_given():
    # One convention: ax= in, the Axes (one panel) or the Figure (several) out.
    s = dl.synthetic_scene((12, 16))
    stack = dl.focal_stack(s, CAM, kernel_size=5)
    fig, axes = plt.subplots(2, 5)
    assert plotting.show_stack(stack, CAM, ax=axes[1]) is fig
    assert axes[1, 0].get_title() == "focus 1 m" and not axes[0, 0].images
    assert plotting.show_depth(s.depth, ax=axes[0, 0], colorbar=False) is axes[0, 0]
    assert plotting.plot_coc(CAM, ax=axes[0, 1]) is axes[0, 1]
    with pytest.raises(ValueError, match="one Axes per slice"):
        plotting.show_stack(stack, CAM, ax=axes[0, :2])
    plt.close("all")


def test_show_uncertainty_masks_inf_and_refuses_bad_shapes():
    import matplotlib
    matplotlib.use("Agg")
    from dfd_lite.plotting import show_uncertainty
    std = np.full((6, 7), 0.05)
    std[0, 0] = np.inf
    ax = show_uncertainty(std, title="u")
    img = ax.images[-1].get_array()
    assert bool(img.mask[0, 0]) and not bool(img.mask[1, 1])
    with pytest.raises(ValueError, match="depth_std must be 2-D"):
        show_uncertainty(np.zeros(5))
