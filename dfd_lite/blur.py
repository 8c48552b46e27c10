"""The thin-lens blur model as a linear operator ``b = A(Z) x``.

Gather form: output pixel ``p`` of slice ``i`` is a PSF-weighted sum of
the all-in-focus image around ``p``, the PSF's size set by the depth at
``p`` itself::

    b_i(p) = sum_o h_{r_i(p)}(o) x(p + o),   o in a K x K window

``camera.psf`` picks ``h``: the paper's Gaussian (the outer product of one
1-D Gaussian with itself, normalised over the window) or the disc of
geometric optics (each row a box of the disc's exact strip area, summed
with prefix sums so a radius-r disc costs O(r) per pixel). The radius is
``camera.blur_scale`` times the thin-lens blur radius. Pixels outside the
image are zero.

Three implementations of the same operator live here:

* :class:`BlurOperator` - matrix-free kernels of an engine (Numba on the
  CPU or CUDA, see :mod:`dfd_lite.engines`): the fast path;
* :func:`blur_matrix` - an explicit ``scipy.sparse`` matrix (teaching,
  and a test oracle for small images);
* :func:`blur_constant` - separable convolution, exact when the depth is
  the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from . import _validate as V
from . import engines
from .engines._scalar import gaussian_taps, psf_taps
from .optics import MAX_AUTO_KERNEL, PSF_SHAPES, Camera, check_kernel_size, psf_radius, \
    resolve_kernel_size, support_half_width, thin_lens_coefficients

__all__ = [
    "gaussian_weights",
    "psf_weights",
    "BlurOperator",
    "blur_matrix",
    "blur_constant",
    "render_stack",
    "dot_test",
    "DotTestResult",
]


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
    r = V.as_numeric_array(radius, "radius").astype(np.float64)
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError("radius must be finite and >= 0 (pixels)")
    return gaussian_taps(r, check_kernel_size(kernel_size))


def psf_weights(radius, kernel_size: int, *, psf: str = "gaussian"):
    """The model's 2-D PSF of the given radius in a ``kernel_size`` window.

    For ``"gaussian"`` the outer product of :func:`gaussian_weights`. For
    ``"disc"``, the disc as the operator computes it: each row ``dy`` is a
    centred box holding exactly the disc's area between ``dy - 1/2`` and
    ``dy + 1/2``, its end pixels weighted by the fraction they cover. Row
    sums are exact; :func:`dfd_lite.psf.disc_psf` (true pixel coverage,
    used by the physical renderer) differs only in how each row's ends are
    spread.

    Parameters
    ----------
    radius : array_like, shape ``S``
        PSF radius in pixels (>= 0).
    kernel_size : int
        Odd window ``K``.
    psf : {"gaussian", "disc"}

    Returns
    -------
    ndarray, shape ``S + (K, K)``, float32, each PSF summing to 1
    """
    r = V.as_numeric_array(radius, "radius").astype(np.float64)
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError("radius must be finite and >= 0 (pixels)")
    if psf not in PSF_SHAPES:
        raise ValueError(f"psf must be one of {PSF_SHAPES}, got {psf!r}")
    return psf_taps(r, check_kernel_size(kernel_size), psf)


class BlurOperator:
    """Matrix-free linear operator ``A(Z)`` for a fixed depth map.

    Parameters
    ----------
    depth : array_like, shape (H, W)
        Depth map in metres.
    camera : Camera
    kernel_size : int, optional
        Odd PSF window ``K``. Default: for the Gaussian the paper's rule,
        :func:`~dfd_lite.optics.default_kernel_size` of the image; for the disc the window
        that holds the widest PSF of ``depth`` (at most
        :data:`~dfd_lite.optics.MAX_AUTO_KERNEL`).
    backend : {"auto", "cpu", "cuda"} or engine, optional
        Where the kernels run; ``"auto"`` uses CUDA when a GPU is available,
        for the Gaussian (the CUDA disc kernels have run in Numba's simulator
        only so far: ask for them with ``backend="cuda"``).

    Attributes
    ----------
    engine : engine
        The :mod:`dfd_lite.engines` engine the operator runs on.
    weights : engine array, shape (F, K, H, W), float32
        Per-pixel 1-D Gaussian weights on the engine's device; for the disc
        a :class:`~dfd_lite.engines.DiscWeights` (row half-widths and
        ``1 / area``).
    shape : (int, int)
        ``(F * H * W, H * W)``: the operator on one channel of a flattened
        image. Channels are blurred independently with the same weights.

    Examples
    --------
    >>> import numpy as np, dfd_lite as dl
    >>> op = dl.BlurOperator(np.full((8, 8), 2.0), dl.Camera.nyuv2(), kernel_size=5)
    >>> op.forward(np.ones((8, 8, 3))).shape
    (5, 8, 8, 3)
    >>> op.shape
    (320, 64)
    """

    def __init__(self, depth, camera: Camera, *, kernel_size=None, backend="auto"):
        V.check_camera(camera)
        self.depth = V.as_depth(depth)
        self.camera = camera
        h, w = self.depth.shape
        if kernel_size is None and camera.psf == "disc":
            # the disc's window holds the widest PSF of this depth map (capped)
            widest = float(np.max(psf_radius(self.depth, camera)))
            kernel_size = min(2 * support_half_width(widest, "disc") + 1, MAX_AUTO_KERNEL,
                              2 * max(h, w) + 1)
        self.kernel_size = resolve_kernel_size(kernel_size, (h, w))
        self.engine = engines.resolve(backend, psf=camera.psf)
        self.weights = self.engine.weights(self.engine.asarray(self.depth),
                                           self.engine.optics(thin_lens_coefficients(camera), camera.psf),
                                           self.kernel_size)

    @property
    def backend(self):
        """``"cpu"`` or ``"cuda"``."""
        return self.engine.name

    @property
    def radii(self):
        """Blur radius of every output pixel in every slice, shape (F, H, W), pixels."""
        return psf_radius(self.depth, self.camera)

    @property
    def image_shape(self):
        """``(H, W)`` of the images this operator acts on."""
        return self.depth.shape

    @property
    def num_planes(self):
        return self.camera.num_planes

    @property
    def shape(self):
        h, w = self.image_shape
        return (self.num_planes * h * w, h * w)

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
        eng = self.engine
        y = eng.to_host(eng.forward(eng.asarray(np.moveaxis(x, -1, 0)), self.weights))
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
        eng = self.engine
        x = eng.to_host(eng.adjoint(eng.asarray(np.moveaxis(y, -1, 1)), self.weights))
        x = np.moveaxis(x, 0, -1)
        return np.ascontiguousarray(x[..., 0] if gray else x)

    def to_sparse(self):
        """This operator as an explicit sparse matrix (see :func:`blur_matrix`)."""
        return blur_matrix(self.depth, self.camera, kernel_size=self.kernel_size)

    def to_scipy(self, channels: int = 1):
        """This operator as a :class:`scipy.sparse.linalg.LinearOperator`.

        It acts on images ``(H, W, channels)`` flattened in C order and
        returns stacks ``(F, H, W, channels)`` flattened the same way, so
        SciPy's iterative solvers (``lsqr``, ``cg`` on the normal
        equations, ...) work on it.

        Parameters
        ----------
        channels : int
            Colour channels of the images it will be applied to.

        Returns
        -------
        scipy.sparse.linalg.LinearOperator, shape ``(F H W C, H W C)``, float32
        """
        n_c = V.as_positive_int(channels, "channels")
        h, w = self.image_shape
        n_f = self.num_planes

        def matvec(v):
            x = np.asarray(v, dtype=np.float32).reshape(h, w, n_c)
            return self.forward(x).reshape(-1)

        def rmatvec(v):
            y = np.asarray(v, dtype=np.float32).reshape(n_f, h, w, n_c)
            return self.adjoint(y).reshape(-1)

        return spla.LinearOperator((n_f * h * w * n_c, h * w * n_c), matvec=matvec,
                                   rmatvec=rmatvec, dtype=np.float32)

    def __repr__(self):
        h, w = self.image_shape
        return (f"BlurOperator(F={self.num_planes}, H={h}, W={w}, "
                f"kernel_size={self.kernel_size}, backend={self.backend!r})")


def blur_matrix(depth, camera: Camera, *, kernel_size=None, max_pixels: int = 200_000):
    """The blur operator as an explicit ``scipy.sparse`` matrix.

    Row ``i * H * W + p`` holds the PSF of output pixel ``p`` (row-major) in
    slice ``i``; column ``q`` is input pixel ``q``. Channels are blurred
    independently, so the same matrix applies to each of them.

    Parameters
    ----------
    depth : array_like, shape (H, W)
    camera : Camera
    kernel_size : int, optional
        Default :func:`~dfd_lite.optics.default_kernel_size` of the image.
    max_pixels : int, optional
        Refuse larger images: the matrix has ``F * H * W * K^2`` entries.

    Returns
    -------
    scipy.sparse.csr_matrix, float32
        Shape ``(F * H * W, H * W)``.
    """
    V.check_camera(camera)
    z = V.as_depth(depth)
    h, w = z.shape
    k = resolve_kernel_size(kernel_size, (h, w))
    if h * w > max_pixels:
        raise ValueError(f"depth has {h * w} pixels; blur_matrix is for small images "
                         f"(max_pixels={max_pixels})")
    n_f, half = camera.num_planes, k // 2
    wts = psf_taps(psf_radius(z, camera), k, camera.psf)  # (F, H, W, K, K)
    yy, xx = np.mgrid[0:h, 0:w]
    rows, cols, vals = [], [], []
    for i in range(n_f):
        for a in range(k):
            for b in range(k):
                qy, qx = yy + a - half, xx + b - half
                inside = (qy >= 0) & (qy < h) & (qx >= 0) & (qx < w)
                rows.append(i * h * w + (yy * w + xx)[inside])
                cols.append((qy * w + qx)[inside])
                vals.append(wts[i, :, :, a, b][inside])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n_f * h * w, h * w), dtype=np.float32)


def blur_constant(image, radius: float, *, kernel_size: int, psf: str = "gaussian"):
    """Blur with one PSF everywhere, zero outside the image.

    Equal to :class:`BlurOperator` for a constant depth whose PSF radius
    is ``radius``. The Gaussian runs as two 1-D passes, the disc as one 2-D
    correlation with the model's disc (:func:`psf_weights`).

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, C)
    radius : float
        PSF radius in pixels: the Gaussian's sigma or the disc's radius.
    kernel_size : int
    psf : {"gaussian", "disc"}

    Returns
    -------
    ndarray, same shape as ``image``, float32
    """
    x, gray = V.as_image(image, "image")
    if psf not in PSF_SHAPES:
        raise ValueError(f"psf must be one of {PSF_SHAPES}, got {psf!r}")
    if psf == "disc":
        kernel = psf_weights(float(radius), kernel_size, psf="disc")
        out = ndi.correlate(x, kernel[:, :, None], mode="constant", cval=0.0)
        return out[..., 0] if gray else out
    w = gaussian_weights(float(radius), kernel_size)
    out = ndi.correlate1d(x, w, axis=0, mode="constant", cval=0.0)
    out = ndi.correlate1d(out, w, axis=1, mode="constant", cval=0.0)
    return out[..., 0] if gray else out


def render_stack(aif, depth, camera: Camera, *, kernel_size=None, noise_std: float = 0.0,
                 seed=0, backend="auto"):
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
        Seed for the noise (default 0: the same stack every time).
    backend : {"auto", "cpu", "cuda"} or engine, optional

    Returns
    -------
    ndarray, shape (F, H, W, C) or (F, H, W), float32
    """
    x, gray = V.as_image(aif, "aif")
    z = V.as_depth(depth, shape=x.shape[:2])
    noise_std = V.as_real(noise_std, "noise_std", at_least=0.0)
    if noise_std > V.MAX_ABS_VALUE:
        raise ValueError(f"noise_std must be at most {V.MAX_ABS_VALUE:g} (image units), "
                         f"got {noise_std:g}")
    seed = V.as_seed(seed)
    op = BlurOperator(z, camera, kernel_size=kernel_size, backend=backend)
    stack = op.forward(x[..., 0] if gray else x)
    if noise_std > 0:
        rng = np.random.default_rng(seed)
        stack = stack + rng.normal(0.0, noise_std, stack.shape).astype(np.float32)
        stack = np.clip(stack, 0.0, 1.0, out=stack)
    return stack


@dataclass(frozen=True)
class DotTestResult:
    """Outcome of :func:`dot_test`.

    Attributes
    ----------
    passed : bool
        ``relative_error <= rtol``.
    forward_inner : float
        ``<A x, y>``, accumulated in float64.
    adjoint_inner : float
        ``<x, A^T y>``.
    relative_error : float
        ``|forward_inner - adjoint_inner| / max(|forward_inner|, |adjoint_inner|)``.
    rtol : float
    """

    passed: bool
    forward_inner: float
    adjoint_inner: float
    relative_error: float
    rtol: float

    def __bool__(self):
        return self.passed


def dot_test(op, *, seed: int = 0, channels: int = 3, rtol: float = 1e-4):
    """PyLops-style dot test: ``<A x, y>`` against ``<x, A^T y>`` for random ``x``, ``y``.

    Parameters
    ----------
    op : BlurOperator
    seed : int
    channels : int
    rtol : float
        Largest relative difference that passes. float32 rounding gives
        about 1e-6; a wrong adjoint gives order 1.

    Returns
    -------
    DotTestResult
        Truthy when the test passed, with both inner products.
    """
    if not isinstance(op, BlurOperator):
        raise TypeError(f"op must be a dfd_lite.BlurOperator, got {type(op).__name__}")
    rng = np.random.default_rng(seed)
    h, w = op.image_shape
    n_c = V.as_positive_int(channels, "channels")
    x = rng.standard_normal((n_c, h, w)).astype(np.float32)
    y = rng.standard_normal((op.num_planes, n_c, h, w)).astype(np.float32)
    eng = op.engine
    ax = eng.to_host(eng.forward(eng.asarray(x), op.weights)).astype(np.float64)
    aty = eng.to_host(eng.adjoint(eng.asarray(y), op.weights)).astype(np.float64)
    forward_inner = float(np.dot(ax.ravel(), y.ravel().astype(np.float64)))
    adjoint_inner = float(np.dot(x.ravel().astype(np.float64), aty.ravel()))
    scale = max(abs(forward_inner), abs(adjoint_inner), 1e-30)
    err = abs(forward_inner - adjoint_inner) / scale
    return DotTestResult(bool(err <= rtol), forward_inner, adjoint_inner, err, float(rtol))
