"""The CPU's training step without a barrier: the corpus in pieces, each made into examples and trained, compiled, by
whichever thread takes it, as word2vec.c's and gensim's inner loops do (issue 37).

Before, the Python loop made each chunk's examples (batches.py) and split every call of 4,096 examples evenly between
the threads, which met at its end: a thread the system parked for a moment stopped the other, and beside one busy
process the step kept 29-34% of its idle speed (BENCHMARKS.md section 12). Here each of the run's threads takes the
next piece of the corpus (up to PIECE_MAX tokens, within a chunk) from an atomic counter and does all of it in the
compiled loop: sub-sampling, the dynamic window, skip-gram pairs or CBOW contexts, the update (fused.py's loops, on
blocks of the plan's batch size). The threads meet only at an epoch's end and when training stops; the Python thread
gathers each piece's loss and words for the progress bar and metrics.jsonl, says when to stop, and checkpoints.

Randomness that does not depend on the threads: whether the token at position p is kept, and the window of the
centre at p, are hashes (splitmix64) of the run's seed, the epoch and p; a piece's noise words are fused.py's
counter-based draws from one seed for each block of examples, a hash of the seed, epoch, piece and block. So one
thread gives the same vectors run after run and after a resume from any piece, and with several threads each piece's
draws are the same whichever thread takes it. A piece sees the kept tokens around it on its line (up to a window's
worth beyond its ends), so windows cross piece and chunk boundaries as they cross nothing else but line breaks.
A stop (a signal, a callback) lets the pieces already taken finish, so the pieces done are always the first ones
of the epoch: the checkpoint's position is (epoch, piece).

Several processes (torchrun) keep the chunk loop with the batch kernels: their synchronisations need every thread
at one point, many times an epoch.
"""

from __future__ import annotations

import threading

import numpy as np

from . import fused
from .batches import _emit
from .vocab import SEPARATOR

numba = fused.numba
_inline, _serial, prange = fused._inline, fused._serial, fused.prange

PIECE_MAX, PIECE_MIN = 16384, 1024  # tokens: a piece is 10-20 ms of one thread's work on the benchmark corpus
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
KEEP, WINDOW, NOISE = np.uint64(1), np.uint64(2), np.uint64(3)  # the streams of a run's hashes


def piece_tokens(tokens: int, chunk_tokens: int) -> int:
    """Tokens a piece (a power of two): 256 pieces a corpus, between PIECE_MIN and PIECE_MAX, so that a small corpus
    still has work for every thread; a function of the corpus's size only, not of the threads, so that a run's pieces
    are the same with any --threads and after a resume with other ones."""
    want = max(1, tokens // 256)
    return int(min(PIECE_MAX, chunk_tokens, max(PIECE_MIN, 1 << (want - 1).bit_length())))


def bounds(n_tokens: int, chunk_tokens: int, piece: int) -> np.ndarray:
    """(P, 2) int64: each piece's [start, end) in the corpus, chunk after chunk (a chunk's last piece shorter)."""
    out = [(s + a, min(s + a + piece, s + chunk_tokens, n_tokens)) for s in range(0, max(n_tokens, 1), chunk_tokens)
           for a in range(0, min(chunk_tokens, n_tokens - s), piece)]
    return np.array(out or [(0, 0)], dtype=np.int64)


@_inline
def _hash(key, m):
    """splitmix64 of key + m·golden, as fused.noise_draw mixes its counter."""
    z = key + np.uint64(m) * GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@_inline
def _kept(ids, q, keep, key):
    """Whether sub-sampling keeps the token at position q: its hash's low 32 bits, a uniform number in [0, 1), below
    the word's keep probability (word2vec's rule; a line break is never a word)."""
    w = ids[q]
    if w == SEPARATOR:
        return False
    coin = np.float32(np.uint32(_hash(key ^ KEEP, q) & np.uint64(0xFFFFFFFF))) * np.float32(2.3283064365386963e-10)
    return coin < keep[w]


def epoch_key(seed: int, epoch: int) -> np.uint64:
    """The key of a process's hashes in an epoch (its seed: the run's seed + its rank), splitmix64 in Python's
    integers, cut to 64 bits."""
    mask = (1 << 64) - 1
    z = (seed * 0x9E3779B97F4A7C15 + epoch + 1) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return np.uint64(z ^ (z >> 31))


@_serial
def _compact(ids, start, end, keep, key, window, words, lines, eff):
    """The kept tokens of [start, end) with their lines, after the kept tokens on its first line before it and before
    those on its last line after it (up to `window` each side, for the windows of its centres); the centres' windows
    drawn. Returns (the number of tokens, the first centre, the end of the centres)."""
    q, left = start - 1, 0
    while q >= 0 and left < window and ids[q] != SEPARATOR:
        left += _kept(ids, q, keep, key)
        q -= 1
    m, line = 0, 0
    for p in range(q + 1, end):
        if p >= start and ids[p] == SEPARATOR:
            line += 1
        elif _kept(ids, p, keep, key):
            words[m], lines[m] = ids[p], line
            if p >= start:  # a centre: its window, 1..window, from its position's hash
                eff[m] = 1 + np.int64(((_hash(key ^ WINDOW, p) >> np.uint64(32)) * np.uint64(window)) >> np.uint64(32))
            m += 1
    c0, c1 = left, m
    q, right = end, 0
    while q < len(ids) and right < window and ids[q] != SEPARATOR:
        if _kept(ids, q, keep, key):
            words[m], lines[m] = ids[q], line
            m += 1
            right += 1
        q += 1
    return m, c0, c1


@_serial
def _block(model, buffers, scratch, tab, softmax, several, n, lr, seed, fixed):
    """Train the block's n examples (fused.py's loop of the head's family, one thread), then their biases; returns the
    sum of their losses."""
    inp, out, bias = model
    ctx, valid, targets, rows, coef, loss, words, lines, eff = buffers
    hidden, grad, mine, base, top, deltas, kept = scratch
    (source, shift, prob, alias, drop_hits, offsets, points, codes, learn_bias, bias_now, share, ahead) = tab
    if softmax:
        fused._softmax_range(inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, True, seed, fixed, source,
                             shift, prob, alias, drop_hits, offsets, points, codes, learn_bias, bias_now, share, ahead,
                             0, n, hidden, grad, deltas, kept)
    else:
        fused._logistic_range(inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, True, seed, fixed, source,
                              shift, prob, alias, drop_hits, offsets, points, codes, learn_bias, bias_now, share, ahead,
                              0, n, hidden, grad, mine, base, top, several)
    if learn_bias and not bias_now:  # the biases at the block's end, as the batch kernels do (fused._biases)
        for a in range(n):
            for j in range(rows.shape[1]):
                bias[rows[a, j]] += coef[a, j]
    total = 0.0
    for a in range(n):
        total += loss[a]
    return total


@_serial
def _piece(text, model, buffers, scratch, tab, softmax, several, window, lr, key, piece, fixed, result):
    """Piece `piece` (text = (ids, bounds, keep)): its examples made (_emit) and trained, a block of the buffers' size
    at a time (_block). result (3,) float64: += the loss summed over its examples, their number, and the piece's
    words (line breaks aside)."""
    ids, bound, keep = text
    ctx, valid, targets, rows, coef, loss, words, lines, eff = buffers
    start, end = bound[piece, 0], bound[piece, 1]
    m, c0, c1 = _compact(ids, start, end, keep, key, window, words, lines, eff)
    most = 2 * window if ctx.shape[1] == 1 else 1  # examples a centre makes at most: a block never splits a centre's
    size, n, block = targets.shape[0], 0, 0
    total, count, rate = 0.0, 0, np.float32(lr)
    for i in range(c0, c1 + 1):
        if n > 0 and (i == c1 or n + most > size):
            seed = _hash(key ^ NOISE, (np.int64(piece) << np.int64(24)) + block)
            total += _block(model, buffers, scratch, tab, softmax, several, n, rate, seed, fixed)
            count += n
            n, block = 0, block + 1
        if i < c1:
            n = _emit(i, n, window, eff, lines, words, m, ctx, valid, targets)
    words_done = 0
    for p in range(start, end):
        words_done += ids[p] != SEPARATOR
    result[0] += total
    result[1] += count
    result[2] += words_done


@_serial
def _all_examples(ids, start, end, keep, key, window, ctx, valid, targets, words, lines, eff):
    """Every example of the piece [start, end) into ctx, valid and targets (large enough), as _piece makes them;
    returns how many (tests/test_pieces.py holds them to a reference)."""
    m, c0, c1 = _compact(ids, start, end, keep, key, window, words, lines, eff)
    n = 0
    for i in range(c0, c1):
        n = _emit(i, n, window, eff, lines, words, m, ctx, valid, targets)
    return n


if numba is not None:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    def _item(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return cgutils.get_item_pointer(context, builder, signature.args[0], ary, [args[1]])

    @intrinsic
    def _take(typingctx, array, index):
        """array[index] += 1 at once for every thread (an atomic add on an int64 array); returns the value before:
        the threads' shared counter of pieces."""
        def codegen(context, builder, signature, args):
            return builder.atomic_rmw("add", _item(context, builder, signature, args), ir.IntType(64)(1), "seq_cst")
        return types.int64(array, index), codegen

    @intrinsic
    def _read(typingctx, array, index):
        """array[index], read from memory each time (an atomic load: the stop flag the Python thread sets)."""
        def codegen(context, builder, signature, args):
            return builder.load_atomic(_item(context, builder, signature, args), "seq_cst", 8)
        return types.int64(array, index), codegen

    @intrinsic
    def _mark(typingctx, array, index):
        """array[index] = 1, after everything before it is written (an atomic store: a piece's done flag)."""
        def codegen(context, builder, signature, args):
            builder.store_atomic(ir.IntType(64)(1), _item(context, builder, signature, args), "seq_cst", 8)
            return context.get_dummy_value()
        return types.void(array, index), codegen


NEXT, STOP, WORKERS = 0, 1, 2  # the control array: the next piece to take, the stop flag, the number of threads


@fused._jit
def _epoch(text, model, buffers, scratch, tab, softmax, window, lrs, key, fixed, control, done, results):
    """An epoch's pieces from control[NEXT] on, by control[WORKERS] threads, each taking the next piece until none is
    left or control[STOP] is set (then it finishes the piece it has): done[k] set once piece k is trained, results[k]
    its (loss, examples, words). In a parallel region, not a Python thread a worker: the same loops ran 1.9x faster
    there (numba compiles a prange body with its arrays declared not to overlap)."""
    ctx, valid, targets, rows, coef, loss, words, lines, eff = buffers
    rowwise, copies, bases, top, kept = scratch
    workers, dim, width = control[WORKERS], model[0].shape[1], rows.shape[2]
    for t in prange(workers):
        mine = (ctx[t], valid[t], targets[t], rows[t], coef[t], loss[t], words[t], lines[t], eff[t])
        own = (rowwise[t, :dim], rowwise[t, dim:2 * dim], copies[t], bases[t], top, rowwise[t, 2 * dim:2 * dim + width],
               kept[t])
        while _read(control, STOP) == 0:
            k = _take(control, NEXT)
            if k >= len(lrs):
                break
            _piece(text, model, mine, own, tab, softmax, workers > 1, window, lrs[k], key, k, fixed, results[k])
            _mark(done, k)


class Threads:
    """A single process's CPU training by pieces: its pieces (bounds, words before each), its threads' buffers, and
    the arrays the kernel reads (views of the model's tensors, which train in place)."""

    def __init__(self, ids: np.ndarray, keep: np.ndarray, model, plan, cfg, threads: int, seed: int):
        from .heads import LOGISTIC
        family, tab, width = fused.tables(model.head)
        self.tab = tab._replace(share=plan.share)
        self.softmax = family != LOGISTIC
        self.model = (model.input.numpy(), model.head.weight.numpy(), model.head.bias.numpy())
        ids = np.asarray(ids)
        self.size = piece_tokens(len(ids), cfg.chunk_tokens)
        self.bounds = bounds(len(ids), cfg.chunk_tokens, self.size)
        self.text = (ids, self.bounds, np.ascontiguousarray(keep, dtype=np.float32))
        self.before = np.concatenate(([0], np.cumsum(_words(ids, self.bounds, cfg.chunk_tokens))))  # (P+1,)
        # the pieces that end a chunk: a progress report when the pieces done reach one, as the chunk loop reports
        self.chunk_end = (self.bounds[:, 1] % cfg.chunk_tokens == 0) | (self.bounds[:, 1] == len(ids))
        self.window, self.seed = cfg.window, seed
        self.threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
        self.done = 0  # after epoch(): the first piece not trained, every one before it trained
        dim = self.model[0].shape[1]
        self.fixed = (0,) * dim if dim >= fused.FIXED_FROM else ()
        slots = 1 if cfg.model == "sg" else 2 * cfg.window
        size = max(plan.batch_size, 2 * cfg.window)  # a block holds at least one centre's examples
        span = self.size + 2 * cfg.window + 1  # a piece's tokens and the window's worth each side
        t = self.threads
        self.buffers = (np.zeros((t, size, slots), np.int64), np.ones((t, size, slots), np.bool_),
                        np.zeros((t, size), np.int64), np.zeros((t, size, width), np.int64),
                        np.zeros((t, size, width), np.float32), np.zeros((t, size), np.float32),
                        np.zeros((t, span), np.int64), np.zeros((t, span), np.int32), np.zeros((t, span), np.int64))
        rowwise, top, copies, bases = fused._scratch(t, dim, width, self.model[1], self.tab.source)
        self.scratch = (rowwise, copies, bases, top, np.zeros((t, width + 128), dtype=np.bool_))

    def warm_up(self) -> None:
        """Compile the epoch's kernel for these arrays' types (or load it from numba's cache) before training is timed:
        an epoch of no piece, which trains nothing."""
        self._run(0, np.zeros(0), np.zeros(1, np.int64), np.zeros((1, 3)), np.array([0, 0, 1], np.int64))

    def _run(self, epoch: int, lrs, done, results, control) -> None:
        _epoch(self.text, self.model, self.buffers, self.scratch, self.tab, self.softmax, self.window, lrs,
               epoch_key(self.seed, epoch), self.fixed, control, done, results)

    def own(self, t: int) -> tuple[tuple, tuple]:
        """Thread t's buffers and scratch, as _epoch hands them to _piece (for a piece trained alone: the tests)."""
        rowwise, copies, bases, top, kept = self.scratch
        dim, width = self.model[0].shape[1], self.buffers[3].shape[2]
        return (tuple(b[t] for b in self.buffers),
                (rowwise[t, :dim], rowwise[t, dim:2 * dim], copies[t], bases[t], top,
                 rowwise[t, 2 * dim:2 * dim + width], kept[t]))

    def piece_at(self, chunk: int, chunk_tokens: int) -> int:
        """The first piece of a chunk: where a checkpoint of the chunk loop (one without a piece) resumes."""
        return int(np.searchsorted(self.bounds[:, 0], chunk * chunk_tokens))

    def epoch(self, epoch: int, first: int, rate, stop, report, last: int | None = None) -> int:
        """Train the epoch's pieces from `first` on; returns the first piece not trained (every one before it is).
        rate(words before the piece in the epoch) is a piece's learning rate; stop() is asked 20 times a second, and
        once it is true no piece is begun; report(results, chunk, quiet) gets [(piece, loss, examples, words, lr),
        ...] as pieces finish, in this thread, with chunk True when the pieces done from the epoch's start reach a
        chunk's end, and quiet True for the pieces done when an exception stopped the others (to count, not report). The kernel runs in a thread of its own (it holds no lock of Python's), so that this
        one reports, and hears Ctrl-C; an exception in report stops the kernel, then rises. last: stop before that
        piece (an exact place to stop at, for the tests)."""
        n = len(self.bounds)
        lrs = np.array([rate(int(b)) for b in self.before[:n]], dtype=np.float64)
        run_lrs = lrs[:n if last is None else last]  # the kernel takes no piece past its rates
        done, results = np.zeros(n, np.int64), np.zeros((n, 3))
        done[:first] = 1
        reported = done.astype(bool)
        control = np.array([first, 0, self.threads], np.int64)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                numba.set_num_threads(self.threads)  # numba's thread count is per calling thread
                self._run(epoch, run_lrs, done, results, control)
            except BaseException as e:  # a failure of the kernel rises in this thread
                errors.append(e)

        prefix = [first]  # the pieces done from the epoch's start

        def gather(quiet: bool = False) -> None:
            """Report the pieces done since the last call: a report for each chunk's end that the pieces done from
            the start reach (as the chunk loop reports at each chunk's end), then one of the rest. quiet: to be
            counted only (the kernel was stopped by an exception)."""
            new = [int(k) for k in np.flatnonzero((done != 0) & ~reported)]
            while new:
                while prefix[0] < n and done[prefix[0]] and not self.chunk_end[prefix[0]]:
                    prefix[0] += 1
                ends = prefix[0] < n and done[prefix[0]] != 0  # the prefix reaches this chunk's end
                upto = prefix[0] + 1 if ends else n
                mine = [k for k in new if k < upto]
                new = [k for k in new if k >= upto]
                if ends:
                    prefix[0] += 1
                reported[mine] = True  # each segment marked as it goes: one that report stopped at is counted later
                report([(k, float(results[k, 0]), int(results[k, 1]), int(results[k, 2]), float(lrs[k]))
                        for k in mine], ends, quiet)

        runner = threading.Thread(target=run, name="w2v-nce pieces", daemon=True)
        runner.start()
        try:
            while runner.is_alive():
                runner.join(0.05)
                gather()
                if stop():
                    control[STOP] = 1
        except BaseException:
            control[STOP] = 1
            runner.join()  # the pieces begun are finished: the model is the first pieces' whole work
            gather(quiet=True)  # and counted, though not reported
            raise
        finally:
            control[STOP] = 1
            runner.join()
            self.done = min(int(control[NEXT]), len(run_lrs))  # each thread takes one past the last: not taken
        if errors:
            raise errors[0]
        gather()
        return self.done


def _words(ids: np.ndarray, bound: np.ndarray, chunk_tokens: int) -> np.ndarray:
    """(P,) the words of each piece (its tokens less its line breaks), a chunk of the corpus read at a time."""
    out = np.empty(len(bound), np.int64)
    for s in range(0, max(len(ids), 1), chunk_tokens):
        part = ids[s:s + chunk_tokens] == SEPARATOR
        seps = np.concatenate(([0], np.cumsum(part, dtype=np.int64)))
        mine = np.flatnonzero((bound[:, 0] >= s) & (bound[:, 0] < s + chunk_tokens))
        a, b = bound[mine, 0] - s, bound[mine, 1] - s
        out[mine] = (b - a) - (seps[b] - seps[a])
    return out
