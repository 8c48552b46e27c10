"""Choosing where the kernels run: the CPU (Numba) or a CUDA GPU."""

from __future__ import annotations

BACKENDS = ("auto", "cpu", "cuda")


def import_numba_cuda():
    """Import and return ``numba.cuda``.

    numba-cuda 0.30 still registers an overload for ``np.row_stack``, an
    alias of ``np.vstack`` that NumPy 2.5 removed, and fails to import
    there; the alias is restored first so the GPU path works with either.
    """
    import numpy as np

    if not hasattr(np, "row_stack"):
        np.row_stack = np.vstack
    from numba import cuda
    return cuda


def cuda_simulated() -> bool:
    """True when ``NUMBA_ENABLE_CUDASIM=1`` replaced the GPU by Numba's simulator."""
    from numba import config
    return bool(getattr(config, "ENABLE_CUDASIM", 0))


def cuda_available() -> bool:
    """True when Numba can reach a CUDA GPU or its simulator is switched on."""
    try:
        return bool(import_numba_cuda().is_available())
    except Exception:  # numba without a CUDA target, or a broken driver
        return False


def resolve_backend(backend) -> str:
    """Turn ``"auto"``/``"cpu"``/``"cuda"`` into the backend to use.

    ``"auto"`` picks ``"cuda"`` when a real GPU is available and ``"cpu"``
    otherwise (never the slow simulator); ``"cuda"`` with neither a GPU nor
    the simulator raises a ``RuntimeError``.
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "cpu":
        return "cpu"
    available = cuda_available()
    if backend == "cuda":
        if not available:
            raise RuntimeError(
                "backend='cuda' was requested but Numba finds no CUDA GPU. Install the "
                "CUDA extra (pip install 'dfd_lite[cuda]') on a machine with an NVIDIA "
                "GPU, set NUMBA_ENABLE_CUDASIM=1 before importing numba for the (slow) "
                "simulator, or use backend='cpu'.")
        return "cuda"
    return "cuda" if available and not cuda_simulated() else "cpu"
