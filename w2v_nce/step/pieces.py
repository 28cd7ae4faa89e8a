"""The CPU's training step without a barrier: the corpus in pieces, each made into examples and trained, compiled, by
whichever thread takes it, as word2vec.c's and gensim's inner loops do.

Why: threads that split each batch evenly and meet at its end wait for the slowest: a thread the system parks for a
moment (a busy machine) stops the others. Here each of the run's threads takes the
next piece of the corpus (up to PIECE_MAX tokens, within a chunk) from an atomic counter and does all of it in the
compiled loop: sub-sampling, the dynamic window, skip-gram pairs or CBOW contexts, the update (update.py's loops, on
blocks of the plan's batch size). The threads meet only at an epoch's end and when training stops; the Python thread
gathers each piece's loss and words for the progress bar and metrics.jsonl, says when to stop, and checkpoints.

Randomness that does not depend on the threads: whether the token at position p is kept, and the window of the
centre at p, are hashes (splitmix64) of the run's seed, the epoch and p; a piece's noise words are kernel.py's
counter-based draws from one seed for each block of examples, a hash of the seed, epoch, piece and block. So one
thread gives the same vectors run after run and after a resume from any piece, and with several threads each piece's
draws are the same whichever thread takes it. A piece sees the kept tokens around it on its line (up to a window's
worth beyond its ends), so windows cross piece and chunk boundaries as they cross nothing else but line breaks.
A stop (a signal, a callback) lets the pieces already taken finish, so the pieces done are always the first ones
of the epoch's order: the checkpoint's position is (epoch, place in that order).

The order: each epoch takes the pieces in a permutation of its own, drawn from the seed and the epoch
(Threads.arrange), not in the file's order. A corpus is often sorted (by source, date, product, author), and the
learning rate falls to zero over each epoch: in the file's order its last part, trained at the lowest rates, was the
file's last topics, and two threads worked side by side on one stretch. Korean movie reviews grouped by movie
(nsmc-a), WS353-ko: 0.235 in the file's order, 0.259 in each epoch's own (means of 4 seeds; 0.264 over 8, fastText
0.261), 0.273 with the lines shuffled beforehand; fastText's threads read far-apart parts of the file. English analogies
+0.013 (sg-neg) and +0.017 (cbow-neg); the same speed (docs/benchmarks-log.md section 18). The chunk loop (several
processes, the GPU) keeps the file's order.

Several processes (torchrun) keep the chunk loop with the batch kernels: their synchronisations need every thread
at one point, many times an epoch.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np


from .scratch import of_thread, scratch
from .update import Batch, add_biases, fixed_for, logistic_range, own_rows, params_of, softmax_range
from .copies import Copies, merge, relabel, thread_own, thread_tab
from .kernel import SOFTMAX_NOISE, tables
from .native import inline, jit, mark, numba, prange, read, serial, take
from .. import jit_cache
from ..corpus.examples import emit
from ..corpus.vocab import SEPARATOR
from ..model.word2vec import centre_input, input_slots

class Text(NamedTuple):
    """The corpus as the kernel reads it."""
    ids: np.ndarray  # (N,) int32: the encoded corpus, SEPARATOR between lines
    bounds: np.ndarray  # (P, 2) int64: each piece's [start, end)
    keep: np.ndarray  # (V,) float32: each word's probability of being kept by sub-sampling
    centre_in: bool = False  # skip-gram's pairs as (centre, context) (model/word2vec.centre_input)


class Kept(NamedTuple):
    """One thread's kept tokens of a piece and around it (_compact)."""
    words: np.ndarray  # (M,) int64
    lines: np.ndarray  # (M,) int32: the line of each, counted from the piece's first
    eff: np.ndarray  # (M,) int64: each centre's drawn window
    slots: np.ndarray  # (2W,) int64: share_across's, a centre's examples at most


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


@inline
def _hash(key, m):
    """splitmix64 of key + m·golden, as kernel.draw_function's noise draws mix their counter."""
    z = key + np.uint64(m) * GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@inline
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


@serial
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


@serial
def _block(params, batch, shared, tab, kind, own, several, n, lr, seed, fixed):
    """Train the block's n examples (update.py's loop of the head's family, one thread), then their biases; returns the
    sum of their losses. The examples name the thread's copies of the hot rows (copies.py), given at the end."""
    relabel(batch, n, tab, own)
    if kind.ndim == SOFTMAX_NOISE:  # numba compiles the loop of the run's kind only (kernel.Tables.kind)
        softmax_range(params, batch, tab, params.rows_in, lr, True, seed, fixed, 0, n, shared)
    else:
        logistic_range(params, batch, tab, kind, params.rows_in, lr, True, seed, fixed, 0, n, shared, several)
    if tab.learn_bias and not tab.bias_now:  # the biases at the block's end, as the batch kernels do
        add_biases(params.bias, batch.rows[:n], batch.coef[:n])
    merge(params, tab, own)
    total = 0.0
    for a in range(n):
        total += batch.loss[a]
    return total


@serial
def _piece(text, params, batch, kept, shared, tab, own, several, window, lr, key, piece, fixed, result):
    """Piece `piece` of the text: its examples made (emit) and trained, a block of the batch's size at a time
    (_block). result (3,) float64: += the loss summed over its examples, their number, and the piece's words (line
    breaks aside)."""
    ids = text.ids
    start, end = text.bounds[piece, 0], text.bounds[piece, 1]
    words, lines, eff, slots = kept
    m, c0, c1 = _compact(ids, start, end, text.keep, key, window, words, lines, eff)
    merge(params, tab, own)  # take the hot rows as the other threads left them (copies.py)
    ctx, valid, targets = batch.ctx, batch.valid, batch.targets
    most = 2 * window if ctx.shape[1] == 1 else 1  # examples a centre makes at most: a block never splits a centre's
    # n an int64 from the start: a literal 0 here had numba compile _block and its loop twice, once for n typed as
    # the constant 0 (docs/benchmarks-log.md section 31)
    size, n, block, centres = targets.shape[0], np.int64(0), 0, 0
    total, count, rate = 0.0, 0, np.float32(lr)
    across = len(batch.first) > 1
    for i in range(c0, c1 + 1):
        if n > 0 and (i == c1 or n + most > size):
            seed = _hash(key ^ NOISE, (np.int64(piece) << np.int64(24)) + block)
            total += _block(params, batch, shared, tab, tab.kind, own, several, n, rate, seed, fixed)
            count += n
            n, block, centres = np.int64(0), block + 1, 0
        if i < c1:
            n0 = n
            n = emit(i, n, window, eff, lines, words, m, ctx, valid, targets, text.centre_in)
            if across and n > n0:
                share_across(batch.first, n0, n, centres, tab.share, slots)
                centres += 1
    words_done = 0
    for p in range(start, end):
        words_done += ids[p] != SEPARATOR
    result[0] += total
    result[1] += count
    result[2] += words_done


@inline
def share_across(first, n0, n, centre, share, slots):
    """Batch.first of a centre's examples [n0, n) (skip-gram's pairs made (centre, context), one input word): the
    k-th example of each of `share` consecutive centres (centre: this one's number in the block) shares one draw of
    noise words, the first of them drawing it (slots[k]: that example). Why not N consecutive examples, as the
    pairs made (context, centre) share them: those have N inputs against one target, as pWord2Vec's shared
    negatives; these would have one input against the same noise words N times over, which cost subword runs 0.10
    of English analogy at N = 8 (log section 24). slots: (2W,), a centre's examples at most."""
    if centre % share == 0:
        slots[:] = -1
    for e in range(n0, n):
        k = e - n0
        if slots[k] < 0:
            slots[k] = e
        first[e] = slots[k]


@serial
def _all_examples(ids, start, end, keep, key, window, ctx, valid, targets, words, lines, eff, centre_in=False):
    """Every example of the piece [start, end) into ctx, valid and targets (large enough), as _piece makes them;
    returns how many (tests/test_pieces.py holds them to a reference)."""
    m, c0, c1 = _compact(ids, start, end, keep, key, window, words, lines, eff)
    n = 0
    for i in range(c0, c1):
        n = emit(i, n, window, eff, lines, words, m, ctx, valid, targets, centre_in)
    return n


NEXT, STOP, WORKERS = 0, 1, 2  # the control array: the next piece to take, the stop flag, the number of threads


@jit
def _epoch(text, params, batches, kept, shared, copies, tab, window, order, lrs, key, fixed, control, done, results):
    """An epoch's pieces in their order from place control[NEXT] on, by control[WORKERS] threads, each taking the next
    until none is left or control[STOP] is set (then it finishes the piece it has): the piece at place k is
    order[k], trained at rate lrs[k]; done[k] is set once it is trained, results[k] is its (loss, examples, words).
    batches and kept: a Batch and a Kept of arrays with a row a thread. In a parallel region, not a Python thread a
    worker: numba compiles a prange body with its arrays declared not to overlap, and the same loops ran much faster
    there."""
    workers, dim, width = control[WORKERS], params.inp.shape[1], batches.rows.shape[2]
    for t in prange(workers):
        batch = Batch(batches.ctx[t], batches.valid[t], batches.targets[t], batches.rows[t], batches.coef[t],
                      batches.loss[t], batches.first[t])
        own = Kept(kept.words[t], kept.lines[t], kept.eff[t], kept.slots[t])
        mine = of_thread(shared, t, dim, width)
        tab_t, own_copies = thread_tab(tab, t), thread_own(copies, t)
        while read(control, STOP) == 0:
            k = take(control, NEXT)
            if k >= len(lrs):
                break
            _piece(text, params, batch, own, mine, tab_t, own_copies, workers > 1, window, lrs[k], key,
                   order[k], fixed, results[k])
            mark(done, k)


class Threads:
    """A single process's CPU training by pieces: its pieces (bounds, in the file's order; a piece's number is its
    place there), the epoch's order of them (arrange: order, and the words before each place), its threads'
    buffers, and the arrays the kernel reads (views of the model's tensors, which train in place)."""

    def __init__(self, ids: np.ndarray, keep: np.ndarray, model, plan, cfg, threads: int, seed: int):
        _, tab, width = tables(model.head)
        self.tab = tab._replace(share=plan.share)
        slots = input_slots(cfg.model, cfg.window)
        self.params = own_rows(params_of(model), slots)
        ids = np.asarray(ids)
        self.size = piece_tokens(len(ids), cfg.chunk_tokens)
        self.bounds = bounds(len(ids), cfg.chunk_tokens, self.size)
        self.text = Text(ids, self.bounds, np.ascontiguousarray(keep, dtype=np.float32),
                         centre_input(cfg.model, cfg.subwords))
        self.words = _words(ids, self.bounds, cfg.chunk_tokens)  # (P,) each piece's
        # a chunk's worth of places: a progress report when the pieces done reach the end of one, as the chunk loop
        # reports at each chunk's end (in the file's order, the pieces that end a chunk)
        n, per = len(self.bounds), -(-cfg.chunk_tokens // self.size)
        self.chunk_end = np.zeros(n, np.bool_)
        self.chunk_end[per - 1::per] = True
        self.chunk_end[-1] = True
        self.window, self.seed = cfg.window, seed
        self.arrange(0, shuffled=False)
        self.threads = t = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
        self.done = 0  # after epoch(): the first piece not trained, every one before it trained
        dim = self.params.inp.shape[1]
        self.fixed = fixed_for(dim)
        size = max(plan.batch_size, 2 * cfg.window)  # a block holds at least one centre's examples
        span = self.size + 2 * cfg.window + 1  # a piece's tokens and the window's worth each side
        # Batch.first: where the pairs are made (centre, context) and share noise draws, across centres
        across = self.text.centre_in and plan.share > 1
        self.batches = Batch(np.zeros((t, size, slots), np.int64), np.ones((t, size, slots), np.bool_),
                             np.zeros((t, size), np.int64), np.zeros((t, size, width), np.int64),
                             np.zeros((t, size, width), np.float32), np.zeros((t, size), np.float32),
                             np.zeros((t, size if across else 1), np.int64))
        self.kept = Kept(np.zeros((t, span), np.int64), np.zeros((t, span), np.int32), np.zeros((t, span), np.int64),
                         np.zeros((t, 2 * cfg.window), np.int64))
        self.shared = scratch(t, dim, width, self.params.out, self.tab.source)
        # each thread's copies of the hot rows, after the model's own (copies.py): the model's tensors move
        self.copies = Copies(model, self.params, self.tab, t, cfg.subwords is not None, slots > 1)
        self.params, self.tab = self.copies.params, self.copies.tab

    def arrange(self, epoch: int, shuffled: bool = True) -> None:
        """The epoch's order of the pieces (the module docstring): a permutation drawn from the seed and the epoch, the
        same on any number of threads and after a resume, or with shuffled False the file's (an epoch a checkpoint
        of the chunk loop, or of a version before the shuffled order, was in). Sets order (P,) and before (P+1,):
        the words of the places before each."""
        n = len(self.bounds)
        self.order = (np.random.default_rng(int(epoch_key(self.seed, epoch))).permutation(n) if shuffled
                      else np.arange(n))
        self.before = np.concatenate(([0], np.cumsum(self.words[self.order])))

    def warm_up(self) -> None:
        """Load the epoch's kernel for these arrays' types from numba's cache (compiled there first, in a child
        process, if it is not: jit_cache.compiled_apart) before training is timed: an epoch of no piece, which trains
        nothing."""
        self._kernel(0, np.zeros(0), np.zeros(1, np.int64), np.zeros((1, 3)), np.array([0, 0, 1], np.int64), True)

    def _kernel(self, epoch: int, lrs, done, results, control, apart: bool = False) -> None:
        args = (self.text, self.params, self.batches, self.kept, self.shared, self.copies.shared(), self.tab,
                self.window, self.order, lrs, epoch_key(self.seed, epoch), self.fixed, control, done, results)
        if apart:
            jit_cache.compiled_apart(_epoch, *args)
        _epoch(*args)

    def piece(self, k: int, epoch: int, lr: float, t: int = 0) -> np.ndarray:
        """Train piece k alone with thread t's buffers, in this thread (the tests); returns its (loss, examples,
        words)."""
        result = np.zeros(3)
        dim, width = self.params.inp.shape[1], self.batches.rows.shape[2]
        batch = Batch(*(a[t] for a in self.batches))
        tab, copies = _thread_tab(self.tab, t), _thread_own(self.copies.shared(), t)
        _piece(self.text, self.params, batch, Kept(*(a[t] for a in self.kept)), _own(self.shared, t, dim, width),
               tab, copies, False, self.window, lr, epoch_key(self.seed, epoch), k, self.fixed, result)
        return result

    def piece_at(self, chunk: int, chunk_tokens: int) -> int:
        """The first piece of a chunk: where a checkpoint of the chunk loop (one without a piece) resumes, its epoch in
        the file's order."""
        return int(np.searchsorted(self.bounds[:, 0], chunk * chunk_tokens))

    def epoch(self, epoch: int, first: int, rate, stop, report, last: int | None = None) -> int:
        """Train the epoch's pieces, in the order arrange gave, from place `first` on; returns the first place not
        trained (every one before it is). rate(words before the place in the epoch) is a piece's learning rate;
        stop() is asked before the first piece and then 20 times a second, and once it is true no piece is begun;
        report(results, chunk, quiet) gets [(place, loss, examples, words, lr), ...] as pieces finish, in this thread
        (Gather). The kernel runs in a thread of its own (it holds no lock of Python's), so that this one reports, and
        hears Ctrl-C; an exception in report stops the kernel, then rises. last: stop before that place (an exact place
        to stop at)."""
        n = len(self.bounds)
        lrs = np.array([rate(int(b)) for b in self.before[:n]], dtype=np.float64)
        run_lrs = lrs[:n if last is None else last]  # the kernel takes no piece past its rates
        done, results = np.zeros(n, np.int64), np.zeros((n, 3))
        done[:first] = 1
        # a stop asked before the epoch (a callback at the last one's end) begins no piece: the first look at stop()
        # in the loop below comes 50 ms after the kernel starts, when a small corpus's epoch can be over
        control = np.array([first, 1 if stop() else 0, self.threads], np.int64)
        gather = Gather(done, results, lrs, self.chunk_end, first, report)
        errors: list[BaseException] = []
        runner = threading.Thread(target=self._kernel_thread, args=(epoch, run_lrs, done, results, control, errors),
                                  name="w2v-nce pieces", daemon=True)
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

    def _kernel_thread(self, epoch: int, lrs, done, results, control, errors: list) -> None:
        try:
            numba.set_num_threads(self.threads)  # numba's thread count is per calling thread
            self._kernel(epoch, lrs, done, results, control)
        except BaseException as e:  # a failure of the kernel rises in the reporting thread
            errors.append(e)


class Gather:
    """The pieces done since the last call, to report: a report for each chunk's end that the pieces done from the
    epoch's start reach (as the chunk loop reports at each chunk's end), then one of the rest."""

    def __init__(self, done, results, lrs, chunk_end, first: int, report):
        self.done, self.results, self.lrs, self.chunk_end, self.report = done, results, lrs, chunk_end, report
        self.reported = done.astype(bool)
        self.prefix = first  # the pieces done from the epoch's start

    def __call__(self, quiet: bool = False) -> None:
        """quiet: to be counted only (the kernel was stopped by an exception)."""
        done, n = self.done, len(self.done)
        new = [int(k) for k in np.flatnonzero((done != 0) & ~self.reported)]
        while new:
            while self.prefix < n and done[self.prefix] and not self.chunk_end[self.prefix]:
                self.prefix += 1
            ends = self.prefix < n and done[self.prefix] != 0  # the prefix reaches this chunk's end
            upto = self.prefix + 1 if ends else n
            mine = [k for k in new if k < upto]
            new = [k for k in new if k >= upto]
            if ends:
                self.prefix += 1
            self.reported[mine] = True  # each segment marked as it goes: one that report stopped at is counted later
            r = self.results
            self.report([(k, float(r[k, 0]), int(r[k, 1]), int(r[k, 2]), float(self.lrs[k])) for k in mine], ends,
                        quiet)


_own = numba.njit(of_thread.py_func) if numba is not None else of_thread  # of_thread, callable from Python
_thread_tab, _thread_own = ((numba.njit(thread_tab.py_func), numba.njit(thread_own.py_func)) if numba is not None
                            else (thread_tab, thread_own))


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
