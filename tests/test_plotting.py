import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import dfd_lite as dl  # noqa: E402
from dfd_lite import plotting  # noqa: E402

CAM = dl.Camera.nyuv2()


def test_figures_draw_what_they_are_given():
    s = dl.synthetic_scene((16, 20))
    stack = dl.focal_stack(s, CAM, kernel_size=5)
    fig = plotting.show_stack(stack, CAM)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["focus 1 m", "focus 1.5 m"]
    ax = plotting.plot_coc(CAM, (0.5, 8.0))
    assert len(ax.lines) == CAM.num_planes
    np.testing.assert_allclose(ax.lines[0].get_ydata().min(), CAM.min_radius)
    res = dl.solve(stack, CAM, (0.5, 8.0), 5, num_depths=5, epochs=2, aif_iters=3, progress=False)
    ax = plotting.plot_losses(res.history)
    assert ax.lines[0].get_ydata().tolist() == res.losses
    fig = plotting.compare_results(res, s)
    assert len(fig.axes) >= 4
    im = plotting.show_depth(s.depth, vmin=1, vmax=6)
    assert im.get_clim() == (1, 6)
    plt.close("all")
