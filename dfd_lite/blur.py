"""The thin-lens blur model as a linear operator ``b = A(Z) x``.

Gather form: output pixel ``p`` of slice ``i`` is a Gaussian-weighted sum
of the all-in-focus image around ``p``, with sigma set by the depth at
``p`` itself::

    b_i(p) = sum_o G_{r_i(p)}(o) x(p + o),   o in a K x K window

The 2-D kernel is the outer product of one 1-D Gaussian with itself,
normalised to sum to 1 over the window. Pixels outside the image are zero.

Three implementations of the same operator live here:

* :class:`BlurOperator` - matrix-free Numba kernels (the fast path);
* :func:`blur_matrix` - an explicit ``scipy.sparse`` matrix (teaching,
  and a test oracle for small images);
* :func:`blur_constant` - separable convolution, exact when the depth is
  the same everywhere.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp

from . import _validate as V
from .optics import Camera, check_kernel_size, coc_radius, default_kernel_size

__all__ = [
    "gaussian_weights",
    "BlurOperator",
    "blur_matrix",
    "blur_constant",
    "render_stack",
    "dot_test",
    "planar_weights",
]

# Below this sigma the Gaussian is a delta at the window's centre; a floor
# keeps exp(-o^2 / 2 sigma^2) from dividing by zero.
_MIN_SIGMA = 1e-3


def gaussian_weights(radius, kernel_size: int):
    """Normalised 1-D Gaussian weights for a PSF of the given sigma.

    Parameters
    ----------
    radius : array_like, shape ``S``
        Gaussian sigma in pixels (the blur radius).
    kernel_size : int
        Odd window size ``K``.

    Returns
    -------
    ndarray, shape ``S + (K,)``, float32
        ``w`` with ``w.sum(-1) == 1``; the 2-D PSF is ``w[:, None] * w[None, :]``.
    """
    k = check_kernel_size(kernel_size)
    sigma = np.maximum(np.asarray(radius, dtype=np.float64), _MIN_SIGMA)[..., None]
    offsets = np.arange(k, dtype=np.float64) - k // 2
    g = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (g / g.sum(-1, keepdims=True)).astype(np.float32)


@numba.njit(parallel=True, fastmath=True, cache=True)
def _weights_kernel(depth, focus, coef, min_radius, k, out):
    # The numbers of gaussian_weights(coc_radius(depth)) in one pass, with
    # no (F, H, W, K) float64 temporaries; loops run along rows to vectorise.
    n_f = focus.shape[0]
    height, width = depth.shape
    half = k // 2
    for job in numba.prange(n_f * height):
        f = job // height
        y = job % height
        inv = np.empty(width, dtype=np.float32)
        total = np.zeros(width, dtype=np.float32)
        for xx in range(width):
            z = depth[y, xx]
            r = max(coef[f] * abs(z - focus[f]) / z, min_radius, 1e-3)
            inv[xx] = -0.5 / (r * r)
        for a in range(k):
            o2 = np.float32((a - half) * (a - half))
            row = out[f, a, y]
            for xx in range(width):
                g = math.exp(inv[xx] * o2)
                row[xx] = g
                total[xx] += g
        for a in range(k):
            row = out[f, a, y]
            for xx in range(width):
                row[xx] /= total[xx]


def planar_weights(depth, camera: Camera, kernel_size: int):
    """(H, W) depth -> (F, K, H, W) float32 per-pixel Gaussian weights."""
    d = np.ascontiguousarray(depth, dtype=np.float64)
    focus = np.asarray(camera.focus_distances, dtype=np.float64)
    f = camera.focal_length
    coef = camera.aperture * f / (focus - f) / (2.0 * camera.pixel_size)
    out = np.empty((camera.num_planes, kernel_size) + d.shape, dtype=np.float32)
    _weights_kernel(d, focus, coef, camera.min_radius, kernel_size, out)
    return out


# ---------------------------------------------------------------------------
# Numba kernels. Arrays are planar: images (C, H, W), stacks (F, C, H, W),
# weights (F, K, H, W). The innermost loops run along image rows so that
# they vectorise; padding is done once outside so they need no bounds tests.
# ---------------------------------------------------------------------------

@numba.njit(parallel=True, fastmath=True, cache=True)
def _forward_kernel(xpad, wts, out):
    n_f, k, height, width = wts.shape
    n_c = xpad.shape[0]
    for job in numba.prange(n_f * height):
        f = job // height
        y = job % height
        row = np.empty(width, dtype=np.float32)
        for c in range(n_c):
            acc = out[f, c, y]
            acc[:] = 0.0
            for a in range(k):
                src = xpad[c, y + a]
                for xx in range(width):
                    row[xx] = 0.0
                for b in range(k):
                    wb = wts[f, b, y]
                    for xx in range(width):
                        row[xx] += wb[xx] * src[xx + b]
                wa = wts[f, a, y]
                for xx in range(width):
                    acc[xx] += wa[xx] * row[xx]


@numba.njit(parallel=True, fastmath=True, cache=True)
def _adjoint_kernel(ystack, wts, outpad):
    # Scatter written as a gather over output rows: the thread that owns
    # padded output row R collects every input row that reaches it, so no
    # two threads ever write the same pixel.
    n_f, k, height, width = wts.shape
    n_c = ystack.shape[1]
    half = k // 2
    for rr in numba.prange(height):
        big_r = rr + half  # rows in the padding would be cropped: skip them
        t = np.empty(width, dtype=np.float32)
        for c in range(n_c):
            dst = outpad[c, big_r]
            dst[:] = 0.0
            for f in range(n_f):
                for a in range(k):
                    py = big_r - a
                    if py < 0 or py >= height:
                        continue
                    wa = wts[f, a, py]
                    src = ystack[f, c, py]
                    for xx in range(width):
                        t[xx] = wa[xx] * src[xx]
                    for b in range(k):
                        wb = wts[f, b, py]
                        for xx in range(width):
                            dst[xx + b] += t[xx] * wb[xx]


def _pad(x, half):
    c, h, w = x.shape
    xpad = np.zeros((c, h + 2 * half, w + 2 * half), dtype=np.float32)
    xpad[:, half:half + h, half:half + w] = x
    return xpad


def forward_planar(x, wts):
    """A x for planar float32 arrays: x (C, H, W), wts (F, K, H, W) -> (F, C, H, W)."""
    n_f, k, h, w = wts.shape
    out = np.empty((n_f, x.shape[0], h, w), dtype=np.float32)
    _forward_kernel(_pad(x, k // 2), wts, out)
    return out


def adjoint_planar(y, wts):
    """A^T y for planar float32 arrays: y (F, C, H, W), wts (F, K, H, W) -> (C, H, W)."""
    n_f, k, h, w = wts.shape
    half = k // 2
    outpad = np.zeros((y.shape[1], h + 2 * half, w + 2 * half), dtype=np.float32)
    _adjoint_kernel(np.ascontiguousarray(y, dtype=np.float32), wts, outpad)
    return np.ascontiguousarray(outpad[:, half:half + h, half:half + w])


class BlurOperator:
    """Matrix-free linear operator ``A(Z)`` for a fixed depth map.

    Parameters
    ----------
    depth : array_like, shape (H, W)
        Depth map in metres.
    camera : Camera
    kernel_size : int, optional
        Odd PSF window ``K``; default :func:`default_kernel_size` of the image.
    backend : {"auto", "cpu", "cuda"}, optional
        Where the kernels run; ``"auto"`` uses CUDA when a GPU is available.

    Attributes
    ----------
    weights : ndarray, shape (F, K, H, W), float32
        Per-pixel 1-D Gaussian weights.

    Examples
    --------
    >>> import numpy as np, dfd_lite as dl
    >>> op = dl.BlurOperator(np.full((8, 8), 2.0), dl.Camera.nyuv2(), kernel_size=5)
    >>> op.forward(np.ones((8, 8, 3))).shape
    (5, 8, 8, 3)
    """

    def __init__(self, depth, camera: Camera, kernel_size=None, backend="auto"):
        from .backend import resolve_backend

        V.check_camera(camera)
        self.depth = V.as_depth(depth)
        self.camera = camera
        h, w = self.depth.shape
        self.kernel_size = check_kernel_size(
            default_kernel_size(h, w) if kernel_size is None else kernel_size)
        self.backend = resolve_backend(backend)
        self.weights = planar_weights(self.depth, camera, self.kernel_size)
        self._device = None
        if self.backend == "cuda":
            from . import cuda as _cuda
            self._device = _cuda.DeviceBlur(self.weights)

    @property
    def radii(self):
        """Blur radius of every output pixel in every slice, shape (F, H, W), pixels."""
        return coc_radius(self.depth, self.camera)

    @property
    def image_shape(self):
        """``(H, W)`` of the images this operator acts on."""
        return self.depth.shape

    @property
    def num_planes(self):
        return self.camera.num_planes

    def forward_planar(self, x):
        """``A x`` on planar arrays: (C, H, W) float32 -> (F, C, H, W)."""
        if self._device is not None:
            return self._device.forward(x)
        return forward_planar(x, self.weights)

    def adjoint_planar(self, y):
        """``A^T y`` on planar arrays: (F, C, H, W) float32 -> (C, H, W)."""
        if self._device is not None:
            return self._device.adjoint(y)
        return adjoint_planar(y, self.weights)

    def forward(self, aif):
        """Render the focal stack of an all-in-focus image.

        Parameters
        ----------
        aif : array_like, shape (H, W, C) or (H, W)

        Returns
        -------
        ndarray, shape (F, H, W, C) or (F, H, W), float32
        """
        x, gray = V.as_image(aif, "aif")
        if x.shape[:2] != self.image_shape:
            raise ValueError(
                f"aif has shape {x.shape[:2]} but the depth map is {self.image_shape}")
        y = self.forward_planar(np.ascontiguousarray(np.moveaxis(x, -1, 0)))
        y = np.moveaxis(y, 1, -1)
        return np.ascontiguousarray(y[..., 0] if gray else y)

    def adjoint(self, stack):
        """Apply the transpose: a stack back to image space.

        Parameters
        ----------
        stack : array_like, shape (F, H, W, C) or (F, H, W)

        Returns
        -------
        ndarray, shape (H, W, C) or (H, W), float32
        """
        y, gray = V.as_stack(stack, self.camera, "stack")
        if y.shape[1:3] != self.image_shape:
            raise ValueError(
                f"stack has images of shape {y.shape[1:3]} but the depth map is {self.image_shape}")
        x = self.adjoint_planar(np.ascontiguousarray(np.moveaxis(y, -1, 1)))
        x = np.moveaxis(x, 0, -1)
        return np.ascontiguousarray(x[..., 0] if gray else x)

    def to_sparse(self):
        """This operator as an explicit sparse matrix (see :func:`blur_matrix`)."""
        return blur_matrix(self.depth, self.camera, self.kernel_size)

    def __repr__(self):
        h, w = self.image_shape
        return (f"BlurOperator(F={self.num_planes}, H={h}, W={w}, "
                f"kernel_size={self.kernel_size}, backend={self.backend!r})")


def blur_matrix(depth, camera: Camera, kernel_size: int, max_pixels: int = 200_000):
    """The blur operator as an explicit ``scipy.sparse`` matrix.

    Row ``i * H * W + p`` holds the PSF of output pixel ``p`` (row-major) in
    slice ``i``; column ``q`` is input pixel ``q``. Channels are blurred
    independently, so the same matrix applies to each of them.

    Parameters
    ----------
    depth : array_like, shape (H, W)
    camera : Camera
    kernel_size : int
    max_pixels : int, optional
        Refuse larger images: the matrix has ``F * H * W * K^2`` entries.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (F * H * W, H * W), float32
    """
    V.check_camera(camera)
    z = V.as_depth(depth)
    k = check_kernel_size(kernel_size)
    h, w = z.shape
    if h * w > max_pixels:
        raise ValueError(f"depth has {h * w} pixels; blur_matrix is for small images "
                         f"(max_pixels={max_pixels})")
    n_f, half = camera.num_planes, k // 2
    wts = gaussian_weights(coc_radius(z, camera), k)  # (F, H, W, K)
    yy, xx = np.mgrid[0:h, 0:w]
    rows, cols, vals = [], [], []
    for i in range(n_f):
        for a in range(k):
            for b in range(k):
                qy, qx = yy + a - half, xx + b - half
                inside = (qy >= 0) & (qy < h) & (qx >= 0) & (qx < w)
                rows.append(i * h * w + (yy * w + xx)[inside])
                cols.append((qy * w + qx)[inside])
                vals.append((wts[i, :, :, a] * wts[i, :, :, b])[inside])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n_f * h * w, h * w), dtype=np.float32)


def blur_constant(image, radius: float, kernel_size: int):
    """Blur with one Gaussian everywhere, as two 1-D zero-padded passes.

    Equal to :class:`BlurOperator` for a constant depth whose blur radius
    is ``radius``.

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, C)
    radius : float
        Gaussian sigma in pixels.
    kernel_size : int

    Returns
    -------
    ndarray, same shape as ``image``, float32
    """
    x, gray = V.as_image(image, "image")
    w = gaussian_weights(float(radius), kernel_size)
    out = ndi.correlate1d(x, w, axis=0, mode="constant", cval=0.0)
    out = ndi.correlate1d(out, w, axis=1, mode="constant", cval=0.0)
    return out[..., 0] if gray else out


def render_stack(aif, depth, camera: Camera, kernel_size=None, noise_std: float = 0.0,
                 seed=None, backend="auto"):
    """Synthesise a focal stack from an all-in-focus image and a depth map.

    Parameters
    ----------
    aif : array_like, shape (H, W, C) or (H, W)
        Sharp image; uint8 is scaled to [0, 1].
    depth : array_like, shape (H, W)
        Depth in metres.
    camera : Camera
    kernel_size : int, optional
        PSF window; default from the image size.
    noise_std : float, optional
        Standard deviation of additive Gaussian noise (image units), with
        the result clipped to [0, 1]. 0.01 is "1 % noise" on [0, 1] images.
    seed : int or numpy.random.Generator, optional
        Seed for the noise.

    Returns
    -------
    ndarray, shape (F, H, W, C) or (F, H, W), float32
    """
    x, gray = V.as_image(aif, "aif")
    z = V.as_depth(depth, shape=x.shape[:2])
    if not np.isscalar(noise_std) or not np.isfinite(noise_std) or noise_std < 0:
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
    op = BlurOperator(z, camera, kernel_size, backend=backend)
    stack = op.forward(x[..., 0] if gray else x)
    if noise_std > 0:
        rng = np.random.default_rng(seed)
        stack = stack + rng.normal(0.0, noise_std, stack.shape).astype(np.float32)
        stack = np.clip(stack, 0.0, 1.0, out=stack)
    return stack


def dot_test(op, seed=0, channels=3):
    """PyLops-style dot test: ``<A x, y>`` against ``<x, A^T y>``.

    Parameters
    ----------
    op : BlurOperator
    seed : int
    channels : int

    Returns
    -------
    (float, float)
        The two inner products, accumulated in float64. For an exact
        adjoint they agree to float32 rounding (relative 1e-5 or better).
    """
    rng = np.random.default_rng(seed)
    h, w = op.image_shape
    x = rng.standard_normal((channels, h, w)).astype(np.float32)
    y = rng.standard_normal((op.num_planes, channels, h, w)).astype(np.float32)
    ax = op.forward_planar(x)
    aty = op.adjoint_planar(y)
    return (float(np.dot(ax.ravel().astype(np.float64), y.ravel().astype(np.float64))),
            float(np.dot(x.ravel().astype(np.float64), aty.ravel().astype(np.float64))))
