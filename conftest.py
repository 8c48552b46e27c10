"""Test-session setup shared by the unit tests and the notebook tests.

The CUDA kernels are tested in Numba's simulator, which must be switched on
before numba is first imported; set DFD_LITE_REAL_CUDA=1 to test them on a
real GPU instead. The CPU paths are unaffected, and backend="auto" never
picks the simulator.
"""

import os

if os.environ.get("DFD_LITE_REAL_CUDA") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

collect_ignore_glob = ["_build/*", "book/_build/*"]
