"""Let numba's compiled flood kernels use the CPU's widest vectors.

LLVM compiles for 256-bit vectors on CPUs with AVX-512 unless told otherwise
(wide vectors once slowed the clock of older Xeons).  The flood kernels are
float32 arithmetic in long loops, which run about 20 % faster in 512-bit
vectors on current CPUs.  Numba reads its code-generation settings when it is
imported, so this must run before the first ``import numba`` of the process;
it does nothing if numba is already imported, if the user set
``NUMBA_CPU_FEATURES`` (or ``NUMBA_CPU_NAME``) or if the CPU has no AVX-512.
Results do not depend on it: LLVM keeps the order of every floating-point
operation (the face update's fused multiply-adds included), whatever the
vector width; the same runs give the same bits with 256- or 512-bit vectors.
"""

from __future__ import annotations

import os
import sys


def use_wide_vectors() -> bool:
    """Ask numba for 512-bit vectors where the CPU has them; True if the setting was made."""
    if "numba" in sys.modules or "NUMBA_CPU_FEATURES" in os.environ or "NUMBA_CPU_NAME" in os.environ:
        return False
    try:
        import llvmlite.binding as llvm
    except ImportError:  # the project is not installed yet (bootstrap)
        return False
    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" not in features.split(","):
        return False
    os.environ["NUMBA_CPU_FEATURES"] = features + ",-prefer-256-bit"
    return True
