"""Each thread's own copies of the most frequent words' rows, in the CPU's training by pieces on several threads.

Why: two threads that write one row take its cache lines from each other's core at every write, and the most
frequent words' rows are in nearly every example: CBOW's contexts and targets, skip-gram's pairs, a good share of the
noise draws (unigram^0.75). Each thread trains its own copy of the HOT most frequent words' input and output rows
(and biases), and at each block's end gives its changes to the shared rows and takes the other threads' (merge), as
hs's top nodes are held (paths.sync). The model's other rows stay shared, as word2vec.c's and gensim's threads
share all of them. cbow-neg 1.2-1.3x words/s on two threads, cbow-infonce 1.4x, skip-gram's heads 1.1-1.15x
(docs/benchmarks-log.md section 26); one thread has no copies and gives the vectors it gave before, to the bit.

Where: spare rows after the model's own rows, in the same storage (spare_rows), so that the compiled loops index one
array and never choose between two (a choice in the loop cost more than the copies saved: log section 24). A
thread's examples name its copy of a hot word's row from the moment they are made (relabel), and its noise draws
from the moment they are drawn (update._copy_of, with Tables.hot and hot_at). A vocabulary is by descending count:
the hot words are ids below HOT. Not copied: the input rows with --subwords (a word's id names its n-gram rows there),
hs's inner nodes (its own copies, above) and skip-gram hs's input rows (no speed gained, WS353 lost: log section 27).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .kernel import NOISE, Tables
from .native import inline, serial

HOT = 512  # the most frequent words whose rows each thread copies: on the whole benchmark corpus 256 and 512 ran alike, 1,024 up to 7% slower, 4,096 15-20% (its merges)


class Own(NamedTuple):
    """One thread's copies: where its input copies start, and the hot rows as it last took them (merge)."""
    in_hot: int  # input rows below this have a copy (0: none)
    in_at: int  # this thread's copy of input row w is row in_at + w
    out_base: np.ndarray  # (H, D) float32: the output rows as taken (H: the tab's hot, 0 where none)
    in_base: np.ndarray  # (H_in, D) float32: the input rows as taken
    bias_base: np.ndarray  # (H,) float32


def spare_rows(param: torch.Tensor, extra: int) -> np.ndarray:
    """The parameter's rows moved to the front of a storage `extra` rows longer, its data a view of them (everything
    else sees it as before); returns the whole storage as an array, the kernels' (rows past the parameter's own are
    the threads' copies). A checkpoint of the parameter then holds those rows too (torch saves a view's storage):
    threads x HOT rows, a few per cent of a vocabulary's."""
    if extra == 0:
        return param.numpy()
    n = param.shape[0]
    whole = torch.empty((n + extra, *param.shape[1:]), dtype=param.dtype)
    whole[:n] = param.data
    param.data = whole[:n]
    return whole.numpy()


class Copies:
    """The threads' copies of a model's hot rows: the model's tensors moved onto longer storages (spare_rows), the
    kernel's Params and Tables for them, and each thread's Own."""

    def __init__(self, model, params, tab, threads: int, subwords: bool, cbow: bool = False):
        head = model.head
        copy_out = threads > 1 and tab.source == NOISE  # hs: its top nodes have their own copies
        # skip-gram's hs: its inputs copied gained it no speed and cost 0.01 of WS353 in two seeds (log section 27)
        copy_in = threads > 1 and not subwords and (tab.source == NOISE or cbow)
        self.out_hot = min(HOT, head.weight.shape[0]) if copy_out else 0
        self.in_hot = min(HOT, model.input.shape[0]) if copy_in else 0
        self.out_rows, self.in_rows = head.weight.shape[0], model.input.shape[0]
        self.params = params._replace(out=spare_rows(head.weight, threads * self.out_hot),
                                      bias=spare_rows(head.bias, threads * self.out_hot),
                                      inp=spare_rows(model.input, threads * self.in_hot))
        shift = tab.shift
        if self.out_hot and len(shift) > 1:  # a copy's score shift is its word's
            shift = np.concatenate([shift] + [shift[:self.out_hot]] * threads)
        self.tab = tab._replace(shift=shift, hot=self.out_hot, hot_at=self.out_rows)
        dim = params.out.shape[1]
        self.bases = (np.zeros((threads, self.out_hot, dim), np.float32),
                      np.zeros((threads, self.in_hot, dim), np.float32), np.zeros((threads, self.out_hot), np.float32))
        p = self.params
        for t in range(threads):  # every copy and base the shared rows: merge keeps copy == base after it
            for rows, hot, at, base in ((p.out, self.out_hot, self.out_rows, self.bases[0]),
                                        (p.inp, self.in_hot, self.in_rows, self.bases[1]),
                                        (p.bias, self.out_hot, self.out_rows, self.bases[2])):
                rows[at + t * hot:at + (t + 1) * hot] = rows[:hot]
                base[t] = rows[:hot]

    def shared(self) -> tuple:
        """What the epoch's kernel takes: (in_hot, in_rows, out bases, in bases, bias bases)."""
        return (self.in_hot, self.in_rows, *self.bases)


@inline
def thread_tab(tab, t):
    """Thread t's Tables: its copies of the hot output rows (hot_at)."""
    return Tables(tab.source, tab.shift, tab.prob, tab.alias, tab.drop_hits, tab.offsets, tab.points, tab.codes,
                  tab.learn_bias, tab.bias_now, tab.share, tab.ahead, tab.hot, tab.hot_at + t * tab.hot, tab.entries,
                  tab.kind)


@inline
def thread_own(shared, t):
    """Thread t's Own, of Copies.shared()."""
    in_hot, in_rows, out_base, in_base, bias_base = shared
    return Own(in_hot, in_rows + t * in_hot, out_base[t], in_base[t], bias_base[t])


@inline
def relabel(batch, n, tab, own):
    """Examples [0, n) of a block name this thread's copies of the hot words' rows: their input words and, where a
    target is an output row (the noise heads), their targets."""
    ctx, targets = batch.ctx, batch.targets
    for a in range(n):
        if tab.source == NOISE and targets[a] < tab.hot:
            targets[a] += tab.hot_at
        for s in range(ctx.shape[1]):
            if ctx[a, s] < own.in_hot:
                ctx[a, s] += own.in_at


@serial
def merge(params, tab, own):
    """Give this thread's changes to the hot rows since it last took them (copy - base) to the shared rows, then take
    the shared rows, the other threads' changes included, as its copies and bases. With copy == base (as after every
    merge) it only takes."""
    out, inp, bias = params.out, params.inp, params.bias
    for q in range(tab.hot):
        _give_take(out[q], out[tab.hot_at + q], own.out_base[q])
        value = bias[q] + (bias[tab.hot_at + q] - own.bias_base[q])
        bias[q] = value
        bias[tab.hot_at + q] = value
        own.bias_base[q] = value
    for q in range(own.in_hot):
        _give_take(inp[q], inp[own.in_at + q], own.in_base[q])


@inline
def _give_take(shared, copy, base):
    for d in range(shared.shape[0]):
        value = shared[d] + (copy[d] - base[d])
        shared[d] = value
        copy[d] = value
        base[d] = value
