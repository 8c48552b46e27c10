"""CUDA kernels (Numba) for the blur operator, the depth search and FISTA.

The GPU versions of the hot loops in :mod:`dfd_lite.blur`,
:mod:`dfd_lite.depth` and :mod:`dfd_lite.aif`. Nothing here is imported by
the rest of the package until ``backend="cuda"`` is asked for, so the
package works on machines without CUDA. With no GPU, setting
``NUMBA_ENABLE_CUDASIM=1`` before numba is imported runs the same kernels
in Numba's simulator (correct, but thousands of times slower).

Layout and conventions are those of the CPU code: planar float32 arrays,
images ``(C, H, W)``, stacks ``(F, C, H, W)``, weights ``(F, K, H, W)``.
Every array on the device is float32 (indices int32, reductions float64).

The kernels, one idea each:

* ``_forward_kernel`` - one thread per output pixel; the block's image
  tile plus a ``K - 1`` halo is staged in shared memory, because every
  pixel of the tile is read by up to ``K^2`` threads.
* ``_adjoint_kernel`` - the transpose as a *gather*: the thread that owns
  input pixel ``q`` sums every output pixel ``p`` whose window covers
  ``q``. No two threads write the same pixel, so no atomics are needed and
  the result is the exact transpose of the forward kernel's sums.
* ``_bank_columns_kernel``, ``_bank_rows_kernel``, ``_bank_loss_kernel`` - the grid search. A
  candidate is one depth for the whole image, so its blur is separable and
  shared by every candidate with the same radius: the image is blurred
  once per distinct radius into a bank, then one thread per pixel walks
  the candidates, reading the bank, and keeps a running minimum.
* ``_golden_kernel`` - one thread per pixel runs the golden-section search
  in ``[Z_{k-1}, Z_{k+1}]``; the per-pixel loss is a device function
  (thin-lens radius, Gaussian weights, ``K x K`` gather, all slices and
  channels).
* small element-wise and reduction kernels for FISTA, so that its iterates
  never leave the GPU.
"""

from __future__ import annotations

import math

import numpy as np

from .backend import import_numba_cuda

cuda = import_numba_cuda()  # before anything else touches numba.cuda

from numba import config, float32, float64  # noqa: E402

from .depth import GOLDEN, DepthResult  # noqa: E402
from .blur import gaussian_weights  # noqa: E402
from .optics import coc_radius  # noqa: E402

__all__ = [
    "DeviceBlur",
    "grid_search_planar",
    "golden_refine_planar",
    "depth_step_planar",
    "solver_steps",
    "DeviceSolver",
    "DeviceDepth",
    "DeviceFista",
    "device_lipschitz",
    "max_kernel_size",
]

# Compile-time constants. Globals of NumPy float32 type stay float32 in the
# kernels; a bare Python literal such as 0.5 would be a float64 and silently
# promote the arithmetic to double precision (slow on most GPUs).
_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_MINUS_HALF = np.float32(-0.5)
_MIN_SIGMA = np.float32(1e-3)   # as blur._MIN_SIGMA
_GOLDEN = np.float32(GOLDEN)
_INF = np.float32(np.inf)

# Threads per block of the 2-D kernels: BLOCK_SIDE^2 (16, 8 or 4). The
# simulator runs every thread as a Python thread; smaller blocks waste fewer
# of them at the image border and run about twice as fast there.
BLOCK_SIDE = 8 if getattr(config, "ENABLE_CUDASIM", 0) else 16
_MAX_K = 99                  # size of the per-thread weight array (local memory)
# Threads per block of the 1-D kernels (a power of two for the tree
# reduction); the simulator pays per thread at every syncthreads.
_TPB = 64 if getattr(config, "ENABLE_CUDASIM", 0) else 256
_SHARED_LIMIT = 48 * 1024    # bytes of dynamic shared memory a block may use
_SHARED_TARGET = 24 * 1024   # stage fewer channels at once beyond this (occupancy)
_VOLUME_BYTES = 1024 * 2**20  # blur bank and loss maps held at once by the grid search


def max_kernel_size() -> int:
    """Largest PSF window ``K`` the CUDA kernels accept."""
    return _MAX_K


# ---------------------------------------------------------------------------
# Device functions
# ---------------------------------------------------------------------------

@cuda.jit(device=True)
def _stage(x, tile, c0, cs, y0, x0, half, th, tw):
    """Copy channels ``c0 .. c0+cs-1`` of the block's tile (plus halo) to shared memory.

    ``tile[ci * th * tw + i * tw + j]`` holds ``x[c0 + ci, y0 - half + i,
    x0 - half + j]``, zero outside the image (the zero padding of the
    model). All threads of the block share the copying.
    """
    n_c, height, width = x.shape
    cuda.syncthreads()  # nobody may still be reading the previous tile
    tid = cuda.threadIdx.y * cuda.blockDim.x + cuda.threadIdx.x
    nth = cuda.blockDim.x * cuda.blockDim.y
    plane = th * tw
    total = min(cs, n_c - c0) * plane
    for s in range(tid, total, nth):
        ci = s // plane
        r = s - ci * plane
        i = r // tw
        j = r - i * tw
        yy = y0 - half + i
        xx = x0 - half + j
        v = _F0
        if yy >= 0 and yy < height and xx >= 0 and xx < width:
            v = x[c0 + ci, yy, xx]
        tile[s] = v
    cuda.syncthreads()  # the whole tile is written before anyone reads it


@cuda.jit(device=True)
def _blur_at(tile, ci, ty, tx, th, tw, wl, k):
    """``sum_a wl[a] sum_b wl[b] tile[ci, ty + a, tx + b]``: one blurred pixel."""
    acc = _F0
    base = ci * th * tw + ty * tw + tx
    for a in range(k):
        row = base + a * tw
        s = _F0
        for bb in range(k):
            s += wl[bb] * tile[row + bb]
        acc += wl[a] * s
    return acc


@cuda.jit(device=True)
def _gauss(z, focus, coef, rmin, k, wl):
    """Normalised 1-D Gaussian weights of depth ``z`` for one slice, into ``wl[:k]``.

    ``r = max(coef |z - focus| / z, rmin)`` is the thin-lens blur radius in
    pixels (``coef = D f / (focus - f) / (2 ps)``), as in ``blur.planar_weights``.
    """
    r = coef * abs(z - focus) / z
    r = max(r, rmin)
    r = max(r, _MIN_SIGMA)
    inv = _MINUS_HALF / (r * r)
    half = k // 2
    total = _F0
    for a in range(k):
        o2 = float32((a - half) * (a - half))
        g = math.exp(inv * o2)
        wl[a] = g
        total += g
    for a in range(k):
        wl[a] = wl[a] / total


@cuda.jit(device=True)
def _loss_at(z, x, b, tile, focus, coef, rmin, k, cs, restage, qy, qx, ty, tx,
             th, tw, y0, x0, wl):
    """Per-pixel loss ``sum_f sum_c (b - A(z) x)^2`` at depth ``z`` (the staged tile's pixel)."""
    n_f = b.shape[0]
    n_c = b.shape[1]
    half = k // 2
    loss = _F0
    for c0 in range(0, n_c, cs):
        if restage:  # the channels did not fit in shared memory at once
            _stage(x, tile, c0, cs, y0, x0, half, th, tw)
        for f in range(n_f):
            _gauss(z, focus[f], coef[f], rmin, k, wl)
            for ci in range(min(cs, n_c - c0)):
                d = _blur_at(tile, ci, ty, tx, th, tw, wl, k) - b[f, c0 + ci, qy, qx]
                loss += d * d
    return loss


# ---------------------------------------------------------------------------
# Kernels: blur operator
# ---------------------------------------------------------------------------

@cuda.jit
def _forward_kernel(x, w, out, cs):
    n_f, k, height, width = w.shape
    n_c = x.shape[0]
    half = k // 2
    tile = cuda.shared.array(0, dtype=float32)
    wl = cuda.local.array(_MAX_K, dtype=float32)
    ty = cuda.threadIdx.y
    tx = cuda.threadIdx.x
    y0 = cuda.blockIdx.y * cuda.blockDim.y
    x0 = cuda.blockIdx.x * cuda.blockDim.x
    th = cuda.blockDim.y + 2 * half
    tw = cuda.blockDim.x + 2 * half
    py = y0 + ty
    px = x0 + tx
    inside = py < height and px < width
    # Threads past the edge still help stage the tile; they read a valid
    # pixel's weights and never write.
    qy = min(py, height - 1)
    qx = min(px, width - 1)
    for c0 in range(0, n_c, cs):
        _stage(x, tile, c0, cs, y0, x0, half, th, tw)
        for f in range(n_f):
            for a in range(k):
                wl[a] = w[f, a, qy, qx]
            for ci in range(min(cs, n_c - c0)):
                v = _blur_at(tile, ci, ty, tx, th, tw, wl, k)
                if inside:
                    out[f, c0 + ci, py, px] = v


@cuda.jit
def _adjoint_kernel(y, b, w, out, subtract):
    # out[c, q] = sum_f sum_{a,b} w[f,a,p] w[f,b,p] (y - b)[f,c,p] over the
    # output pixels p = q - (a - half, b - half) that read q: a gather.
    qx, qy = cuda.grid(2)
    n_f, k, height, width = w.shape
    n_c = y.shape[1]
    half = k // 2
    if qy >= height or qx >= width:
        return
    for c in range(n_c):
        acc = _F0
        for f in range(n_f):
            for a in range(k):
                py = qy + half - a
                if py < 0 or py >= height:
                    continue
                wa = w[f, a, py]
                src = y[f, c, py]
                ref = b[f, c, py]
                for bb in range(k):
                    px = qx + half - bb
                    if px < 0 or px >= width:
                        continue
                    v = src[px]
                    if subtract:
                        v -= ref[px]
                    acc += wa[px] * w[f, bb, py, px] * v
        out[c, qy, qx] = acc


@cuda.jit
def _weights_kernel(depth, focus, coef, rmin, w):
    xx, yy = cuda.grid(2)
    n_f, k, height, width = w.shape
    if yy >= height or xx >= width:
        return
    wl = cuda.local.array(_MAX_K, dtype=float32)
    z = depth[yy, xx]
    for f in range(n_f):
        _gauss(z, focus[f], coef[f], rmin, k, wl)
        for a in range(k):
            w[f, a, yy, xx] = wl[a]


# ---------------------------------------------------------------------------
# Kernels: depth search
# ---------------------------------------------------------------------------

@cuda.jit
def _bank_columns_kernel(x, wu, tmp):
    # tmp[u, c] = x[c] blurred along columns with the 1-D weights wu[u],
    # zero outside the image, for every distinct radius u at once
    # (blockIdx.z runs over (u, c)). Two kernels for the two passes, not
    # one with an axis switch: a kernel is typed for one rank of source.
    xx, yy, z = cuda.grid(3)
    n_u, n_c, height, width = tmp.shape
    if xx >= width or yy >= height or z >= n_u * n_c:
        return
    u = z // n_c
    c = z - u * n_c
    k = wu.shape[1]
    half = k // 2
    acc = _F0
    for a in range(k):
        r = yy + a - half
        if r >= 0 and r < height:
            acc += wu[u, a] * x[c, r, xx]
    tmp[u, c, yy, xx] = acc


@cuda.jit
def _bank_rows_kernel(tmp, wu, bank):
    # bank[u, c] = tmp[u, c] blurred along rows with wu[u]: the second pass.
    xx, yy, z = cuda.grid(3)
    n_u, n_c, height, width = bank.shape
    if xx >= width or yy >= height or z >= n_u * n_c:
        return
    u = z // n_c
    c = z - u * n_c
    k = wu.shape[1]
    half = k // 2
    acc = _F0
    for a in range(k):
        q = xx + a - half
        if q >= 0 and q < width:
            acc += wu[u, a] * tmp[u, c, yy, q]
    bank[u, c, yy, xx] = acc


@cuda.jit
def _bank_loss_kernel(bank, b, plane_u, n0, keep_min, best, index, volume):
    # Loss of candidates n0, n0 + 1, ... at every pixel, from the blur bank:
    # candidate n predicts slice f with bank[plane_u[n - n0, f]]. keep_min:
    # fold into the running minimum best/index; else store in volume.
    xx, yy = cuda.grid(2)
    n_f, n_c, height, width = b.shape
    if xx >= width or yy >= height:
        return
    cur = best[yy, xx]
    cur_i = index[yy, xx]
    for j in range(plane_u.shape[0]):
        loss = _F0
        for f in range(n_f):
            u = plane_u[j, f]
            for c in range(n_c):
                d = bank[u, c, yy, xx] - b[f, c, yy, xx]
                loss += d * d
        if keep_min:
            if loss < cur:  # strict: the first of equal losses wins, as on the CPU
                cur = loss
                cur_i = n0 + j
        else:
            volume[j, yy, xx] = loss
    if keep_min:
        best[yy, xx] = cur
        index[yy, xx] = cur_i


@cuda.jit
def _box_kernel(src, dst, half, axis):
    # Mean over 2*half+1 pixels along one image axis (0: rows, 1: columns),
    # edges repeated, for every map of a (N, H, W) volume: one pass of
    # scipy.ndimage.uniform_filter(mode="nearest").
    xx, yy = cuda.grid(2)
    n_maps, height, width = src.shape
    if yy >= height or xx >= width:
        return
    scale = _F1 / float32(2 * half + 1)
    for n in range(n_maps):
        acc = _F0
        for j in range(-half, half + 1):
            if axis == 0:
                acc += src[n, min(max(yy + j, 0), height - 1), xx]
            else:
                acc += src[n, yy, min(max(xx + j, 0), width - 1)]
        dst[n, yy, xx] = acc * scale


@cuda.jit
def _volume_min_kernel(volume, n0, best, index):
    # Running minimum over the maps of a volume holding candidates n0, n0+1, ...
    xx, yy = cuda.grid(2)
    n_maps, height, width = volume.shape
    if yy >= height or xx >= width:
        return
    cur = best[yy, xx]
    cur_i = index[yy, xx]
    for j in range(n_maps):
        v = volume[j, yy, xx]
        if v < cur:
            cur = v
            cur_i = n0 + j
    best[yy, xx] = cur
    index[yy, xx] = cur_i


@cuda.jit
def _depth_loss_kernel(x, b, depth, focus, coef, rmin, k, cs, out):
    # Per-pixel loss of a depth map (the grid point's loss, the safeguard).
    n_f, n_c, height, width = b.shape
    half = k // 2
    tile = cuda.shared.array(0, dtype=float32)
    wl = cuda.local.array(_MAX_K, dtype=float32)
    ty = cuda.threadIdx.y
    tx = cuda.threadIdx.x
    y0 = cuda.blockIdx.y * cuda.blockDim.y
    x0 = cuda.blockIdx.x * cuda.blockDim.x
    th = cuda.blockDim.y + 2 * half
    tw = cuda.blockDim.x + 2 * half
    py = y0 + ty
    px = x0 + tx
    qy = min(py, height - 1)
    qx = min(px, width - 1)
    restage = cs < n_c
    if not restage:
        _stage(x, tile, 0, cs, y0, x0, half, th, tw)
    loss = _loss_at(depth[qy, qx], x, b, tile, focus, coef, rmin, k, cs, restage,
                    qy, qx, ty, tx, th, tw, y0, x0, wl)
    if py < height and px < width:
        out[py, px] = loss


@cuda.jit
def _golden_kernel(x, b, focus, coef, rmin, k, cs, cands, index, steps, depth_out, loss_out):
    # Golden-section search per pixel in [Z_{i-1}, Z_{i+1}], with the same
    # fixed number of steps for every pixel (as depth._golden_planar), and
    # the best point evaluated, the grid point included, as the answer.
    n_f, n_c, height, width = b.shape
    half = k // 2
    tile = cuda.shared.array(0, dtype=float32)
    wl = cuda.local.array(_MAX_K, dtype=float32)
    ty = cuda.threadIdx.y
    tx = cuda.threadIdx.x
    y0 = cuda.blockIdx.y * cuda.blockDim.y
    x0 = cuda.blockIdx.x * cuda.blockDim.x
    th = cuda.blockDim.y + 2 * half
    tw = cuda.blockDim.x + 2 * half
    py = y0 + ty
    px = x0 + tx
    qy = min(py, height - 1)
    qx = min(px, width - 1)
    restage = cs < n_c
    if not restage:
        _stage(x, tile, 0, cs, y0, x0, half, th, tw)
    n = cands.shape[0]
    i = index[qy, qx]
    lo = cands[max(i - 1, 0)]
    hi = cands[min(i + 1, n - 1)]
    best_z = cands[i]
    best_f = _loss_at(best_z, x, b, tile, focus, coef, rmin, k, cs, restage,
                      qy, qx, ty, tx, th, tw, y0, x0, wl)
    c = hi - _GOLDEN * (hi - lo)
    d = lo + _GOLDEN * (hi - lo)
    fc = _loss_at(c, x, b, tile, focus, coef, rmin, k, cs, restage,
                  qy, qx, ty, tx, th, tw, y0, x0, wl)
    fd = _loss_at(d, x, b, tile, focus, coef, rmin, k, cs, restage,
                  qy, qx, ty, tx, th, tw, y0, x0, wl)
    for _ in range(steps):
        left = fc <= fd  # the minimum lies in [lo, d]; else in [c, hi]
        if left:
            hi = d
            d = c
            fd = fc
            c = hi - _GOLDEN * (hi - lo)
            z_new = c
        else:
            lo = c
            c = d
            fc = fd
            d = lo + _GOLDEN * (hi - lo)
            z_new = d
        # Evaluated outside the branch: _loss_at may synchronise the block,
        # which every thread must reach.
        f_new = _loss_at(z_new, x, b, tile, focus, coef, rmin, k, cs, restage,
                         qy, qx, ty, tx, th, tw, y0, x0, wl)
        if left:
            fc = f_new
        else:
            fd = f_new
    if fc < best_f:
        best_z = c
        best_f = fc
    if fd < best_f:
        best_z = d
        best_f = fd
    if py < height and px < width:
        depth_out[py, px] = best_z
        loss_out[py, px] = best_f


# ---------------------------------------------------------------------------
# Kernels: element-wise and reductions (FISTA, power iteration)
# ---------------------------------------------------------------------------

@cuda.jit
def _fill_kernel(a, value):
    i = cuda.grid(1)
    if i < a.size:
        a[i] = value


@cuda.jit
def _prox_step_kernel(y, g, out, step, lo, hi):
    # out = clip(y - step * g, lo, hi): the projected gradient step
    i = cuda.grid(1)
    if i < out.size:
        out[i] = min(max(y[i] - step * g[i], lo), hi)


@cuda.jit
def _extrapolate_kernel(new, old, out, beta):
    # out = new + beta * (new - old): Nesterov's extrapolation
    i = cuda.grid(1)
    if i < out.size:
        v = new[i]
        out[i] = v + beta * (v - old[i])


@cuda.jit
def _sum_sq_kernel(a, b, subtract, out, slot):
    # out[slot] += sum (a - b)^2 (or sum a^2). Each thread sums a grid-stride
    # share; after one barrier the first thread of every 32 adds up its
    # group's partial sums and makes one float64 atomic add. (A tree
    # reduction needs log2(threads) barriers; one is enough here.)
    buf = cuda.shared.array(_TPB, dtype=float32)
    t = cuda.threadIdx.x
    acc = _F0
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        v = a[i]
        if subtract:
            v -= b[i]
        acc += v * v
    buf[t] = acc
    cuda.syncthreads()
    if t % 32 == 0:
        s = _F0
        for j in range(t, min(t + 32, _TPB)):
            s += buf[j]
        cuda.atomic.add(out, slot, float64(s))


@cuda.jit
def _normalise_kernel(u, v, sums, slot):
    # v = u / ||u||, with ||u||^2 read from device memory (no host round trip)
    i = cuda.grid(1)
    if i < v.size:
        v[i] = u[i] / float32(math.sqrt(sums[slot]))


# ---------------------------------------------------------------------------
# Host helpers
# ---------------------------------------------------------------------------

def _is_device_array(a):
    return bool(getattr(a, "__cuda_ndarray__", False))


def _to_device(a, name="array"):
    """A float32 C-contiguous device array from a host or device array."""
    if _is_device_array(a):
        if np.dtype(a.dtype) != np.float32:
            raise TypeError(f"{name} on the device must be float32, got {a.dtype}")
        return a
    if hasattr(a, "__cuda_array_interface__"):  # e.g. a CuPy array
        arr = cuda.as_cuda_array(a)
        if np.dtype(arr.dtype) != np.float32:
            raise TypeError(f"{name} on the device must be float32, got {arr.dtype}")
        return arr
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.strides != _c_strides(a.shape, a.itemsize):
        # NumPy calls an array with a length-1 axis contiguous whatever that
        # axis's stride; numba-cuda's reshape does not, so normalise it.
        a = a.copy()
    return cuda.to_device(a)


def _c_strides(shape, itemsize):
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def _blocks1(n):
    return max(1, (n + _TPB - 1) // _TPB)


def _grid2(height, width, side=None):
    side = BLOCK_SIDE if side is None else side
    return ((width + side - 1) // side, (height + side - 1) // side), (side, side)


def _tile_config(height, width, k, n_c):
    """Launch geometry of the shared-memory kernels.

    Returns ``(grid, block, cs, nbytes)``: 2-D grid and block, the number
    ``cs`` of channels staged at once, and the dynamic shared memory in
    bytes (per channel: the tile with its halo).
    """
    if k > _MAX_K:
        raise ValueError(f"kernel_size {k} is larger than the CUDA kernels support "
                         f"({_MAX_K}); use backend='cpu'")
    for side in (16, 8, 4):
        plane = (side + k - 1) * (side + k - 1) * 4
        if side <= BLOCK_SIDE and plane <= _SHARED_LIMIT:
            break
    cs = int(max(1, min(n_c, _SHARED_TARGET // plane)))
    grid, block = _grid2(height, width, side)
    return grid, block, cs, cs * plane


def _camera_arrays(camera):
    """Device arrays ``focus`` and ``coef`` (F,) float32 and ``rmin`` of the thin-lens radius."""
    focus = np.asarray(camera.focus_distances, dtype=np.float64)
    f = camera.focal_length
    coef = camera.aperture * f / (focus - f) / (2.0 * camera.pixel_size)
    return (cuda.to_device(focus.astype(np.float32)), cuda.to_device(coef.astype(np.float32)),
            np.float32(camera.min_radius))


def _golden_steps(cands, idx, tol):
    """Golden-section steps of depth._golden_planar: set by the widest bracket."""
    n = cands.size
    lo = cands[np.maximum(idx - 1, 0)]
    hi = cands[np.minimum(idx + 1, n - 1)]
    width = float(np.max(hi - lo)) if lo.size else 0.0
    return max(0, math.ceil(math.log(tol / width) / math.log(GOLDEN))) if width > tol else 0


# ---------------------------------------------------------------------------
# The blur operator on the device
# ---------------------------------------------------------------------------

class DeviceBlur:
    """The blur operator ``A`` with its weights resident on the GPU.

    Parameters
    ----------
    weights : array_like or device array, shape (F, K, H, W), float32
        Per-pixel 1-D Gaussian weights (``blur.planar_weights``).

    Notes
    -----
    :meth:`forward` and :meth:`adjoint` accept host or device arrays and
    return host arrays; :meth:`forward_device` / :meth:`adjoint_device`
    keep the result on the device, for iterative solvers.
    """

    def __init__(self, weights):
        self.weights = _to_device(weights, "weights")
        if len(self.weights.shape) != 4:
            raise ValueError(f"weights must have shape (F, K, H, W), got {self.weights.shape}")
        n_f, k, h, w = (int(s) for s in self.weights.shape)
        if k % 2 == 0 or k > _MAX_K:
            raise ValueError(f"weights have an unsupported kernel size {k}")
        self.num_planes, self.kernel_size, self.image_shape = n_f, k, (h, w)

    @classmethod
    def from_depth(cls, depth, camera, kernel_size):
        """Weights computed on the device from a depth map (H, W), metres."""
        d = _to_device(depth, "depth")
        h, w = (int(s) for s in d.shape)
        if kernel_size > _MAX_K:
            raise ValueError(f"kernel_size {kernel_size} is larger than the CUDA kernels "
                             f"support ({_MAX_K}); use backend='cpu'")
        focus, coef, rmin = _camera_arrays(camera)
        wts = cuda.device_array((camera.num_planes, kernel_size, h, w), dtype=np.float32)
        grid, block = _grid2(h, w)
        _weights_kernel[grid, block](d, focus, coef, rmin, wts)
        return cls(wts)

    def _check(self, shape, ndim, name):
        if len(shape) != ndim or tuple(shape[-2:]) != self.image_shape or \
                (ndim == 4 and shape[0] != self.num_planes):
            want = "(C, H, W)" if ndim == 3 else "(F, C, H, W)"
            raise ValueError(f"{name} must have shape {want} with (H, W) = {self.image_shape}"
                             f"{' and F = %d' % self.num_planes if ndim == 4 else ''}, "
                             f"got {tuple(shape)}")

    def forward_device(self, x, out=None):
        """``A x`` on the device: (C, H, W) -> (F, C, H, W) device array."""
        x = _to_device(x, "x")
        self._check(x.shape, 3, "x")
        n_c = int(x.shape[0])
        h, w = self.image_shape
        if out is None:
            out = cuda.device_array((self.num_planes, n_c, h, w), dtype=np.float32)
        grid, block, cs, nbytes = _tile_config(h, w, self.kernel_size, n_c)
        _forward_kernel[grid, block, 0, nbytes](x, self.weights, out, cs)
        return out

    def adjoint_device(self, y, out=None, minus=None):
        """``A^T y`` (or ``A^T (y - minus)``) on the device: (F, C, H, W) -> (C, H, W)."""
        y = _to_device(y, "y")
        self._check(y.shape, 4, "y")
        n_c = int(y.shape[1])
        h, w = self.image_shape
        if out is None:
            out = cuda.device_array((n_c, h, w), dtype=np.float32)
        grid, block = _grid2(h, w)
        if minus is None:
            _adjoint_kernel[grid, block](y, y, self.weights, out, False)
        else:
            _adjoint_kernel[grid, block](y, minus, self.weights, out, True)
        return out

    def forward(self, x):
        """``A x``: x (C, H, W) float32 (host or device) -> (F, C, H, W) host array."""
        return self.forward_device(x).copy_to_host()

    def adjoint(self, y):
        """``A^T y``: y (F, C, H, W) float32 (host or device) -> (C, H, W) host array."""
        return self.adjoint_device(y).copy_to_host()


def _flat(a):
    return a.reshape(int(np.prod(a.shape)))


class DeviceFista:
    """FISTA for ``min 0.5 ||A x - b||^2, lo <= x <= hi`` with every iterate on the GPU.

    The same iteration as ``aif._fista_planar`` (momentum on): ``A y`` is
    obtained from ``A x_new + beta (A x_new - A x)`` so each iteration is
    one adjoint and one forward pass. The objective of every iteration is
    accumulated on the device and copied once, by :meth:`objective`.

    Parameters
    ----------
    blur : DeviceBlur
    b : device array, shape (F, C, H, W), float32
    lipschitz : float
    lo, hi : float
    """

    def __init__(self, blur, b, lipschitz, lo, hi):
        self.blur, self.b = blur, b
        self.step = np.float32(1.0 / lipschitz)
        self.lo, self.hi = np.float32(lo), np.float32(hi)
        shape_x = (int(b.shape[1]),) + blur.image_shape
        shape_b = tuple(int(s) for s in b.shape)
        self.x, self.xn, self.y, self.g = (cuda.device_array(shape_x, np.float32)
                                           for _ in range(4))
        self.ax, self.axn, self.ay = (cuda.device_array(shape_b, np.float32) for _ in range(3))
        self._sums = None
        self._count = 0

    def start(self, x0, max_iters):
        """Set the starting image (C, H, W) and room for ``max_iters`` objective values."""
        x0 = _to_device(x0, "x0")
        self.x.copy_to_device(x0)
        self.y.copy_to_device(x0)
        self.blur.forward_device(self.x, out=self.ax)
        self.ay.copy_to_device(self.ax)
        self.t = 1.0
        self._sums = cuda.to_device(np.zeros(max(1, max_iters), dtype=np.float64))
        self._count = 0

    def iterate(self, num_iters):
        """Run ``num_iters`` iterations; only kernel launches, no host synchronisation."""
        nx = int(np.prod(self.x.shape))
        nb = int(np.prod(self.ax.shape))
        red_blocks = min(_blocks1(nb), 1024)
        for _ in range(num_iters):
            if self._count >= self._sums.shape[0]:
                raise RuntimeError("more iterations than start() made room for")
            # gradient A^T (A y - b), then the projected step from y
            self.blur.adjoint_device(self.ay, out=self.g, minus=self.b)
            _prox_step_kernel[_blocks1(nx), _TPB](_flat(self.y), _flat(self.g), _flat(self.xn),
                                                  self.step, self.lo, self.hi)
            self.blur.forward_device(self.xn, out=self.axn)
            _sum_sq_kernel[red_blocks, _TPB](_flat(self.axn), _flat(self.b), True,
                                             self._sums, self._count)
            t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * self.t * self.t))
            beta = np.float32((self.t - 1.0) / t_new)
            self.t = t_new
            _extrapolate_kernel[_blocks1(nx), _TPB](_flat(self.xn), _flat(self.x),
                                                    _flat(self.y), beta)
            _extrapolate_kernel[_blocks1(nb), _TPB](_flat(self.axn), _flat(self.ax),
                                                    _flat(self.ay), beta)
            self.x, self.xn = self.xn, self.x
            self.ax, self.axn = self.axn, self.ax
            self._count += 1

    def objective(self):
        """``0.5 ||A x_k - b||^2`` of every iteration run since :meth:`start` (list)."""
        sums = self._sums.copy_to_host()[:self._count]
        return [0.5 * float(v) for v in sums]


def device_lipschitz(blur, num_iters=15, seed=0, safety=1.02):
    """``||A^T A||`` by power iteration on the device (as ``aif.lipschitz_constant``).

    Parameters
    ----------
    blur : DeviceBlur
    num_iters : int
    seed : int
        Seed of the random start vector (the same vector as the CPU version).
    safety : float

    Returns
    -------
    float
    """
    h, w = blur.image_shape
    v = np.random.default_rng(seed).random((1, h, w)).astype(np.float32)
    v /= np.linalg.norm(v)
    v = cuda.to_device(v)
    av = cuda.device_array((blur.num_planes, 1, h, w), dtype=np.float32)
    u = cuda.device_array((1, h, w), dtype=np.float32)
    sums = cuda.to_device(np.zeros(num_iters, dtype=np.float64))
    n = h * w
    for it in range(num_iters):
        blur.forward_device(v, out=av)
        blur.adjoint_device(av, out=u)
        _sum_sq_kernel[min(_blocks1(n), 1024), _TPB](_flat(u), _flat(u), False, sums, it)
        _normalise_kernel[_blocks1(n), _TPB](_flat(u), _flat(v), sums, it)
    sq = sums.copy_to_host()
    if not np.all(sq > 0):
        raise ValueError("the blur operator is zero")
    return math.sqrt(float(sq[-1])) * float(safety)


# ---------------------------------------------------------------------------
# The depth step on the device
# ---------------------------------------------------------------------------

class DeviceDepth:
    """Grid search, golden-section refinement and safeguard for one AIF on the GPU.

    Parameters
    ----------
    x : array_like or device array, shape (C, H, W), float32
        The all-in-focus image.
    b : array_like or device array, shape (F, C, H, W), float32
        The focal stack.
    camera : Camera
    k : int
        PSF window.
    """

    def __init__(self, x, b, camera, k, camera_arrays=None):
        self.x = _to_device(x, "x")
        self.b = _to_device(b, "b")
        if len(self.b.shape) != 4 or len(self.x.shape) != 3 or \
                tuple(self.b.shape[1:]) != tuple(self.x.shape):
            raise ValueError(f"x (C, H, W) {tuple(self.x.shape)} does not match "
                             f"b (F, C, H, W) {tuple(self.b.shape)}")
        if int(self.b.shape[0]) != camera.num_planes:
            raise ValueError(f"b has {self.b.shape[0]} slices but the camera has "
                             f"{camera.num_planes} focus distances")
        self.camera, self.k = camera, int(k)
        self.shape = tuple(int(s) for s in self.x.shape[1:])
        self.focus, self.coef, self.rmin = camera_arrays or _camera_arrays(camera)
        self.config = _tile_config(*self.shape, self.k, int(self.x.shape[0]))

    def _launch(self, kernel, *args, config=None):
        grid, block, cs, nbytes = config or self.config
        kernel[grid, block, 0, nbytes](*args)

    def grid(self, cands, window=1):
        """Grid search: (index int32, windowed loss float32) device arrays (H, W).

        Every candidate is one depth for the whole image, and many share a
        blur radius (all the slices clamped to ``min_radius``, for one), so
        the image is blurred once per *distinct* radius into a bank (two
        separable passes, about 2K multiply-adds per pixel), and each
        thread then walks the candidates reading the bank: pure loads.
        Candidates are taken in chunks that keep the bank within
        ``_VOLUME_BYTES``.
        """
        cands = np.asarray(cands, dtype=np.float64)
        h, w = self.shape
        n_c = int(self.x.shape[0])
        n_f = self.camera.num_planes
        best = cuda.device_array((h, w), dtype=np.float32)
        index = cuda.device_array((h, w), dtype=np.int32)
        _fill_kernel[_blocks1(h * w), _TPB](_flat(best), _INF)
        _fill_kernel[_blocks1(h * w), _TPB](_flat(index), 0)
        image_bytes = 4 * n_c * h * w
        chunk = int(max(1, min(cands.size, _VOLUME_BYTES // (2 * n_f * image_bytes + 4 * h * w))))
        grid2, block2 = _grid2(h, w)
        side = block2[0]
        half = window // 2
        for n0 in range(0, cands.size, chunk):
            part = cands[n0:n0 + chunk]
            radii = coc_radius(part, self.camera)                    # (F, m), clamped
            distinct, inverse = np.unique(radii, return_inverse=True)
            plane_u = cuda.to_device(np.ascontiguousarray(
                inverse.reshape(radii.shape).T, dtype=np.int32))     # (m, F)
            wu = cuda.to_device(gaussian_weights(distinct, self.k))  # (U, K) as on the CPU
            n_u = distinct.size
            tmp = cuda.device_array((n_u, n_c, h, w), dtype=np.float32)
            bank = cuda.device_array((n_u, n_c, h, w), dtype=np.float32)
            grid3 = (grid2[0], grid2[1], n_u * n_c)
            _bank_columns_kernel[grid3, (side, side, 1)](self.x, wu, tmp)
            _bank_rows_kernel[grid3, (side, side, 1)](tmp, wu, bank)
            if window == 1:
                _bank_loss_kernel[grid2, block2](bank, self.b, plane_u, n0, True, best, index,
                                                 cuda.device_array((1, 1, 1), dtype=np.float32))
                continue
            # The box filter needs whole loss maps: filter them, then fold
            # them into the minimum.
            vol = cuda.device_array((part.size, h, w), dtype=np.float32)
            vtmp = cuda.device_array((part.size, h, w), dtype=np.float32)
            _bank_loss_kernel[grid2, block2](bank, self.b, plane_u, n0, False, best, index, vol)
            _box_kernel[grid2, block2](vol, vtmp, half, 0)
            _box_kernel[grid2, block2](vtmp, vol, half, 1)
            _volume_min_kernel[grid2, block2](vol, n0, best, index)
        return index, best

    def refine(self, cands, index, tol):
        """Golden-section refinement: (depth, loss) float32 device arrays (H, W).

        ``index`` may be a host or device integer array; the number of
        steps is set by the widest bracket, as on the CPU.
        """
        cands = np.asarray(cands, dtype=np.float64)
        idx_host = index.copy_to_host() if _is_device_array(index) else np.asarray(index)
        steps = _golden_steps(cands, idx_host, tol)
        idx = index if _is_device_array(index) else \
            cuda.to_device(np.ascontiguousarray(idx_host, dtype=np.int32))
        h, w = self.shape
        depth = cuda.device_array((h, w), dtype=np.float32)
        loss = cuda.device_array((h, w), dtype=np.float32)
        self._launch(_golden_kernel, self.x, self.b, self.focus, self.coef, self.rmin, self.k,
                     self.config[2], cuda.to_device(cands.astype(np.float32)), idx, steps,
                     depth, loss)
        return depth, loss

    def depth_loss(self, depth):
        """Per-pixel loss of a depth map (H, W): float32 device array."""
        d = _to_device(depth, "depth")
        out = cuda.device_array(self.shape, dtype=np.float32)
        self._launch(_depth_loss_kernel, self.x, self.b, d, self.focus, self.coef, self.rmin,
                     self.k, self.config[2], out)
        return out

    def step(self, cands, window, tol, prev, refine):
        """Grid search, refinement and safeguard (as ``depth._depth_step_planar``)."""
        cands = np.asarray(cands, dtype=np.float64)
        idx_dev, _ = self.grid(cands, window)
        idx = idx_dev.copy_to_host().astype(np.int64)
        if refine:
            depth_dev, loss_dev = self.refine(cands, idx_dev, tol)
            depth = depth_dev.copy_to_host()
        else:
            depth = cands[idx].astype(np.float32)
            loss_dev = self.depth_loss(depth)
        loss = loss_dev.copy_to_host()
        kept = np.zeros(depth.shape, dtype=bool)
        if prev is not None:
            prev = np.asarray(prev, dtype=np.float32)
            prev_loss = self.depth_loss(prev).copy_to_host()
            kept = prev_loss < loss
            depth = np.where(kept, prev, depth).astype(np.float32)
            loss = np.where(kept, prev_loss, loss)
        return DepthResult(depth, loss, idx, kept)


# ---------------------------------------------------------------------------
# Entry points used by dfd_lite.depth and dfd_lite.solve
# ---------------------------------------------------------------------------

def grid_search_planar(x, b, camera, k, cands, window):
    """GPU ``depth._grid_search_planar``: (index int64 (H, W), loss float32 (H, W))."""
    idx, loss = DeviceDepth(x, b, camera, k).grid(cands, window)
    return idx.copy_to_host().astype(np.int64), loss.copy_to_host()


def golden_refine_planar(x, b, camera, k, cands, idx, tol):
    """GPU ``depth._refine_planar``: (depth float32 (H, W), loss float32 (H, W))."""
    depth, loss = DeviceDepth(x, b, camera, k).refine(cands, idx, tol)
    return depth.copy_to_host(), loss.copy_to_host()


def depth_step_planar(x, b, camera, k, cands, window, tol, prev, refine):
    """GPU ``depth._depth_step_planar``: a :class:`~dfd_lite.depth.DepthResult`."""
    return DeviceDepth(x, b, camera, k).step(cands, window, tol, prev, refine)


class DeviceSolver:
    """The two sub-steps of :func:`dfd_lite.solve` with the stack resident on the GPU.

    Parameters
    ----------
    bp : ndarray, shape (F, C, H, W), float32
        The focal stack (planar).
    camera : Camera
    k : int
    """

    def __init__(self, bp, camera, k):
        self.b = _to_device(bp, "stack")
        self.camera, self.k = camera, int(k)
        self.camera_arrays = _camera_arrays(camera)
        _tile_config(int(bp.shape[2]), int(bp.shape[3]), self.k, int(bp.shape[1]))  # checks k
        self._fista = None

    def depth_step(self, x, cands, window, tol, prev_depth):
        """Depth update for the image ``x`` (C, H, W): a DepthResult (host arrays)."""
        ctx = DeviceDepth(x, self.b, self.camera, self.k, self.camera_arrays)
        return ctx.step(cands, window, tol, prev_depth, True)

    def aif_step(self, depth, x_start, iters, upper):
        """FISTA on the GPU from ``x_start`` (C, H, W) for ``iters`` iterations.

        Returns
        -------
        x : ndarray, shape (C, H, W), float32 (host)
        objective : list of float
        """
        blur = DeviceBlur.from_depth(np.asarray(depth, dtype=np.float32), self.camera, self.k)
        x0 = np.ascontiguousarray(x_start, dtype=np.float32)
        if iters <= 0:
            return x0.copy(), []
        lip = device_lipschitz(blur, 15)
        fista = DeviceFista(blur, self.b, lip, 0.0, upper)
        fista.start(x0, iters)
        fista.iterate(iters)
        return fista.x.copy_to_host(), fista.objective()


def solver_steps(bp, camera, k):
    """The GPU sub-steps for :func:`dfd_lite.solve` (see :class:`DeviceSolver`)."""
    return DeviceSolver(bp, camera, k)
