"""LLVM vector code for the flood step where numba's loops do not vectorise.

Row sums for the step's mass tallies, in a fixed order (same bits every
run): a float64 sum in a fixed order is one long chain of dependent
additions, and LLVM may not reorder it without fast-math.  Here the order is
chosen to suit the machine: 32 running sums (four vectors of eight float64),
element ``i`` of the vector part going to sum ``i % 32``; the 32 are then
added as a fixed tree, and the tail (under 32 elements) after, one by one.
Written as LLVM vectors, the loop issues four independent vector additions
per 32 elements; written as 32 scalar sums, LLVM does not vectorise it
(numba does not run LLVM's straight-line vectoriser, measured).

Stores of one value to eight neighbouring cells (``fill8``), for the same
reason: eight scalar stores otherwise.  And two single instructions numba
has no word for: the count of trailing zero bits (``trailing_zeros``, to walk
the set bits of a mask) and a prefetch (``prefetch``).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 8  # float64 per vector (512 bits)
VECTORS = 4  # independent vector sums
BLOCK = LANES * VECTORS  # elements per loop turn; the vector part is a multiple of it


def _tree(builder, values):
    """Add ``values`` pairwise, neighbours first: ((v0 + v1) + (v2 + v3)) + ..."""
    while len(values) > 1:
        values = [builder.fadd(values[k], values[k + 1]) for k in range(0, len(values), 2)]
    return values[0]


@intrinsic
def _block_total(typingctx, a, m):
    """Sum of a[0:m] (float64, contiguous, ``m`` a multiple of ``BLOCK``) in the order the module describes."""
    if not (isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.float64 and a.layout == "C"):
        return None
    if not isinstance(m, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        count = context.cast(builder, args[1], signature.args[1], types.int64)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        vector = ir.VectorType(ir.DoubleType(), LANES)
        zero = ir.Constant(vector, None)
        entry = builder.block
        loop = builder.append_basic_block("block_total.loop")
        done = builder.append_basic_block("block_total.done")
        builder.cbranch(builder.icmp_signed(">", count, ir.Constant(i64, 0)), loop, done)

        builder.position_at_end(loop)
        index = builder.phi(i64)
        sums = [builder.phi(vector) for _ in range(VECTORS)]
        added = []
        for k, running in enumerate(sums):
            at = builder.gep(data, [builder.add(index, ir.Constant(i64, k * LANES))])
            added.append(builder.fadd(running, builder.load(builder.bitcast(at, vector.as_pointer()), align=8)))
        following = builder.add(index, ir.Constant(i64, BLOCK))
        builder.cbranch(builder.icmp_signed("<", following, count), loop, done)
        index.add_incoming(ir.Constant(i64, 0), entry)
        index.add_incoming(following, loop)
        for running, new in zip(sums, added):
            running.add_incoming(zero, entry)
            running.add_incoming(new, loop)

        builder.position_at_end(done)
        finals = []
        for new in added:
            final = builder.phi(vector)
            final.add_incoming(zero, entry)
            final.add_incoming(new, loop)
            finals.append(final)
        total = _tree(builder, finals)  # one vector: lane j holds the sums j, j + 8, j + 16, j + 24
        width = LANES
        while width > 1:  # halves: lanes j and j + width / 2
            width //= 2
            low = builder.shuffle_vector(total, total, ir.Constant(ir.VectorType(i32, width), list(range(width))))
            high = builder.shuffle_vector(total, total, ir.Constant(ir.VectorType(i32, width),
                                                                    list(range(width, 2 * width))))
            total = builder.fadd(low, high)
        return builder.extract_element(total, ir.Constant(i32, 0))

    return types.float64(a, m), codegen


@intrinsic
def trailing_zeros(typingctx, x):
    """Trailing zero bits of a non-zero uint64 (one instruction)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return types.int64(types.uint64), codegen


@intrinsic
def prefetch(typingctx, a, index):
    """Ask for the cache line of a[index] (1D, contiguous) ahead of its use.  Changes no number, and never
    faults: an index past the end is allowed."""
    if not (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        at = builder.gep(data, [context.cast(builder, args[1], signature.args[1], types.int64)])
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        # read, keep in all cache levels, data
        builder.call(fn, [builder.bitcast(at, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.none(a, index), codegen


@intrinsic
def fill8(typingctx, a, start, value):
    """a[start:start + 8] = value in one vector store (float64, contiguous; no bounds check: the caller's)."""
    if not (isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.float64 and a.layout == "C"):
        return None
    if not (isinstance(start, types.Integer) and value == types.float64):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        at = builder.gep(data, [context.cast(builder, args[1], signature.args[1], types.int64)])
        vector = ir.VectorType(ir.DoubleType(), LANES)
        splat = ir.Constant(vector, None)
        for j in range(LANES):
            splat = builder.insert_element(splat, args[2], ir.Constant(ir.IntType(32), j))
        builder.store(splat, builder.bitcast(at, vector.as_pointer()), align=8)
        return context.get_dummy_value()

    return types.none(a, start, value), codegen


@njit(inline="always", cache=True)
def fixed_sum(a):
    """Sum of the contiguous float64 row ``a``, in the module's order (the same bits on every run)."""
    n = a.size
    m = n - n % BLOCK
    total = _block_total(a, m)
    for i in range(m, n):
        total += a[i]
    return total


@njit(inline="always", cache=True)
def span_sum(buf, lo, hi):
    """``fixed_sum`` of the whole row ``buf`` when it is zero outside [lo, hi), reading only about the span.

    The span is widened to multiples of ``BLOCK`` (zeros written there), so
    each value meets the running sum it would meet in the whole row, and the
    sum has the same bits.
    """
    lo_b, hi_b = lo - lo % BLOCK, min(hi + (-hi) % BLOCK, buf.size)
    for c in range(lo_b, lo):
        buf[c] = 0.0
    for c in range(hi, hi_b):
        buf[c] = 0.0
    return fixed_sum(buf[lo_b:hi_b])
