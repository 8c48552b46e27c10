"""What every CUDA module shares: the numba-cuda import, constants, launch
geometry and host-device transfer.

Every array on the device is float32 (indices int32, reductions float64).
Globals of NumPy float32 type stay float32 inside kernels; a bare Python
literal such as 0.5 would be a float64 and silently promote the arithmetic
to double precision (slow on most GPUs).
"""

from __future__ import annotations

import numpy as np

try:
    from numba import config, cuda
except ImportError as err:  # pragma: no cover - depends on the installation
    raise ImportError(
        "the CUDA engine needs numba's CUDA target; install it with "
        "pip install 'dfd_lite[cuda]' (numba-cuda, which needs numpy < 2.5)") from err

SIMULATED = bool(getattr(config, "ENABLE_CUDASIM", 0))

F0 = np.float32(0.0)
F1 = np.float32(1.0)

# Threads per block of the 2-D kernels: BLOCK_SIDE^2. The simulator runs
# every thread as a Python thread; smaller blocks waste fewer of them at the
# image border and run about twice as fast there.
BLOCK_SIDE = 8 if SIMULATED else 16
# Largest PSF window: the size of the per-thread weight array (local memory).
MAX_K = 99
# Threads per block of the 1-D kernels (the simulator pays per thread at
# every syncthreads).
TPB = 64 if SIMULATED else 256
SHARED_LIMIT = 48 * 1024    # bytes of dynamic shared memory a block may use
SHARED_TARGET = 24 * 1024   # stage fewer channels at once beyond this (occupancy)
# Bank radii one block of the grid search's blur bank computes from its
# staged tile: more re-use the tile, fewer leave more blocks to spread. On
# an H200 (317 radii), 16 / 32 / 64 took 1.03 / 0.98 / 1.01 ms at 240 x 320
# (k = 11) and 7.30 / 6.94 / 6.87 ms at 480 x 640 (k = 23); 8 and fewer
# were slower still (bench/results/cuda_h200_depth_probe_2026-11-30.md).
BANK_RADII_PER_BLOCK = 32
# The most blocks a launch may have along its third axis (CUDA's limit).
MAX_GRID_Z = 65535


def device_function(fn):
    """``fn`` compiled as a CUDA device function, inlined into its callers.

    Inlining lets a kernel that fixes the PSF window's size ``k`` at compile
    time (:func:`dfd_lite.engines.cuda.depth.golden_kernel`) unroll the
    tap loops of the helpers it calls and keep their taps in registers.
    The simulator takes no inlining option.
    """
    if SIMULATED:
        return cuda.jit(device=True)(fn)
    return cuda.jit(device=True, forceinline=True)(fn)


def tuned_kernel(fn, launch_bounds):
    """``fn`` compiled as a kernel, told its ``(threads per block, blocks per SM)``.

    Knowing that at most ``threads`` run per block and that ``blocks``
    should fit on a multiprocessor together, the compiler keeps each
    thread's registers under ``65536 / (threads * blocks)``. The simulator
    takes no such option.
    """
    if SIMULATED:
        return cuda.jit(fn)
    return cuda.jit(fn, launch_bounds=launch_bounds)


def blocks1(n):
    """Blocks of ``TPB`` threads covering ``n`` elements."""
    return max(1, (n + TPB - 1) // TPB)


def grid2(height, width, side=None):
    """2-D grid and block covering an image, ``x`` along columns."""
    side = BLOCK_SIDE if side is None else side
    return ((width + side - 1) // side, (height + side - 1) // side), (side, side)


def tile_config(height, width, k, n_c, shared_target=SHARED_TARGET, *, column_buffer=False):
    """Launch geometry of the shared-memory kernels.

    Returns ``(grid, block, cs, nbytes)``: 2-D grid and block, the number
    ``cs`` of channels staged at once (as many as fit in ``shared_target``
    bytes, at least one), and the dynamic shared memory in bytes (per
    channel: the block's tile with a ``K - 1`` halo and, with
    ``column_buffer``, the tile's columns blurred: ``side`` rows of it).
    """
    if k > MAX_K:
        raise ValueError(f"kernel_size {k} is larger than the CUDA kernels support "
                         f"({MAX_K}); use backend='cpu'")
    for side in (16, 8, 4):
        span = side + k - 1
        plane = span * (span + (side if column_buffer else 0)) * 4
        if side <= BLOCK_SIDE and plane <= SHARED_LIMIT:
            break
    cs = int(max(1, min(n_c, shared_target // plane)))
    grid, block = grid2(height, width, side)
    return grid, block, cs, cs * plane


def is_device_array(a):
    return bool(getattr(a, "__cuda_ndarray__", False))


def _c_strides(shape, itemsize):
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def to_device(a, dtype=np.float32):
    """A C-contiguous device array of ``dtype`` from a host or device array."""
    if is_device_array(a) or hasattr(a, "__cuda_array_interface__"):
        arr = a if is_device_array(a) else cuda.as_cuda_array(a)
        if np.dtype(arr.dtype) != np.dtype(dtype):
            raise TypeError(f"a device array must be {np.dtype(dtype)}, got {arr.dtype}")
        return arr
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.strides != _c_strides(a.shape, a.itemsize):
        # NumPy calls an array with a length-1 axis contiguous whatever that
        # axis's stride; numba-cuda's reshape does not, so normalise it.
        a = a.copy()
    return cuda.to_device(a)


def flat(a):
    """A 1-D view of a contiguous device array."""
    return a.reshape(int(np.prod(a.shape)))


def rows(a):
    """A ``(maps, pixels)`` view of a contiguous ``(maps, H, W)`` device array."""
    return a.reshape(int(a.shape[0]), int(np.prod(a.shape[1:])))
