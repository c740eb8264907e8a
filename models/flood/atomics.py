"""Atomic operations on the elements of an int64 array, and a pause for spin waits.

numba has no atomics on the CPU.  A team of threads that stays in one
compiled parallel region for many flood steps (``team_steps``) needs them to
claim work, count what is done and publish the next step: these are LLVM's
atomic instructions on ``a[i]`` (1D, contiguous int64; no bounds check, the
caller's).  The plain loads and stores of the flood arrays that one thread
makes before a release store are seen by another thread after its acquire
load of that value, and the compiler does not move them across it.
"""

from __future__ import annotations

import platform
import sys

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_I64 = ir.IntType(64)
#: the spin-wait hint of this processor (lets the other hardware thread of the core run, saves power)
_PAUSE = {"x86_64": "pause", "amd64": "pause", "aarch64": "yield", "arm64": "yield"}.get(platform.machine().lower(), "")


def _is_int64_vector(a) -> bool:
    return isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == types.int64


def _element(context, builder, signature, args):
    """Pointer to a[i]."""
    data = context.make_array(signature.args[0])(context, builder, args[0]).data
    return builder.gep(data, [context.cast(builder, args[1], signature.args[1], types.int64)])


def _value(context, builder, signature, args, k):
    return context.cast(builder, args[k], signature.args[k], types.int64)


@intrinsic
def fetch_add(typingctx, a, i, value):
    """a[i] += value as one atomic step (sequentially consistent); returns a[i] before it."""
    if not (_is_int64_vector(a) and isinstance(i, types.Integer) and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        return builder.atomic_rmw("add", _element(context, builder, signature, args),
                                  _value(context, builder, signature, args, 2), "seq_cst")

    return types.int64(a, i, value), codegen


@intrinsic
def compare_exchange(typingctx, a, i, expected, new):
    """If a[i] == expected, a[i] = new, as one atomic step (sequentially consistent); whether it did."""
    if not (_is_int64_vector(a) and all(isinstance(t, types.Integer) for t in (i, expected, new))):
        return None

    def codegen(context, builder, signature, args):
        pair = builder.cmpxchg(_element(context, builder, signature, args),
                               _value(context, builder, signature, args, 2),
                               _value(context, builder, signature, args, 3), "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)

    return types.boolean(a, i, expected, new), codegen


@intrinsic
def load_acquire(typingctx, a, i):
    """a[i], read so that what the thread that stored it wrote before (``store_release``) is seen after."""
    if not (_is_int64_vector(a) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        return builder.load_atomic(_element(context, builder, signature, args), "acquire", 8)

    return types.int64(a, i), codegen


@intrinsic
def store_release(typingctx, a, i, value):
    """a[i] = value, after every store this thread made before it (see ``load_acquire``)."""
    if not (_is_int64_vector(a) and isinstance(i, types.Integer) and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        builder.store_atomic(_value(context, builder, signature, args, 2),
                             _element(context, builder, signature, args), "release", 8)
        return context.get_dummy_value()

    return types.none(a, i, value), codegen


@intrinsic
def spin_pause(typingctx):
    """One turn of a spin wait: the processor's pause hint (nothing where the module knows none)."""

    def codegen(context, builder, signature, args):
        if _PAUSE == "pause":
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        elif _PAUSE == "yield":
            i32 = ir.IntType(32)
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i32]),
                                                "llvm.aarch64.hint")
            builder.call(fn, [ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.none(), codegen


if sys.platform.startswith("win"):
    @intrinsic
    def yield_thread(typingctx):
        """Give the core to another thread (here only a pause: the system has no ``sched_yield``)."""

        def codegen(context, builder, signature, args):
            return context.get_dummy_value()

        return types.none(), codegen
else:
    _sched_yield = types.ExternalFunction("sched_yield", types.int32())

    @njit(inline="always", cache=True)
    def yield_thread():
        """Give the core to another thread that is ready to run (a spin wait that lasts: the thread it
        waits for may be waiting for this core)."""
        _sched_yield()
