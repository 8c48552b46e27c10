"""The scatter model: light spreads from where it comes from.

The solver's blur operator *gathers*: pixel ``p`` of slice ``f`` is the
image blurred with the PSF of ``p``'s own depth. Light does the opposite:
every scene point ``q`` spreads its light with the PSF of *its* depth, so
near a depth edge a pixel receives the near side's wide blur and the far
side's narrow one. Per slice that is the gather operator's transpose,
``S_f = A_f^T`` (the PSF is symmetric). Where the near side's disc is wider
the light reaching a pixel does not add up to one pixel's worth, so each
pixel is divided by its coverage, what a white scene would give
(:func:`~dfd_lite.render.render_physical` renders the same way)::

    y_f = (S_f x) / (S_f 1)

Linear in the image, so the image step is the solver's with this operator
(:class:`ScatterEngine`, on any engine); the depth step is not per pixel
any more, since a pixel's depth changes its neighbours' predictions:
:func:`scatter_depth_sweeps` does coordinate descent over the pixels near
depth edges, where the two models differ (elsewhere the PSFs of a pixel's
neighbours are its own and the gather search is exact).

Both work on the solver's canvas: the image carries a margin of ``m``
pixels beyond the ``(H, W)`` frame, whose depth continues the frame's
(:func:`canvas_depth`), and only the frame is compared with the stack.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import scipy.ndimage as ndi

from . import _validate as V
from .engines import _scalar
from .engines._cpu_disc import disc_rows_at

_blur_radius = numba.njit(inline="always")(_scalar.blur_radius)
_gaussian_exponent = numba.njit(inline="always")(_scalar.gaussian_exponent)
_box_overlap = numba.njit(inline="always")(_scalar.box_overlap)

#: Coverage below this (a pixel that almost no light reaches) is floored,
#: so the division cannot blow up.
MIN_COVER = 1e-6


def canvas_depth(depth, margin):
    """The depth on the canvas: the frame's, its border rows and columns repeated ``margin`` px."""
    return np.pad(np.asarray(depth, dtype=np.float32), margin, mode="edge")


class ScatterWeights(NamedTuple):
    """The scatter operator at one canvas depth map (see :class:`ScatterEngine`).

    ``per_slice``: the engine's weights of each slice on the canvas
    ``(Hc, Wc)``; ``scale``: ``(F, 1, Hc, Wc)``, one over the coverage on
    the frame and 0 beyond it (the model predicts the frame only);
    ``shape``: ``(F, K, Hc, Wc)``.
    """

    per_slice: tuple
    scale: object
    shape: tuple


class ScatterEngine:
    """An engine whose blur operator is the coverage-normalised scatter.

    ``forward(x, weights)`` gives ``(S_f x) / (S_f 1)`` on the frame and 0
    beyond it, an ``(F, C, Hc, Wc)`` stack on the canvas, and ``adjoint``
    its exact transpose; every other primitive is the wrapped engine's. So
    the image step's solvers (``run_fista``, ``run_chambolle_pock`` of
    :mod:`dfd_lite.aif`) and the power iteration run on it unchanged, with
    the stack zero-padded to the canvas (:meth:`pad_stack`). ``S_f`` is the
    wrapped engine's gather adjoint of slice ``f`` on the canvas, and
    ``S_f^T`` its gather forward.
    """

    def __init__(self, engine):
        self.engine = engine

    def __getattr__(self, name):
        # every primitive but the operator is the wrapped engine's
        return getattr(self.engine, name)

    def weights(self, depth, optics, k, margin):
        """:class:`ScatterWeights` for a canvas depth map ``(H + 2 margin, W + 2 margin)``."""
        eng = self.engine
        canvas = eng.weights(eng.asarray(depth), optics, k)
        per_slice = tuple(_slice(canvas, f) for f in range(len(optics.focus)))
        hc, wc = (int(s) for s in depth.shape)
        ones = eng.full((1, 1, hc, wc), 1.0)
        cover = np.stack([eng.to_host(eng.adjoint(ones, w)) for w in per_slice])
        scale = np.zeros_like(cover)
        frame = (slice(None), slice(None), slice(margin, hc - margin), slice(margin, wc - margin))
        scale[frame] = 1.0 / np.maximum(cover[frame], MIN_COVER)
        return ScatterWeights(per_slice, eng.asarray(scale), (len(per_slice), k, hc, wc))

    def pad_stack(self, b, margin):
        """A frame stack ``(F, C, H, W)`` zero-padded to the canvas, on the engine."""
        host = np.asarray(self.engine.to_host(b), dtype=np.float32)
        return self.engine.asarray(np.pad(host, ((0, 0), (0, 0), (margin,) * 2, (margin,) * 2)))

    def forward(self, x, weights, out=None):
        eng = self.engine
        n_f, _, hc, wc = weights.shape
        if out is None:
            out = eng.empty((n_f, int(x.shape[0]), hc, wc))
        for f, w in enumerate(weights.per_slice):
            spread = eng.adjoint(x.reshape((1,) + tuple(x.shape)), w)   # S_f x, canvas
            eng.multiply(spread, weights.scale[f], out=out[f])
        return out

    def adjoint(self, y, weights, out=None, minus=None, margin=0):
        eng = self.engine
        n_f, _, hc, wc = weights.shape
        if out is None:
            out = eng.empty((int(y.shape[1]), hc, wc))
        r = eng.empty(y.shape[1:])
        for f, w in enumerate(weights.per_slice):
            if minus is None:
                eng.multiply(y[f], weights.scale[f], out=r)
            else:
                eng.lincomb(y[f], 1.0, minus[f], -1.0, out=r)
                eng.multiply(r, weights.scale[f], out=r)
            gathered = eng.forward(r, w)[0]                   # S_f^T (r / coverage)
            if f == 0:      # overwrite: out may hold anything, even NaN
                eng.scale(gathered, 1.0, out=out)
            else:
                eng.lincomb(out, 1.0, gathered, 1.0, out=out)
        return out


def _slice(weights, f):
    """Slice ``f`` of an engine's per-pixel weights, as weights of one slice."""
    if hasattr(weights, "half_width"):      # DiscWeights
        extent = None if weights.row_extent is None else weights.row_extent[f:f + 1]
        return type(weights)(weights.half_width[f:f + 1], weights.inv_area[f:f + 1],
                             weights.kernel_size, extent)
    return weights[f:f + 1]


# ---------------------------------------------------------------------------
# The depth step
# ---------------------------------------------------------------------------

@numba.njit(inline="always")
def _profile(r, disc, half, rows):
    """The PSF of radius ``r`` as row data in ``rows`` (``half + 1``); returns its scale.

    Disc: ``rows[dy]`` is row ``dy``'s half-width (the engines' model,
    :func:`~dfd_lite.engines._cpu_disc.disc_rows_at`) and tap ``(dy, dx)``
    is ``box_overlap(dx, rows[|dy|]) * scale``. Gaussian: ``rows`` holds the
    1-D taps and tap ``(dy, dx)`` is ``rows[|dy|] * rows[|dx|] * scale``.
    """
    if disc:
        return 1.0 / disc_rows_at(r, half, rows)
    e = _gaussian_exponent(r)
    total = 0.0
    for o in range(half + 1):
        rows[o] = np.exp(o * o * e)
        total += rows[o] if o == 0 else 2.0 * rows[o]
    return 1.0 / (total * total)


@numba.njit(inline="always")
def _tap(disc, rows, scale, dy, dx):
    if disc:
        return _box_overlap(float(dx), rows[abs(dy)]) * scale
    return rows[abs(dy)] * rows[abs(dx)] * scale


@numba.njit(cache=True)
def _move(x, b, light, cover, q0, q1, margin, disc, half, rows_a, scale_a, rows_b, scale_b,
          apply):
    """Pixel ``(q0, q1)`` of the canvas from PSFs ``a`` to ``b`` (every slice).

    Returns the change of the frame's squared error, or (``apply``) makes
    the move in the running sums ``light`` and ``cover``.
    """
    n_f, n_c, height, width = b.shape
    delta = 0.0
    for f in range(n_f):
        for dy in range(-half, half + 1):
            p0 = q0 + dy - margin
            if p0 < 0 or p0 >= height:
                continue
            ady = abs(dy)
            if rows_a[f, ady] == 0.0 and rows_b[f, ady] == 0.0:
                continue
            # a disc's row is a box: no tap beyond half its width plus half a
            # pixel (most discs are far narrower than the window)
            across = half
            if disc:
                across = min(int(max(rows_a[f, ady], rows_b[f, ady]) + 0.5) + 1, half)
            for dx in range(max(-across, margin - q1), min(across, width - 1 + margin - q1) + 1):
                p1 = q1 + dx - margin
                dc = (_tap(disc, rows_b[f], scale_b[f], dy, dx)
                      - _tap(disc, rows_a[f], scale_a[f], dy, dx))
                if dc == 0.0:
                    continue
                cov = cover[f, p0, p1]
                if apply:
                    for c in range(n_c):
                        light[f, c, p0, p1] += dc * x[c, q0, q1]
                    cover[f, p0, p1] = cov + dc
                    continue
                # one division per tap, not one per channel and side
                to_before = 1.0 / cov
                to_after = 1.0 / max(cov + dc, 1e-6)
                for c in range(n_c):
                    lit = light[f, c, p0, p1]
                    before = lit * to_before - b[f, c, p0, p1]
                    after = (lit + dc * x[c, q0, q1]) * to_after - b[f, c, p0, p1]
                    delta += after * after - before * before
    return delta


@numba.njit(inline="always")
def _tv_change(depth, q0, q1, cur, new):
    """The change of ``sum |d_q - d_n|`` over the 4 neighbours ``n`` of ``q`` if ``d_q`` goes to ``new``."""
    hc, wc = depth.shape
    total = 0.0
    for n0, n1 in ((q0 - 1, q1), (q0 + 1, q1), (q0, q1 - 1), (q0, q1 + 1)):
        if 0 <= n0 < hc and 0 <= n1 < wc:
            v = depth[n0, n1]
            total += abs(new - v) - abs(cur - v)
    return total


@numba.njit(inline="always")
def _visit(x, b, depth, light, cover, q0, q1, focus, coef, min_radius, disc, half, margin,
           reach, step, depth_lo, depth_hi, smooth, rows_a, scale_a, rows_b, scale_b,
           proposals):
    """Coordinate descent at canvas pixel ``(q0, q1)``; returns 1 if its depth moved.

    The pixel tries the depths of its ``(2 reach + 1)^2`` neighbourhood (one
    of every cluster closer than half a ``step``) and its own depth plus or
    minus ``step``, and takes the one that lowers the frame's squared error
    (plus ``smooth`` times the depth's total variation) most. The rest of
    the arguments are scratch: ``rows_*`` ``(F, half + 1)``, ``scale_*``
    ``(F,)``, ``proposals`` ``((2 reach + 1)^2 + 2,)``.
    """
    n_f = focus.shape[0]
    hc, wc = depth.shape
    cur = depth[q0, q1]
    m = 0
    for d0 in range(-reach, reach + 1):
        for d1 in range(-reach, reach + 1):
            v = depth[min(max(q0 + d0, 0), hc - 1), min(max(q1 + d1, 0), wc - 1)]
            new = abs(v - cur) >= 0.5 * step
            for j in range(m):
                new = new and abs(proposals[j] - v) >= 0.5 * step
            if new:
                proposals[m] = v
                m += 1
    for v in (cur - step, cur + step):
        if depth_lo <= v <= depth_hi:
            proposals[m] = v
            m += 1
    for f in range(n_f):
        scale_a[f] = _profile(_blur_radius(cur, focus[f], coef[f], min_radius), disc, half,
                              rows_a[f])
    best, best_v = 0.0, cur
    for j in range(m):
        for f in range(n_f):
            scale_b[f] = _profile(_blur_radius(proposals[j], focus[f], coef[f], min_radius),
                                  disc, half, rows_b[f])
        d = _move(x, b, light, cover, q0, q1, margin, disc, half, rows_a, scale_a, rows_b,
                  scale_b, False)
        d += smooth * _tv_change(depth, q0, q1, cur, proposals[j])
        if d < best:
            best, best_v = d, proposals[j]
    if best_v == cur:
        return 0
    for f in range(n_f):
        scale_b[f] = _profile(_blur_radius(best_v, focus[f], coef[f], min_radius),
                              disc, half, rows_b[f])
    _move(x, b, light, cover, q0, q1, margin, disc, half, rows_a, scale_a, rows_b, scale_b,
          True)
    depth[q0, q1] = best_v
    return 1


@numba.njit(parallel=True, cache=True)
def _sweep_kernel(x, b, depth, light, cover, visit, tile_start, colour_start, tile_worker,
                  n_workers, focus, coef, min_radius, disc, half, margin, reach, step,
                  depth_lo, depth_hi, smooth):
    """One pass of coordinate descent (:func:`_visit`) over the canvas pixels ``visit``.

    ``visit`` is grouped by tile (tile ``t``'s pixels are
    ``visit[tile_start[t]:tile_start[t + 1]]``, in raster order) and the
    tiles by colour (colour ``c``'s are ``colour_start[c]`` to
    ``colour_start[c + 1]``); tiles of one colour are further apart than a
    pixel's move reaches (:func:`_tiles`), so each colour's tiles run in
    parallel, tile ``t`` on worker ``tile_worker[t]``, and the result does
    not depend on the workers. Returns the moves made.
    """
    n_f = focus.shape[0]
    moves = np.zeros(n_workers, np.int64)
    for colour in range(colour_start.shape[0] - 1):
        for worker in numba.prange(n_workers):
            rows_a = np.zeros((n_f, half + 1))
            rows_b = np.zeros((n_f, half + 1))
            scale_a = np.zeros(n_f)
            scale_b = np.zeros(n_f)
            proposals = np.empty((2 * reach + 1) ** 2 + 2)
            for t in range(colour_start[colour], colour_start[colour + 1]):
                if tile_worker[t] != worker:
                    continue
                for i in range(tile_start[t], tile_start[t + 1]):
                    moves[worker] += _visit(x, b, depth, light, cover, visit[i, 0],
                                            visit[i, 1], focus, coef, min_radius, disc, half,
                                            margin, reach, step, depth_lo, depth_hi, smooth,
                                            rows_a, scale_a, rows_b, scale_b, proposals)
    return moves.sum()


def _tiles(visit, half, reach, n_workers):
    """Group canvas pixels ``visit`` ``(N, 2)`` into tiles for :func:`_sweep_kernel`.

    Square tiles of side ``2 max(half, reach) + 1`` in a 2 x 2 colouring: a
    pixel's move changes the running sums within ``half`` px of it and reads
    depths within ``reach`` px, and pixels of two tiles of one colour are at
    least ``2 max(half, reach) + 2`` px apart in a row or a column. Each
    colour's tiles go to the worker with the fewest pixels so far, largest
    tile first. Returns ``(visit, tile_start, colour_start, tile_worker)``.
    """
    side = 2 * max(half, reach) + 1
    tile = visit // side
    colour = (tile[:, 0] % 2) * 2 + tile[:, 1] % 2
    # np.lexsort sorts by its last key first: colour, then tile, then raster
    order = np.lexsort((visit[:, 1], visit[:, 0], tile[:, 1], tile[:, 0], colour))
    visit, tile, colour = visit[order], tile[order], colour[order]
    first = np.ones(len(visit), bool)
    first[1:] = np.any(tile[1:] != tile[:-1], axis=1)
    tile_start = np.append(np.flatnonzero(first), len(visit)).astype(np.int64)
    tile_colour = colour[tile_start[:-1]]
    colour_start = np.searchsorted(tile_colour, np.arange(5)).astype(np.int64)
    sizes = np.diff(tile_start)
    tile_worker = np.zeros(len(sizes), np.int64)
    for c in range(4):
        load = np.zeros(n_workers, np.int64)
        ids = np.arange(colour_start[c], colour_start[c + 1])
        for t in ids[np.argsort(-sizes[ids], kind="stable")]:
            tile_worker[t] = np.argmin(load)
            load[tile_worker[t]] += sizes[t]
    return visit.astype(np.int64), tile_start, colour_start, tile_worker


def edge_pixels(depth, step, reach, moved=None):
    """The pixels a pass visits, ``(N, 2)`` frame coordinates.

    Those whose ``(2 reach + 1)^2`` neighbourhood spans more than
    ``1.5 step`` metres, and (``moved``, a boolean ``(H, W)`` mask of the
    pixels the last pass moved) the moved pixels and their 8 neighbours: a
    pixel one step off its neighbours spans too little to count as an edge,
    but what made the move worth it may have changed since.
    """
    wide = 2 * reach + 1
    span = ndi.maximum_filter(depth, wide) - ndi.minimum_filter(depth, wide)
    visit = span > 1.5 * step
    if moved is not None:
        visit |= ndi.maximum_filter(moved, 3)
    return np.argwhere(visit)


def running_sums(x, depth_c, optics, k, margin, *, engine):
    """The scatter model's light ``S_f x`` and coverage ``S_f 1`` on the frame, float64.

    ``x`` ``(C, Hc, Wc)`` and ``depth_c`` ``(Hc, Wc)`` on the canvas (host);
    returns ``(F, C, H, W)`` and ``(F, H, W)``, what the descent's moves
    update in place.
    """
    canvas = engine.weights(np.asarray(depth_c, np.float32), optics, k)
    hc, wc = depth_c.shape
    frame = (slice(margin, hc - margin), slice(margin, wc - margin))
    per_slice = [_slice(canvas, f) for f in range(len(optics.focus))]
    ones = np.ones((1, 1, hc, wc), np.float32)
    cover = np.stack([engine.adjoint(ones, wf)[0][frame] for wf in per_slice])
    image = np.asarray(x, np.float32)[None]
    light = np.stack([engine.adjoint(image, wf)[(slice(None),) + frame] for wf in per_slice])
    return light.astype(np.float64), cover.astype(np.float64)


def scatter_depth_sweeps(x, b, depth, optics, k, *, margin, sweeps, step, depth_range,
                         reach=2, smooth=0.0, engine):
    """Coordinate descent on the depth under the scatter model.

    Parameters
    ----------
    x : ndarray
        The image on the canvas, planar, shape ``(C, H + 2 margin, W + 2 margin)``
        (host).
    b : ndarray, shape (F, C, H, W)
        The stack (host, planar).
    depth : ndarray, shape (H, W)
        The starting depth, metres.
    optics : tuple
        ``engine.optics(...)`` of the camera, on the host.
    k : int
        The PSF window.
    margin, sweeps, step, depth_range, reach
        The canvas margin (pixels), the passes, the depth step tried on top
        of the neighbours' depths (metres), the depths allowed and the
        neighbourhood's reach (pixels).
    smooth : float
        Weight of the depth prior ``sum |d_p - d_q|`` over 4-neighbours, in
        the stack's squared units per metre (0: none).
    engine
        The CPU engine: the running sums start from its operator.

    Returns
    -------
    depth : ndarray, shape (H, W), float32
    moves : list of int
        The moves made in each sweep.

    Notes
    -----
    A pass visits the pixels :func:`edge_pixels` names (near depth edges,
    and near the last pass's moves) and starts from the running sums of its
    own canvas (:func:`running_sums`), whose margin continues the frame's
    border as the passes left it. It visits them tile by tile, the tiles of
    one colour of a 2 x 2 colouring at once on Numba's threads: tiles of
    one colour are too far apart for one's moves to change what another's
    pixels see, so the depths do not depend on the number of threads.
    """
    depth = np.asarray(depth)
    margin = V.as_positive_int(margin, "margin", minimum=0)
    sweeps = V.as_positive_int(sweeps, "sweeps", minimum=0)
    reach = V.as_positive_int(reach, "reach", minimum=1)
    step = V.as_real(step, "step", above=0.0)
    smooth = V.as_real(smooth, "smooth", at_least=0.0)
    if np.ndim(b) != 4 or depth.shape != np.shape(b)[2:]:
        raise ValueError(f"b must be a planar stack (F, C, H, W) over depth's {depth.shape}, "
                         f"got shape {np.shape(b)}")
    h, w = depth.shape
    want = (np.shape(b)[1], h + 2 * margin, w + 2 * margin)
    if np.shape(x) != want:
        raise ValueError(f"x must be the image on the canvas, shape {want}, got {np.shape(x)}")
    frame = (slice(margin, margin + h), slice(margin, margin + w))
    focus, coef, min_radius, psf = optics
    focus, coef = np.asarray(focus, np.float64), np.asarray(coef, np.float64)
    x64, b64 = np.asarray(x, np.float64), np.asarray(b, np.float64)
    depth_frame = depth.astype(np.float64)
    moves = []
    n_workers = numba.get_num_threads()
    moved = None
    for _ in range(sweeps):
        # every pass starts from the sums of its own canvas, whose margin
        # continues the frame's border as it is now
        depth_c = canvas_depth(depth_frame, margin).astype(np.float64)
        light, cover = running_sums(x, depth_c, optics, k, margin, engine=engine)
        visit, tile_start, colour_start, tile_worker = _tiles(
            edge_pixels(depth_frame, step, reach, moved) + margin, k // 2, reach, n_workers)
        moves.append(int(_sweep_kernel(
            x64, b64, depth_c, light, cover, visit, tile_start, colour_start, tile_worker,
            n_workers, focus, coef, float(min_radius), psf == "disc", k // 2, margin, reach, step,
            float(depth_range[0]), float(depth_range[1]), smooth)))
        moved = depth_c[frame] != depth_frame
        depth_frame = depth_c[frame]
        if moves[-1] == 0:
            break
    return depth_frame.astype(np.float32), moves
