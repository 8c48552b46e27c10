"""CUDA kernels of the blur operator: weights, forward, adjoint, and the
fused per-pixel loss of a depth map.

* ``forward_kernel`` - one thread per output pixel; the block's image tile
  plus a ``K - 1`` halo is staged in shared memory, because every pixel of
  the tile is read by up to ``K^2`` threads.
* ``adjoint_kernel`` - the transpose as a *gather*: the thread that owns
  input pixel ``q`` sums every output pixel ``p`` whose window covers
  ``q``. No two threads write the same pixel, so no atomics are needed.
* ``pixel_loss_kernel`` - weights from the thin-lens radius, the ``K x K``
  gather from the staged tile and the squared error, all in registers:
  what the golden-section refinement evaluates once per step.
"""

from __future__ import annotations

import math

from numba import float32

from .. import _scalar
from ._common import F0, MAX_K, cuda, device_function

blur_radius = device_function(_scalar.blur_radius)
gaussian_exponent = device_function(_scalar.gaussian_exponent)


@device_function
def stage(x, tile, c0, cs, y0, x0, half, th, tw, margin):
    """Copy channels ``c0 .. c0+cs-1`` of the block's tile (plus halo) to shared memory.

    ``tile[ci * th * tw + i * tw + j]`` holds frame pixel ``(y0 - half + i,
    x0 - half + j)`` of channel ``c0 + ci``: ``x`` at that pixel plus
    ``margin`` (the width of the image's own margin beyond the frame),
    zero outside ``x`` (the zero padding of the model). All threads of the
    block share the copying.
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
        yy = y0 - half + i + margin
        xx = x0 - half + j + margin
        v = F0
        if yy >= 0 and yy < height and xx >= 0 and xx < width:
            v = x[c0 + ci, yy, xx]
        tile[s] = v
    cuda.syncthreads()  # the whole tile is written before anyone reads it


@device_function
def blur_at(tile, ci, ty, tx, th, tw, wl, k):
    """``sum_a wl[a] sum_b wl[b] tile[ci, ty + a, tx + b]``: one blurred pixel."""
    acc = F0
    base = ci * th * tw + ty * tw + tx
    for a in range(k):
        row = base + a * tw
        s = F0
        for bb in range(k):
            s += wl[bb] * tile[row + bb]
        acc += wl[a] * s
    return acc


@device_function
def gaussian_taps(z, focus, coef, rmin, k, wl):
    """Normalised 1-D Gaussian taps of depth ``z`` for one slice, into ``wl[:k]``."""
    inv = gaussian_exponent(blur_radius(z, focus, coef, rmin))
    half = k // 2
    total = F0
    for a in range(k):
        g = math.exp(inv * float32((a - half) * (a - half)))
        wl[a] = g
        total += g
    for a in range(k):
        wl[a] = wl[a] / total


@device_function
def tile_geometry(half):
    """Where this thread sits: ``(ty, tx, y0, x0, th, tw, py, px)``.

    ``(ty, tx)`` in the block, ``(y0, x0)`` the block's first pixel,
    ``th x tw`` its tile with a ``half``-pixel halo, ``(py, px)`` the pixel.
    """
    ty = cuda.threadIdx.y
    tx = cuda.threadIdx.x
    y0 = cuda.blockIdx.y * cuda.blockDim.y
    x0 = cuda.blockIdx.x * cuda.blockDim.x
    return (ty, tx, y0, x0, cuda.blockDim.y + 2 * half, cuda.blockDim.x + 2 * half,
            y0 + ty, x0 + tx)


@cuda.jit
def weights_kernel(depth, focus, coef, rmin, w):
    xx, yy = cuda.grid(2)
    n_f, k, height, width = w.shape
    if yy >= height or xx >= width:
        return
    wl = cuda.local.array(MAX_K, dtype=float32)
    z = depth[yy, xx]
    for f in range(n_f):
        gaussian_taps(z, focus[f], coef[f], rmin, k, wl)
        for a in range(k):
            w[f, a, yy, xx] = wl[a]


@cuda.jit
def forward_kernel(x, w, out, cs):
    n_f, k, height, width = w.shape
    n_c = x.shape[0]
    half = k // 2
    tile = cuda.shared.array(0, dtype=float32)
    wl = cuda.local.array(MAX_K, dtype=float32)
    ty, tx, y0, x0, th, tw, py, px = tile_geometry(half)
    inside = py < height and px < width
    # Threads past the edge still help stage the tile; they read a valid
    # pixel's weights and never write.
    qy = min(py, height - 1)
    qx = min(px, width - 1)
    margin = (x.shape[1] - height) // 2
    for c0 in range(0, n_c, cs):
        stage(x, tile, c0, cs, y0, x0, half, th, tw, margin)
        for f in range(n_f):
            for a in range(k):
                wl[a] = w[f, a, qy, qx]
            for ci in range(min(cs, n_c - c0)):
                v = blur_at(tile, ci, ty, tx, th, tw, wl, k)
                if inside:
                    out[f, c0 + ci, py, px] = v


@cuda.jit
def adjoint_kernel(y, b, w, out, subtract):
    # out[c, q] = sum_f sum_{a,b} w[f,a,p] w[f,b,p] (y - b)[f,c,p] over the
    # output pixels p = q - (a - half, b - half) that read q: a gather. out
    # may be wider than the frame by a margin on every side.
    qx, qy = cuda.grid(2)
    n_f, k, height, width = w.shape
    n_c = y.shape[1]
    half = k // 2
    if qy >= out.shape[1] or qx >= out.shape[2]:
        return
    margin = (out.shape[1] - height) // 2
    for c in range(n_c):
        acc = F0
        for f in range(n_f):
            for a in range(k):
                py = qy - margin + half - a
                if py < 0 or py >= height:
                    continue
                wa = w[f, a, py]
                src = y[f, c, py]
                ref = b[f, c, py]
                for bb in range(k):
                    px = qx - margin + half - bb
                    if px < 0 or px >= width:
                        continue
                    v = src[px]
                    if subtract:
                        v -= ref[px]
                    acc += wa[px] * w[f, bb, py, px] * v
        out[c, qy, qx] = acc


@device_function
def staged_loss(z, x, b, tile, focus, coef, rmin, k, cs, restage, qy, qx, geometry, wl):
    """``sum_f sum_c (b - A(z) x)^2`` at pixel ``(qy, qx)``, from the block's staged tile.

    ``restage``: the channels do not fit in shared memory together, so each
    chunk of ``cs`` is staged here (every thread of the block must call).
    """
    n_f, n_c = b.shape[0], b.shape[1]
    ty, tx, y0, x0, th, tw = (geometry[0], geometry[1], geometry[2], geometry[3], geometry[4],
                              geometry[5])
    half = k // 2
    margin = (x.shape[1] - b.shape[2]) // 2
    loss = F0
    for c0 in range(0, n_c, cs):
        if restage:
            stage(x, tile, c0, cs, y0, x0, half, th, tw, margin)
        for f in range(n_f):
            gaussian_taps(z, focus[f], coef[f], rmin, k, wl)
            for ci in range(min(cs, n_c - c0)):
                d = blur_at(tile, ci, ty, tx, th, tw, wl, k) - b[f, c0 + ci, qy, qx]
                loss += d * d
    return loss


@device_function
def stage_block(x, b, tile, k, cs):
    """Start of the tiled kernels: ``(geometry, qy, qx, restage)``.

    ``(qy, qx)`` is this thread's pixel, clamped into the frame of the
    stack ``b`` (threads of the overhang work on the nearest pixel and must
    not write). When all ``C`` channels fit in shared memory the tile is
    staged here, once (``restage`` False); otherwise :func:`staged_loss`
    stages each chunk.
    """
    geometry = tile_geometry(k // 2)
    qy = min(geometry[6], b.shape[2] - 1)
    qx = min(geometry[7], b.shape[3] - 1)
    restage = cs < x.shape[0]
    if not restage:
        stage(x, tile, 0, cs, geometry[2], geometry[3], k // 2, geometry[4], geometry[5],
              (x.shape[1] - b.shape[2]) // 2)
    return geometry, qy, qx, restage


@cuda.jit
def pixel_loss_kernel(x, b, depth, focus, coef, rmin, k, cs, out):
    # out[p] = sum_f sum_c (b - A(depth) x)^2 at p, the weights of p made
    # on the fly from depth[p].
    tile = cuda.shared.array(0, dtype=float32)
    wl = cuda.local.array(MAX_K, dtype=float32)
    geometry, qy, qx, restage = stage_block(x, b, tile, k, cs)
    loss = staged_loss(depth[qy, qx], x, b, tile, focus, coef, rmin, k, cs, restage, qy, qx,
                       geometry, wl)
    if qy == geometry[6] and qx == geometry[7]:  # a pixel of the image, not the overhang
        out[qy, qx] = loss
