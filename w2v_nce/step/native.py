"""How the CPU kernels are compiled: numba, its decorators with the kernels' floating-point rules, and the few
machine instructions numba has no words for (a bit cast, a prefetch, atomic counters), written in LLVM's IR."""

from __future__ import annotations

from .. import jit_cache  # noqa: F401 (before any kernel: numba's cache keyed to every file a kernel reaches)

try:
    import numba
except ImportError:  # the PyTorch step is used instead (plan.unsupported says numba is missing)
    numba = None

if numba is not None:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    # 'fast' minus nnan/ninf: the compiler may reorder sums (vectorising the dot products) but must keep NaN and inf,
    # because a non-finite score is how divergence is detected
    MATH = {"reassoc", "contract", "nsz", "arcp", "afn"}
    # numpy's rules for a division by zero (inf or NaN, no exception): under Python's, every division tests its
    # divisor and branches to raise, and a loop with a branch out of it is not vectorised (hs's logistic terms,
    # update._lanes). No kernel divides by a zero it does not test for first.
    ERRORS = "numpy"
    # a kernel with a prange over threads
    jit = numba.njit(parallel=True, fastmath=MATH, cache=True, nogil=True, error_model=ERRORS)
    # one thread's loop, called from such a kernel; without numba's reference counts (_nrt=False): numba counts the
    # references to an array, with an atomic add on a count all threads share, for every row it takes as a view
    # (out[r]), and its pass that removes the pairs of adds keeps them where the loop branches between them: 5-6% of
    # the samples, and the calls around which the compiler spills the vector registers (sg-neg 1.15x, cbow-neg 1.09x,
    # subword skip-gram 1.16x; docs/benchmarks-log.md section 25). Safe where a loop allocates nothing and returns
    # no array (no count is then needed: the caller holds every array through the call); numba refuses to compile
    # an allocation here.
    SERIAL = dict(fastmath=MATH, cache=True, nogil=True, _nrt=False, error_model=ERRORS)
    serial = numba.njit(**SERIAL)

    def _noalias() -> dict:
        """numba's Flags.noalias, which its parallel loops set for their own bodies and no decorator option names:
        named here (a decorator option maps to a flag of that name), or nothing where a numba lacks either."""
        from numba.core import cpu, options
        if not (hasattr(options.TargetOptions, "Mapping") and hasattr(cpu, "CPUTargetOptions")):
            return {}
        cpu.CPUTargetOptions.noalias = options.TargetOptions.Mapping("noalias")
        return {"noalias": True}

    # the step's per-example loops (update.py: logistic_range, softmax_range): serial's, and told that no two of
    # their arrays' memory overlaps (LLVM's noalias on every pointer argument), which holds for theirs: the model's
    # matrices, the batch's buffers and a thread's scratch are apart, and only read-only tables share an array.
    # Without it each store to an output row may change the input row or the gradient, so the compiler reads them
    # again from memory after every node's update: sg-hs 1.03-1.16x words/s, the same vectors to the bit
    # (docs/benchmarks-log.md section 30).
    unaliased = numba.njit(**SERIAL, **_noalias())
    inline = numba.njit(inline="always", cache=True)  # a small step of a loop, copied into it
    prange = numba.prange

    @intrinsic
    def float32_bits(typingctx, bits):
        """The float32 whose bits are the int32 `bits` (numba has no scalar bit cast)."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())
        return numba.float32(numba.int32), codegen

    @intrinsic
    def int32_bits(typingctx, value):
        """The int32 whose bits are the float32 `value`'s."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.IntType(32))
        return numba.int32(numba.float32), codegen

    def _item(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return cgutils.get_item_pointer(context, builder, signature.args[0], ary, args[1:])

    @intrinsic
    def prefetch(typingctx, array, row, col):
        """Ask the core to fetch the cache line of array[row, col] (2-d) and go on: a load that nothing waits on
        still holds up the retiring of every instruction after it until it arrives, a prefetch does not."""
        def codegen(context, builder, signature, args):
            ptr = builder.bitcast(_item(context, builder, signature, args), ir.IntType(8).as_pointer())
            # the intrinsic's name carries the pointer's type: "p0" where LLVM's pointers are opaque (LLVM >= 15)
            name = "llvm.prefetch.p0" if getattr(ptr.type, "is_opaque", False) else "llvm.prefetch.p0i8"
            i32 = ir.IntType(32)
            kind = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, kind, name)
            builder.call(fn, [ptr, i32(0), i32(3), i32(1)])  # a read, kept in every cache level, of data
            return context.get_dummy_value()
        return numba.void(array, row, col), codegen

    @intrinsic
    def take(typingctx, array, index):
        """array[index] += 1 at once for every thread (an atomic add on an int64 array); returns the value before:
        a counter threads share."""
        def codegen(context, builder, signature, args):
            return builder.atomic_rmw("add", _item(context, builder, signature, args), ir.IntType(64)(1), "seq_cst")
        return types.int64(array, index), codegen

    @intrinsic
    def read(typingctx, array, index):
        """array[index], read from memory each time (an atomic load: a flag another thread sets)."""
        def codegen(context, builder, signature, args):
            return builder.load_atomic(_item(context, builder, signature, args), "seq_cst", 8)
        return types.int64(array, index), codegen

    @intrinsic
    def mark(typingctx, array, index):
        """array[index] = 1, after everything before it is written (an atomic store: a done flag)."""
        def codegen(context, builder, signature, args):
            builder.store_atomic(ir.IntType(64)(1), _item(context, builder, signature, args), "seq_cst", 8)
            return context.get_dummy_value()
        return types.void(array, index), codegen
else:  # keep the modules importable
    def jit(f):
        return f
    inline = serial = unaliased = jit
    prange = range
