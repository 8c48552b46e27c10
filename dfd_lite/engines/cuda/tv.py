"""CUDA kernels of total variation: gradient, divergence, the dual projection
and the per-pixel norm, one thread per pixel, each a wrapper of the shared
per-pixel code in :mod:`dfd_lite.engines._scalar`."""

from __future__ import annotations

from .. import _scalar
from ._common import cuda

_grad_at = cuda.jit(device=True)(_scalar.tv_grad_at)
_div_at = cuda.jit(device=True)(_scalar.tv_div_at)
_norm_at = cuda.jit(device=True)(_scalar.tv_norm_at)
_project_at = cuda.jit(device=True)(_scalar.tv_project_at)


@cuda.jit
def grad_kernel(x, out):
    xx, y = cuda.grid(2)
    if y < x.shape[1] and xx < x.shape[2]:
        _grad_at(x, y, xx, out)


@cuda.jit
def div_kernel(p, out):
    xx, y = cuda.grid(2)
    if y < p.shape[2] and xx < p.shape[3]:
        for c in range(p.shape[1]):
            out[c, y, xx] = _div_at(p, c, y, xx)


@cuda.jit
def project_kernel(p, bound):
    xx, y = cuda.grid(2)
    if y < p.shape[2] and xx < p.shape[3]:
        _project_at(p, y, xx, bound)


@cuda.jit
def norm_kernel(g, out):
    xx, y = cuda.grid(2)
    if y < g.shape[2] and xx < g.shape[3]:
        out[y, xx] = _norm_at(g, y, xx)
