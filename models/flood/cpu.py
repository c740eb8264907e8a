"""CPU settings for numba's compiled flood kernels: the widest vectors, and a short spin of idle threads.

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


SPIN_COUNT = "30000"
"""GOMP_SPINCOUNT: about 0.3 ms of spinning (libgomp counts some 100,000 spins a millisecond)."""


def use_short_spin() -> bool:
    """Let idle OpenMP threads spin about 0.3 ms before they sleep; True if the setting was made.

    A flood run starts one parallel kernel per time step, with a few
    microseconds of Python between them.  Threads that sleep at once
    (``OMP_WAIT_POLICY=passive``) must be woken each step, which costs about
    15 % on a 200 x 200 grid; threads that spin for long (libgomp's default,
    3 ms) hold on to cores other processes want.  GNU OpenMP (numba's ``omp``
    layer on Linux) reads the setting when it is loaded, so this must run
    before numba starts its threads; it does nothing if the user set
    ``GOMP_SPINCOUNT``.  Results do not depend on it.
    """
    if "GOMP_SPINCOUNT" in os.environ:
        return False
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return True
