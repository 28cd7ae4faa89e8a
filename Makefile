# w2v-nce: the README's commands. PYTHON may point at a virtual environment's interpreter.
PYTHON ?= python3
CORPUS ?= ../shared/corpora/wiki100m.txt.gz
KO_CORPUS ?= ../shared/corpora/nsmc-a.txt.gz

.PHONY: install demo test same-vectors bench bench-busy bench-speed bench-continued bench-scale bench-phrases bench-levers bench-heads bench-heldout bench-scaling bench-softmax bench-gpu-emulated bench-distributed bench-sync pictures gpu-kit gpu-check text8 clean

# Installs torch only when none is present, so an existing CUDA build is kept; torch==2.13.0 is the
# CPU build (on a machine with network and a GPU, install your CUDA build of torch first).
# what a user needs to train, evaluate, query and plot (torch first: the CPU build here, see the README for a GPU)
install:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -e ".[plot]"

# the whole job on the corpus that ships (corpora/wiki10m.txt.gz: 10 MB of English Wikipedia), offline: what is
# missing installed, the default preset trained into runs/demo (replaced when the demo runs again), the analogies and
# similarities scored, a few queries answered, the picture drawn. About 1 minute on 2 cores (the first time in an
# installation: the compiled step too). EPOCHS=1 for a quick look.
ROOT := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
DEMO ?= runs/demo
EPOCHS ?= 5
W2V = $(PYTHON) -m w2v_nce
demo:
	@$(PYTHON) -c "import w2v_nce, torch, gensim, numba, matplotlib" 2>/dev/null || $(MAKE) -C $(ROOT) install
	$(W2V) train $(ROOT)corpora/wiki10m.txt.gz --out $(DEMO) --overwrite --epochs $(EPOCHS)
	$(W2V) eval analogies $(DEMO)
	$(W2V) eval similarity $(DEMO) --pairs ws353
	$(W2V) eval similarity $(DEMO) --pairs simlex999
	$(W2V) similar king computer --each --vectors $(DEMO) --topn 5
	$(W2V) similar france germany --vectors $(DEMO) --topn 5
	$(W2V) analogy man king woman --vectors $(DEMO) --topn 3
	$(W2V) plot $(DEMO)
	@echo; echo "Everything is in $(DEMO)/: vectors.kv (gensim KeyedVectors), config.toml (every setting), metrics.jsonl"
	@echo "(the training history), training.png (the picture), vocab.tsv; runs/latest points at it. Next:"
	@echo "  w2v-nce export $(DEMO) --out vectors.bin   # for word2vec's tools; .txt for text, --format projector"
	@echo "  w2v-nce similar WORD                       # nearest words to any word of the vocabulary"
	@echo "  w2v-nce train YOUR-TEXT.txt                # your own corpus (README: presets, heads, continued training)"

# the test tools (pytest; setuptools for the packaging test), installed when missing, then the tests
test:
	$(PYTHON) -c "import pytest, matplotlib; from importlib.metadata import version; \
	  assert int(version('setuptools').split('.')[0]) >= 70" 2>/dev/null || $(PYTHON) -m pip install -e ".[test]"
	$(PYTHON) -m pytest -q

# BENCHMARKS.md, "CPU speed by head": ours and gensim on the same corpus, settings and threads, two rounds
# (about 25 minutes)
bench:
	w2v-nce bench $(CORPUS) --epochs 5 --threads 2 --repeats 2 --out bench-report.md

# docs/benchmarks-log.md section 12 (issue 37): sg-neg and cbow-neg against gensim, idle and beside one busy
# process (`yes`), 1 epoch on the corpus's first 20 MB, 2 threads, 2 rounds (about 5 minutes)
bench-busy:
	$(PYTHON) benchmarks/busy.py $(CORPUS) --mb 20 --rounds 2 --competitors 1

# docs/benchmarks-log.md section 4 (issue 20): every head of ours against gensim's neg and hs, 2 threads, the defaults, one
# round (about 30 minutes); the ratio to gensim is the "vs gensim" column
bench-speed:
	w2v-nce bench $(CORPUS) --loss neg --loss nce --loss hs --loss infonce --loss sampled-softmax --epochs 5 \
	  --threads 2 --out bench-speed.md

# docs/benchmarks-log.md section 8: continued training (--init) on the corpus's second half against A+B from scratch and
# against gensim's build_vocab(update=True), sg-neg, 5 epochs (about 15 minutes on 2 cores)
bench-continued:
	$(PYTHON) benchmarks/continued.py $(CORPUS) --model sg --loss neg --epochs 5 --threads 2 --out bench-continued.md

# docs/benchmarks-log.md section 9: the vocabulary pass and one cbow-neg epoch on 1 GB of text and on a long-tail corpus
# (with --vocab-memory's default and without a bound), then the vocabulary pass alone (about 8 minutes, 3 GB of disk
# in /tmp/w2v-scale)
bench-scale:
	CORPUS=$(CORPUS) PYTHON=$(PYTHON) bash benchmarks/scale.sh

# docs/benchmarks-log.md section 10 (issue 24): phrases against word2vec.c's word2phrase and gensim's Phrases: equality and
# speed on the corpus's first 20 MB, then 2 phrase passes + sg-neg and sg-nce (5 epochs) on all of it, scored on the
# phrase analogies and questions-words (65 minutes here beside other jobs; 1 GB in /tmp/w2v-phrases). word2phrase and
# word2vec (word2vec.c's) are taken from W2V (default /tmp/word2vec-c), or built there: W2V_SRC=path/to/word2vec
bench-phrases:
	CORPUS=$(CORPUS) PYTHON=$(PYTHON) bash benchmarks/phrases.sh

# a restructuring keeps every output: the same runs trained here and at BASE, one thread, compared to the bit
# (about 6 minutes): make same-vectors BASE=REV
BASE ?= HEAD
same-vectors:
	PYTHON=$(PYTHON) benchmarks/same_vectors.sh $(BASE)

# docs/benchmarks-log.md section 4: the CPU levers (shared noise) against the exact step, 2 seeds (about 15 minutes a variant)
bench-levers:
	CORPUS=$(CORPUS) PYTHON=$(PYTHON) benchmarks/cpu_levers.sh

# docs/benchmarks-log.md section 1b ("Quality by head" in BENCHMARKS.md): the other heads (hs beside gensim's
# hierarchical softmax; infonce and sampled-softmax beside nce), one round (about 30 minutes)
bench-heads:
	w2v-nce bench $(CORPUS) --loss hs --loss nce --loss infonce --loss sampled-softmax --epochs 5 --threads 2 \
	  --out bench-heads.md

# BENCHMARKS.md, "Normalisation": held-out log Z and perplexity of every head (the sampled ones at k = 5, 25, 100), on a
# 10 MB slice with a 10,000-word vocabulary so that the exact softmax trains on a CPU
SLICE := /tmp/w2v-nce-slice
bench-heldout:
	mkdir -p $(SLICE)
	zcat -f $(CORPUS) | head -c 10000000 | head -c 9500000 > $(SLICE)/train.txt
	zcat -f $(CORPUS) | head -c 10000000 | tail -c 500000 > $(SLICE)/heldout.txt
	for spec in softmax:5 hs:5 neg:5 nce:5 nce:25 nce:100 infonce:5 infonce:25 infonce:100 sampled-softmax:5 \
	    sampled-softmax:25 sampled-softmax:100; do loss=$${spec%:*}; k=$${spec#*:}; \
	  rm -rf $(SLICE)/$$loss-$$k; \
	  w2v-nce train $(SLICE)/train.txt --model cbow --loss $$loss --negatives $$k --max-vocab 10000 --epochs 3 --batch-size 256 \
	    --lr 0.025 --no-progress --out $(SLICE)/$$loss-$$k && \
	  w2v-nce eval heldout $(SLICE)/$$loss-$$k --corpus $(SLICE)/heldout.txt --max-contexts 20000 --json; done

# docs/benchmarks-log.md section 1: words/s against vocabulary size, dim and batch size (sg-neg, 1 epoch, ours only)
bench-scaling:
	for v in 10000 30000; do w2v-nce bench $(CORPUS) --ours-only --model sg --loss neg --epochs 1 --max-vocab $$v --json; done
	for d in 50 100 300; do w2v-nce bench $(CORPUS) --ours-only --model sg --loss neg --epochs 1 --dim $$d --json; done
	for b in 1024 16384; do w2v-nce bench $(CORPUS) --ours-only --model sg --loss neg --epochs 1 --batch-size $$b --json; done
	w2v-nce bench $(CORPUS) --ours-only --model sg --loss neg --epochs 1 --kernel torch --batch-size 1024 --json

# docs/benchmarks-log.md section 3: the softmax head's cost against the vocabulary size (about 5 minutes)
bench-softmax:
	mkdir -p $(SLICE) && zcat -f $(CORPUS) | head -c 10000000 > $(SLICE)/slice.txt
	for v in 1000 5000 20000; do w2v-nce bench $(SLICE)/slice.txt --ours-only --model cbow --loss softmax --epochs 1 --max-vocab $$v --json; done

# docs/benchmarks-log.md section 7: sg-neg and cbow-neg by 1 process (2 threads) and by torchrun with 2 and 4 processes
# (1 thread each), scored by `w2v-nce eval`; one table row per run. Set EPOCHS, SYNC_WORDS, SYNC_GAIN (and SYNC).
EPOCHS ?= 5
SYNC_WORDS ?= 1000000
SYNC_GAIN ?= auto
SYNC ?= full
bench-distributed:
	CORPUS=$(CORPUS) EPOCHS=$(EPOCHS) SYNC_WORDS=$(SYNC_WORDS) SYNC_GAIN=$(SYNC_GAIN) SYNC=$(SYNC) PYTHON=$(PYTHON) \
	  benchmarks/distributed_quality.sh

# docs/benchmarks-log.md section 7: the time of one synchronisation against V and D, on this machine's gloo (2 processes)
bench-sync:
	$(PYTHON) benchmarks/sync_cost.py --world 2

# README's pictures (docs/training.png, docs/logz.png): sg and cbow x neg and nce, 5 epochs with the scores of
# every epoch, on the benchmark corpus less its last 0.5% (held out for log Z) (about 15 minutes)
PICS := /tmp/w2v-nce-pictures
pictures:
	mkdir -p $(PICS) docs
	$(PYTHON) -c "from pathlib import Path; from w2v_nce.tools.bench import split_corpus; \
	  split_corpus(Path('$(CORPUS)'), Path('$(PICS)'), 0.005)"
	for spec in sg-neg sg-nce cbow-neg cbow-nce cbow-hs; do rm -rf $(PICS)/wiki-$$spec; \
	  w2v-nce train $(PICS)/train.txt --config $$spec --eval-epochs --no-progress --out $(PICS)/wiki-$$spec || exit 1; done
	w2v-nce plot $(PICS)/wiki-sg-neg $(PICS)/wiki-sg-nce $(PICS)/wiki-cbow-neg $(PICS)/wiki-cbow-nce $(PICS)/wiki-cbow-hs \
	  --out docs/training.png
	w2v-nce plot $(PICS)/wiki-sg-neg $(PICS)/wiki-sg-nce $(PICS)/wiki-cbow-neg $(PICS)/wiki-cbow-nce \
	  --heldout $(PICS)/heldout.txt --out docs/logz.png

# docs/benchmarks-log.md section 6: the GPU kernel's staleness (4,096 warps, launches of 1,048,576 examples) emulated with
# the PyTorch step on the CPU, sg-neg and cbow-neg, 5 epochs (about 10 minutes)
bench-gpu-emulated:
	for m in sg cbow; do $(PYTHON) -c "import sys, json; from pathlib import Path; from w2v_nce.tools import bench; \
	  cm = bench.gpu_order(4096, 1 << 20); cm.__enter__(); \
	  rows, _ = bench.bench(Path('$(CORPUS)'), ['$$m'], ['neg'], 5, 2, True, overrides=dict(kernel='torch', batch_size=4096)); \
	  print(json.dumps(rows))"; done

# The GPU figures (docs/benchmarks-log.md section 6) on a lent GPU machine, which has torch but neither gensim nor
# ../shared. Here: `make gpu-kit` copies the corpus, a Korean slice and gensim's wheels into .device/ (ignored by
# git; 63 MB of the 64 MiB a device call may carry). There, with .device carried: `make gpu-check OUT=$$OUT` runs
# benchmarks/gpu_check.sh: the kernels' self-check, the CUDA tests, where the time goes (benchmarks/gpu_profile.py),
# the bench of sg and cbow x neg and nce on the GPU, and Nsight Compute on one launch, each stage within what is
# left of DEADLINE seconds (default 420); logs and reports land in $$OUT. STAGES="..." runs some stages only.
KIT := .device
gpu-kit:
	mkdir -p $(KIT)
	cp $(CORPUS) $(KIT)/corpus.txt.gz
	zcat $(KO_CORPUS) | head -n 60000 | gzip > $(KIT)/ko.txt.gz  # 1.8 MB: the Korean reviews' first 60,000 lines
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
	  -d $(KIT) gensim==4.4.0 smart_open==9.0.2

OUT ?= .
gpu-check:
	OUT=$(OUT) KIT=$(KIT) PYTHON=$(PYTHON) bash benchmarks/gpu_check.sh

# text8 (Matt Mahoney's 100 MB Wikipedia sample) for real training; tests never need it.
text8: corpora/text8
corpora/text8:
	@$(PYTHON) benchmarks/text8.py corpora/text8

clean:
	rm -rf runs build *.egg-info .pytest_cache
	find w2v_nce \( -name '*.nbi' -o -name '*.nbc' \) -delete  # numba's caches (docs/troubleshooting.md: Test)
