"""The bench report's arithmetic: the GPU bandwidth bound and the Markdown table."""

import dataclasses

from w2v_nce.tools.bench import bound_fraction, markdown, merge_rounds
from w2v_nce.run.loops import Chunks
from w2v_nce.config import make_config


def row(**kw):
    base = {"tool": "w2v-nce", "device": "cpu", "model": "sg", "loss": "neg", "train_words_per_s": 1e6,
            "vocab_seconds": 3.0, "analogy": 0.35, "ws353": 0.66, "simlex": 0.31, "mean_log_z": 8.7,
            "heldout_nll": 9.9, "examples_per_s": 4.5e6, "gpu_peak_mib": None}
    return {**base, **kw}


def test_bound_fraction_is_pairs_times_8_d_k_plus_2_over_bandwidth():
    cfg = make_config(model="sg", loss="neg", dim=100, negatives=5)
    # the example: 5.6 KB a pair at d = 100, k = 5; 100M pairs/s on 3.35 TB/s
    assert abs(bound_fraction({"examples_per_s": 1e8}, cfg, 3.35e12) - 1e8 * 5600 / 3.35e12) < 1e-12
    assert bound_fraction({"examples_per_s": 1e8}, make_config(model="cbow"), 3.35e12) is None
    assert bound_fraction({"examples_per_s": 1e8}, make_config(loss="softmax"), 3.35e12) is None


def test_markdown_reports_ratio_device_and_the_gpu_section():
    meta = {"machine": "test", "threads": 2, "date": "2026-11-22", "corpus": "c.txt", "heldout_fraction": 0.005,
            "settings": dataclasses.asdict(make_config())}
    rows = [row(batch_size=4096), row(device="cuda", train_words_per_s=5e7, examples_per_s=2.25e8, gpu_peak_mib=812.0,
                                      bandwidth=4.3e12, bound_fraction=0.293, batch_size=1 << 20),
            row(tool="gensim 4.4.0", train_words_per_s=5e5)]
    text = markdown(rows, meta, "w2v-nce bench c.txt")
    lines = text.splitlines()
    assert "| w2v-nce | cpu | sg | neg | 1,000,000 | 2.00x |" in text
    assert "| w2v-nce | cuda | sg | neg | 50,000,000 | 100.00x |" in text
    assert any("4,300 GB/s" in x for x in lines)
    assert "- sg-neg: 225.0M examples/s, 29.3% of the bandwidth bound; peak GPU memory 812 MiB" in lines
    assert "Ours: batch 4096 on cpu, 1048576 on cuda examples per call of the step" in text  # device defaults
    assert "On the GPU" not in markdown(rows[:1], meta, "w2v-nce bench c.txt")


def test_each_head_is_compared_with_gensim_s_same_head_where_it_has_one():
    meta = {"machine": "test", "threads": 2, "date": "2026-11-29", "corpus": "c.txt", "heldout_fraction": 0.005,
            "settings": dataclasses.asdict(make_config())}
    rows = [row(loss="hs", batch_size=4096, shared_noise=1), row(loss="infonce", batch_size=4096, shared_noise=2),
            row(tool="gensim 4.4.0", train_words_per_s=5e5), row(tool="gensim 4.4.0", loss="hs", train_words_per_s=2.5e5)]
    text = markdown(rows, meta, "w2v-nce bench c.txt --loss hs --loss infonce")
    assert "| w2v-nce | cpu | sg | hs | 1,000,000 | 4.00x |" in text  # against gensim's hs
    assert "| w2v-nce | cpu | sg | infonce | 1,000,000 | 2.00x |" in text  # against gensim's neg
    assert "Ours: batch 4096 examples per call of the step" in text
    assert "noise words shared by 2 examples in sg-infonce;" in text  # each head's, not the last row's
    assert "noise words not shared;" in markdown(rows[:1], meta, "w2v-nce bench c.txt --loss hs")


def test_gpu_order_puts_example_t_of_every_share_in_one_step():
    import torch

    from w2v_nce.tools import bench

    original = Chunks.examples
    Chunks.examples = lambda self, chunk: (torch.arange(10) * 10, torch.arange(10), None)
    try:
        with bench.gpu_order(workers=2, launch=6):
            inputs, targets, mask = Chunks.examples(None, 0)
    finally:
        Chunks.examples = original
    # launch 1: examples 0-5 in shares [0 1 2] [3 4 5] -> 0 3 1 4 2 5; launch 2: 6-9 in [6 7] [8 9] -> 6 8 7 9
    assert targets.tolist() == [0, 3, 1, 4, 2, 5, 6, 8, 7, 9]
    assert inputs.tolist() == [10 * t for t in targets.tolist()] and mask is None


def test_rounds_keep_each_rows_best_speed_and_mean_scores():
    rounds = [row(train_words_per_s=9e5, analogy=0.30, vocab_seconds=2.0), row(loss="nce", train_words_per_s=8e5),
              row(tool="gensim 4.4.0", train_words_per_s=5e5, ws353=None),
              row(train_words_per_s=1.2e6, analogy=0.40, vocab_seconds=3.0), row(loss="nce", train_words_per_s=1.1e6),
              row(tool="gensim 4.4.0", train_words_per_s=4e5, ws353=None)]
    merged = merge_rounds(rounds)
    assert [(r["tool"], r["loss"]) for r in merged] == [("w2v-nce", "neg"), ("w2v-nce", "nce"), ("gensim 4.4.0", "neg")]
    neg, nce, gensim = merged
    assert neg["train_words_per_s"] == 1.2e6 and neg["words_per_s_min"] == 9e5 and neg["rounds"] == 2
    assert abs(neg["analogy"] - 0.35) < 1e-12 and neg["vocab_seconds"] == 2.0
    assert gensim["train_words_per_s"] == 5e5 and gensim["ws353"] is None
    meta = {"machine": "test", "threads": 2, "date": "2026-11-22", "corpus": "c.txt", "heldout_fraction": 0.005,
            "settings": dataclasses.asdict(make_config())}
    text = markdown(merged, meta, "w2v-nce bench c.txt --repeats 2")
    assert "| w2v-nce | cpu | sg | neg | 1,200,000 (900,000) | 2.40x |" in text
    assert "Rounds: 2" in text and "nce / neg train words/s: sg on cpu 0.92" in text
    assert merge_rounds(rounds[:3])[0]["rounds"] == 1
