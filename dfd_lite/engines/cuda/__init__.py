"""The CUDA engine: numba-cuda kernels on device arrays.

Imported only when ``backend="cuda"`` is asked for (or ``"auto"`` finds a
GPU), so the package works on machines without CUDA. With no GPU, setting
``NUMBA_ENABLE_CUDASIM=1`` before numba is imported runs the same kernels in
Numba's simulator (correct, but thousands of times slower).

The kernels are split by concern: :mod:`._common` (import, constants,
launch geometry, transfers), :mod:`.blur` (the Gaussian operator and the
per-pixel loss), :mod:`.disc` (the same for the disc PSF, and its blur
bank), :mod:`.depth` (grid search, box filter and the per-pixel algorithms
shared with the CPU), :mod:`.reductions` (FISTA's vector operations).
"""

from __future__ import annotations

import numpy as np

from .. import DiscWeights, Optics, _scalar, radius_bank
from . import blur as _blur
from . import depth as _depth
from . import disc as _disc
from . import reductions as _red
from . import tv as _tv
from ._common import (BANK_RADII_PER_BLOCK, MAX_GRID_Z, MAX_K, SHARED_LIMIT, SHARED_TARGET,
                      SIMULATED, TPB, blocks1, cuda, flat, grid2, is_device_array, rows,
                      tile_config, to_device)

__all__ = ["CudaEngine", "MAX_K"]

# Bytes of blur bank and loss maps the grid search holds at once.
_VOLUME_BYTES = 1024 * 2**20


class CudaEngine:
    """The primitives of :mod:`dfd_lite.engines` on a CUDA GPU.

    Scratch buffers (the grid search's blur bank and its temporary, the box
    filter's temporary, the reduction slot) are kept between calls and grown
    when needed, so an engine reused across calls (pass it as ``backend=``)
    does not reallocate the largest arrays.

    Parameters
    ----------
    shared_target : int, optional
        Bytes of shared memory a block of the tiled kernels aims to use;
        fewer channels are staged at once when their tiles exceed it.
    """

    name = "cuda"

    def __init__(self, *, shared_target=SHARED_TARGET):
        self._buffers = {}
        self._bank_plan = None
        self.shared_target = int(shared_target)

    # -- arrays ------------------------------------------------------------
    def asarray(self, a, dtype=np.float32):
        return to_device(a, dtype)

    def to_host(self, a):
        return a.copy_to_host() if is_device_array(a) else np.asarray(a)

    def empty(self, shape, dtype=np.float32):
        return cuda.device_array(shape, dtype=dtype)

    def full(self, shape, value, dtype=np.float32):
        out = cuda.device_array(shape, dtype=dtype)
        _red.fill_kernel[blocks1(out.size), TPB](flat(out), np.dtype(dtype).type(value))
        return out

    def copy(self, a):
        out = cuda.device_array(a.shape, dtype=a.dtype)
        out.copy_to_device(a)
        return out

    def scratch(self, name, shape, dtype=np.float32):
        """A buffer of at least ``shape``, kept under ``name`` for the next call.

        The leading axis is sliced to fit. Its contents are overwritten by
        the next call that asks for ``name``.
        """
        have = self._buffers.get(name)
        if have is None or have.dtype != np.dtype(dtype) or \
                tuple(have.shape[1:]) != tuple(shape[1:]) or have.shape[0] < shape[0]:
            have = cuda.device_array(shape, dtype=dtype)
            self._buffers[name] = have
        return have[:shape[0]]

    def optics(self, coefficients, psf="gaussian"):
        focus, coef, min_radius = coefficients
        return Optics(to_device(np.asarray(focus, dtype=np.float32)),
                      to_device(np.asarray(coef, dtype=np.float32)), np.float32(min_radius), psf)

    # -- blur operator -----------------------------------------------------
    def weights(self, depth, optics, k, out=None):
        focus, coef, min_radius, psf = optics
        if k > MAX_K:
            raise ValueError(f"kernel_size {k} is larger than the CUDA kernels support "
                             f"({MAX_K}); use backend='cpu'")
        h, w = (int(s) for s in depth.shape)
        if psf == "disc":
            n_f = int(focus.shape[0])
            if out is None:
                out = DiscWeights(cuda.device_array((n_f, k // 2 + 1, h, w), dtype=np.float32),
                                  cuda.device_array((n_f, h, w), dtype=np.float32), k)
            grid, block = grid2(h, w)
            _disc.disc_weights_kernel[grid, block](depth, focus, coef, min_radius,
                                                   out.half_width, out.inv_area)
            return out
        if out is None:
            out = cuda.device_array((int(focus.shape[0]), k, h, w), dtype=np.float32)
        grid, block = grid2(h, w)
        _blur.weights_kernel[grid, block](depth, focus, coef, min_radius, out)
        return out

    def forward(self, x, weights, out=None):
        n_f, k, h, w = (int(s) for s in weights.shape)
        n_c = int(x.shape[0])
        if out is None:
            out = cuda.device_array((n_f, n_c, h, w), dtype=np.float32)
        if isinstance(weights, DiscWeights):
            grid, block = grid2(h, w)
            _disc.disc_forward_kernel[grid, block](x, weights.half_width, weights.inv_area, out)
            return out
        grid, block, cs, nbytes = tile_config(h, w, k, n_c, self.shared_target)
        _blur.forward_kernel[grid, block, 0, nbytes](x, weights, out, cs)
        return out

    def adjoint(self, y, weights, out=None, minus=None, margin=0):
        h, w = (int(s) for s in weights.shape[2:])
        if out is None:
            out = cuda.device_array((int(y.shape[1]), h + 2 * margin, w + 2 * margin),
                                    dtype=np.float32)
        grid, block = grid2(int(out.shape[1]), int(out.shape[2]))
        if isinstance(weights, DiscWeights):
            _disc.disc_adjoint_kernel[grid, block](y, y if minus is None else minus,
                                                   weights.half_width, weights.inv_area, out,
                                                   minus is not None)
            return out
        _blur.adjoint_kernel[grid, block](y, y if minus is None else minus, weights, out,
                                          minus is not None)
        return out

    # -- vector operations -------------------------------------------------
    def prox_step(self, y, g, step, lo, hi, out):
        _red.prox_step_kernel[blocks1(out.size), TPB](
            flat(y), flat(g), flat(out), np.float32(step), np.float32(lo), np.float32(hi))
        return out

    def extrapolate(self, new, old, beta, out):
        _red.extrapolate_kernel[blocks1(out.size), TPB](flat(new), flat(old), flat(out),
                                                             np.float32(beta))
        return out

    def scale(self, a, factor, out):
        _red.scale_kernel[blocks1(out.size), TPB](flat(a), np.float32(factor), flat(out))
        return out

    def multiply(self, a, m, out):
        _red.multiply_kernel[blocks1(out.size), TPB](flat(a), flat(m), flat(out))
        return out

    def lincomb(self, a, alpha, b, beta, out):
        _red.lincomb_kernel[blocks1(out.size), TPB](flat(a), np.float32(alpha), flat(b),
                                                    np.float32(beta), flat(out))
        return out

    # -- total variation ---------------------------------------------------
    def tv_grad(self, x, out):
        grid, block = grid2(int(x.shape[1]), int(x.shape[2]))
        _tv.grad_kernel[grid, block](x, out)
        return out

    def tv_div(self, p, out):
        grid, block = grid2(int(p.shape[2]), int(p.shape[3]))
        _tv.div_kernel[grid, block](p, out)
        return out

    def tv_project(self, p, bound):
        grid, block = grid2(int(p.shape[2]), int(p.shape[3]))
        _tv.project_kernel[grid, block](p, np.float32(bound))
        return p

    def tv_norm(self, x):
        h, w = int(x.shape[1]), int(x.shape[2])
        g = self.scratch("tv_grad", (2,) + tuple(int(s) for s in x.shape))
        norms = self.scratch("tv_norms", (h, w))
        grid, block = grid2(h, w)
        _tv.norm_kernel[grid, block](self.tv_grad(x, g), norms)
        return float(norms.copy_to_host().sum(dtype=np.float64))

    def sum_sq(self, a, b=None):
        acc = self.scratch("sum_sq", (1,), np.float64)
        acc.copy_to_device(np.zeros(1))
        _red.sum_sq_kernel[min(blocks1(a.size), 1024), TPB](
            flat(a), flat(a if b is None else b), b is not None, acc)
        return float(acc.copy_to_host()[0])

    # -- depth search ------------------------------------------------------
    def pixel_loss(self, x, b, depth, optics, k, out=None):
        focus, coef, min_radius, psf = optics
        n_c = int(x.shape[0])
        h, w = (int(s) for s in depth.shape)
        if out is None:
            out = cuda.device_array((h, w), dtype=np.float32)
        if psf == "disc":
            grid, block = grid2(h, w)
            _disc.disc_pixel_loss_kernel[grid, block](x, b, depth, focus, coef, min_radius,
                                                      k // 2, out)
            return out
        grid, block, cs, nbytes = tile_config(h, w, k, n_c, self.shared_target)
        _blur.pixel_loss_kernel[grid, block, 0, nbytes](x, b, depth, focus, coef, min_radius,
                                                        k, cs, out)
        return out

    def constant_depth_losses(self, x, b, radii, k, out, psf="gaussian", radius_step=None):
        # Every candidate is one depth everywhere: the image is blurred once
        # per radius of the bank (radius_bank: the distinct radii, or
        # multiples of radius_step read with linear weights), then each
        # thread walks the candidates reading the bank.
        # The plan (bank radii, their taps, which ones each candidate and
        # slice reads) depends on the candidates only: a solve asks for
        # the same one every epoch, so the last one is kept.
        key = (radii.tobytes(), radii.shape, k, psf, radius_step)
        if self._bank_plan is None or self._bank_plan[0] != key:
            plan = radius_bank(radii, radius_step)
            if psf == "disc":   # the rows dy >= 0 of each disc, and 1 / its area
                rows, inv_area = _scalar.disc_bank_rows(plan.radii, k)
                taps = (to_device(rows[:, k // 2:]), to_device(inv_area))
            else:
                taps = to_device(_scalar.gaussian_taps(plan.radii, k))
            self._bank_plan = (key, plan.radii.size,
                               (to_device(plan.lower, np.int32), to_device(plan.weight)),
                               taps)
        _, n_u, (lower, weight), wu = self._bank_plan
        n_c = int(x.shape[0])
        h, w = (int(s) for s in b.shape[2:])
        bank = self.scratch("bank", (n_u, n_c, h, w))
        if psf == "disc":
            grid, block = grid2(h, w)
            _disc.disc_bank_kernel[grid + (n_u * n_c,), block + (1,)](x, wu[0], wu[1], bank)
        else:
            # Twice the usual shared-memory target: this kernel is capped at
            # four blocks a multiprocessor anyway, and staging all three
            # channels at once at k = 23 (24.6 kB) took the bank from 6.9
            # to 5.9 ms at 480 x 640 on an H200.
            grid, block, cs, nbytes = tile_config(
                h, w, k, n_c, min(SHARED_LIMIT, 2 * self.shared_target), column_buffer=True)
            chunks = (n_u + BANK_RADII_PER_BLOCK - 1) // BANK_RADII_PER_BLOCK
            _depth.gaussian_bank_kernel(k)[grid + (chunks,), block, 0, nbytes](
                x, wu, bank, cs, BANK_RADII_PER_BLOCK)
        grid, block = grid2(h, w)
        layers = min(int(lower.shape[0]), MAX_GRID_Z)
        _depth.bank_loss_kernel[grid + (layers,), block + (1,)](bank, b, lower, weight, out)
        return out

    def box_mean(self, volume, window):
        m, h, w = (int(s) for s in volume.shape)
        tmp = self.scratch("box_tmp", (m, h, w))
        grid, block = grid2(h, w)
        _depth.box_kernel[grid, block](volume, tmp, window // 2, 0)
        _depth.box_kernel[grid, block](tmp, volume, window // 2, 1)
        return volume

    def guided_mean(self, volume, guide, window, eps):
        m, h, w = (int(s) for s in volume.shape)
        grid, block = grid2(h, w)
        half = window // 2
        tmp = self.scratch("box_tmp", (m, h, w))
        prod = self.scratch("guided_prod", (m, h, w))
        stats = self.scratch("guided_stats", (2, h, w))
        stats_tmp = self.scratch("guided_stats_tmp", (2, h, w))

        def box(src, scratch):   # in place, two passes
            _depth.box_kernel[grid, block](src, scratch, half, 0)
            _depth.box_kernel[grid, block](scratch, src, half, 1)

        g = guide.reshape((1, h, w))
        _depth.times_guide_kernel[grid, block](g, guide, stats[1:])      # I^2
        stats[0:1].copy_to_device(g)                                      # I
        box(stats, stats_tmp)
        _depth.times_guide_kernel[grid, block](volume, guide, prod)      # I p
        box(prod, tmp)
        box(volume, tmp)
        _depth.guided_coeffs_kernel[grid, block](volume, prod, stats, np.float32(eps))
        box(prod, tmp)                                                    # mean a
        box(volume, tmp)                                                  # mean b
        _depth.guided_apply_kernel[grid, block](prod, volume, guide, volume)
        return volume

    def fold_min(self, volume, n0, best, index):
        _depth.fold_min_kernel[blocks1(best.size), TPB](rows(volume), n0, flat(best),
                                                             flat(index))

    def golden_init(self, state, cands, index):
        _depth.golden_init_kernel[blocks1(index.size), TPB](rows(state), cands, flat(index))

    def golden_search(self, x, b, state, optics, k, evaluations):
        focus, coef, min_radius, psf = optics
        h, w = (int(s) for s in state.shape[1:])
        if psf == "disc":
            # one loss pass, then one update of every pixel, per evaluation
            loss = self.scratch("golden_loss", (h, w))
            for _ in range(evaluations):
                self.pixel_loss(x, b, state[_scalar.Z_NEXT], optics, k, out=loss)
                _depth.golden_advance_kernel[blocks1(h * w), TPB](rows(state), flat(loss))
            return
        grid, block, cs, nbytes = tile_config(h, w, k, int(x.shape[0]), self.shared_target)
        # On a GPU the whole search is one launch. The simulator runs a
        # block's threads as Python threads, and long-running ones slow it
        # down about tenfold: there, one launch per step (same kernel, same
        # state in device memory, same result).
        per_launch = 1 if SIMULATED else max(1, evaluations)
        for done in range(0, evaluations, per_launch):
            _depth.golden_kernel(k)[grid, block, 0, nbytes](
                x, b, rows(state), focus, coef, min_radius, cs,
                min(per_launch, evaluations - done))

    def keep_better(self, depth, loss, prev_depth, prev_loss, kept):
        _depth.keep_better_kernel[blocks1(depth.size), TPB](
            flat(depth), flat(loss), flat(prev_depth), flat(prev_loss), flat(kept))

    def grid_chunk(self, n_candidates, shape, n_f, n_c):
        image = 4 * n_c * shape[0] * shape[1]
        per_candidate = 2 * n_f * image + 3 * 4 * shape[0] * shape[1]
        return int(max(1, min(n_candidates, _VOLUME_BYTES // per_candidate)))

    def __repr__(self):
        return "CudaEngine()"

