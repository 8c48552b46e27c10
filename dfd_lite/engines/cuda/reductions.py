"""Element-wise and reduction kernels: the vector operations of FISTA and
power iteration, so that their iterates never leave the GPU."""

from __future__ import annotations

from numba import float32, float64

from ._common import F0, TPB, cuda


@cuda.jit
def fill_kernel(a, value):
    i = cuda.grid(1)
    if i < a.size:
        a[i] = value


@cuda.jit
def prox_step_kernel(y, g, out, step, lo, hi):
    # out = clip(y - step * g, lo, hi): the projected gradient step
    i = cuda.grid(1)
    if i < out.size:
        out[i] = min(max(y[i] - step * g[i], lo), hi)


@cuda.jit
def extrapolate_kernel(new, old, out, beta):
    # out = new + beta * (new - old): Nesterov's extrapolation
    i = cuda.grid(1)
    if i < out.size:
        v = new[i]
        out[i] = v + beta * (v - old[i])


@cuda.jit
def scale_kernel(a, factor, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = a[i] * factor


@cuda.jit
def sum_sq_kernel(a, b, subtract, out):
    # out[0] += sum (a - b)^2 (or sum a^2). Each thread sums a grid-stride
    # share; after one barrier the first thread of every 32 adds up its
    # group's partial sums and makes one float64 atomic add. (A tree
    # reduction needs log2(threads) barriers; one is enough here.)
    buf = cuda.shared.array(TPB, dtype=float32)
    t = cuda.threadIdx.x
    acc = F0
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        v = a[i]
        if subtract:
            v -= b[i]
        acc += v * v
    buf[t] = acc
    cuda.syncthreads()
    if t % 32 == 0:
        s = F0
        for j in range(t, min(t + 32, TPB)):
            s += buf[j]
        cuda.atomic.add(out, 0, float64(s))


@cuda.jit
def multiply_kernel(a, m, out):
    # out = a * m, with m repeated over a's leading axes (a map times every channel)
    i = cuda.grid(1)
    if i < out.size:
        out[i] = a[i] * m[i % m.size]


@cuda.jit
def lincomb_kernel(a, alpha, b, beta, out):
    # out = alpha a + beta b (out may be a or b: each element is read first)
    i = cuda.grid(1)
    if i < out.size:
        out[i] = alpha * a[i] + beta * b[i]
