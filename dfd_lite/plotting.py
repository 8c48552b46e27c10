"""Figures used throughout the book.

One convention: every function takes its data positionally and its options
keyword-only, draws on ``ax=`` when given (else on a new figure), and
returns what it drew on: the Axes for a one-panel plot, the Figure for a
plot of several panels (where ``ax`` is a sequence of Axes).
"""

from __future__ import annotations

import numpy as np

from . import _validate as V
from .optics import Camera, coc_radius

__all__ = ["show_stack", "show_depth", "show_uncertainty", "plot_coc", "plot_losses",
           "compare_results"]


def _plt():
    import matplotlib.pyplot as plt
    return plt


def _shown(img):
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    return np.clip(img, 0.0, 1.0 if img.max() <= 1.0 else 255.0) / (1.0 if img.max() <= 1.0 else 255.0)


def show_stack(stack, camera: Camera = None, *, ax=None, title="slice"):
    """Show every slice of a focal stack side by side.

    Parameters
    ----------
    stack : array_like, shape (F, H, W, C) or (F, H, W)
    camera : Camera, optional
        Labels each slice with its focus distance.
    ax : sequence of matplotlib.axes.Axes, optional
        One per slice; default a new figure with one row.
    title : str
        Label of each slice when no camera is given.

    Returns
    -------
    matplotlib.figure.Figure
    """
    b, _ = V.as_stack(stack, camera)
    plt = _plt()
    n = b.shape[0]
    if ax is None:
        _, ax = plt.subplots(1, n, figsize=(2.6 * n, 2.6 * b.shape[1] / b.shape[2] + 0.5))
    axes = np.atleast_1d(ax).ravel()
    if axes.size < n:
        raise ValueError(f"ax must hold one Axes per slice ({n}), got {axes.size}")
    for i, a in enumerate(axes[:n]):
        a.imshow(_shown(b[i]), cmap="gray" if b.shape[-1] == 1 else None, vmin=0, vmax=1)
        label = f"focus {camera.focus_distances[i]:g} m" if camera is not None else f"{title} {i}"
        a.set_title(label, fontsize=9)
        a.axis("off")
    return axes[0].figure


def show_uncertainty(depth_std, *, ax=None, vmax=None, title=None, colorbar=True):
    """Show a depth uncertainty map (metres, e.g. ``SolveResult.depth_std``), ``inf`` in grey.

    Parameters
    ----------
    depth_std : array_like, shape (H, W)
    ax : matplotlib.axes.Axes, optional
    vmax : float, optional
        Top of the colour range in metres; default the 95th percentile of
        the finite values.
    title : str, optional
    colorbar : bool

    Returns
    -------
    matplotlib.axes.Axes
    """
    plt = _plt()
    std = np.asarray(depth_std, dtype=np.float64)
    if std.ndim != 2:
        raise ValueError(f"depth_std must be 2-D (H, W), got shape {std.shape}")
    finite = std[np.isfinite(std)]
    if vmax is None:
        vmax = float(np.percentile(finite, 95)) if finite.size else 1.0
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    cmap = plt.get_cmap("magma").with_extremes(bad="0.6")
    return _show_map(ax, np.ma.masked_invalid(std), cmap=cmap, vmin=0.0, vmax=vmax,
                     title=title, colorbar=colorbar, label="depth uncertainty (m)")


def _show_map(ax, image, *, cmap, vmin, vmax, title, colorbar, label):
    """One map on ``ax``: no axes, an optional title and a labelled colour bar."""
    im = ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax)
    if title:
        ax.set_title(title, fontsize=10)
    ax.axis("off")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    return ax


def show_depth(depth, *, ax=None, vmin=None, vmax=None, title=None, colorbar=True,
               cmap="turbo"):
    """Show a depth map (metres) with a colour bar.

    Parameters
    ----------
    depth : array_like, shape (H, W)
    ax : matplotlib.axes.Axes, optional
    vmin, vmax : float, optional
        Colour range in metres.
    title : str, optional
    colorbar : bool
    cmap : str

    Returns
    -------
    matplotlib.axes.Axes
        The image is ``ax.images[-1]``.
    """
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    return _show_map(ax, np.asarray(depth), cmap=cmap, vmin=vmin, vmax=vmax, title=title,
                     colorbar=colorbar, label="depth (m)")


def plot_coc(camera: Camera, *, depth_range=(0.1, 10.0), ax=None, clamp=True, num=400):
    """Blur radius against depth for each focus distance of a camera.

    Returns
    -------
    matplotlib.axes.Axes
    """
    plt = _plt()
    lo, hi = V.as_depth_range(depth_range)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    z = np.linspace(lo, hi, num)
    for zf, r in zip(camera.focus_distances, coc_radius(z, camera, clamp=clamp)):
        ax.plot(z, r, label=f"focus {zf:g} m")
    ax.set_xlabel("depth Z (m)")
    ax.set_ylabel("blur radius (px)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def plot_losses(history, *, ax=None, logy=True):
    """Loss after every sub-step of :func:`~dfd_lite.solve.solve`, coloured by step.

    Parameters
    ----------
    history : list of StepRecord
        ``SolveResult.history``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    loss = [rec.loss for rec in history]
    ax.plot(range(len(loss)), loss, color="0.6", lw=1)
    for step, marker, label in (("init", "s", "after init step"), ("depth", "o", "after depth step"),
                                ("aif", "^", "after aif step"),
                                ("prior", "D", "restart with priors (model check)")):
        idx = [i for i, rec in enumerate(history) if rec.step == step]
        if idx or step != "prior":
            ax.plot(idx, [loss[i] for i in idx], marker, label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("sub-step")
    ax.set_ylabel(r"$\frac{1}{2}\|A(Z)x-b\|^2$")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def compare_results(result, scene=None, *, ax=None, vmin=None, vmax=None):
    """Estimated depth and image next to the ground truth (when given).

    Parameters
    ----------
    result : SolveResult
    scene : Scene, optional
    ax : sequence of matplotlib.axes.Axes, optional
        Two (four with a scene); default a new figure with one row.
    vmin, vmax : float, optional
        Depth colour range; default the scene's.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    cols = 4 if scene is not None else 2
    if ax is None:
        _, ax = plt.subplots(1, cols, figsize=(3.4 * cols, 3))
    axes = np.atleast_1d(ax).ravel()
    if axes.size < cols:
        raise ValueError(f"ax must hold {cols} Axes, got {axes.size}")
    fig = axes[0].figure
    if scene is not None:
        vmin = float(np.nanmin(scene.depth)) if vmin is None else vmin
        vmax = float(np.nanmax(scene.depth)) if vmax is None else vmax
    show_depth(result.depth, ax=axes[0], vmin=vmin, vmax=vmax, title="estimated depth")
    axes[1].imshow(_shown(result.aif))
    axes[1].set_title("estimated all-in-focus", fontsize=10)
    axes[1].axis("off")
    if scene is not None:
        show_depth(scene.depth, ax=axes[2], vmin=vmin, vmax=vmax, title="true depth")
        axes[3].imshow(_shown(scene.aif))
        axes[3].set_title("true all-in-focus", fontsize=10)
        axes[3].axis("off")
    fig.tight_layout()
    return fig
