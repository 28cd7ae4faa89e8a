"""Writes the .kv files beside it that tests/test_vectorfiles.py reads, with the gensim and numpy installed: run it
in an environment of each (gensim 4.3.0 with numpy 1.24, gensim 4.4 with numpy 2), from the repository root:
python tests/data/kv/make.py. The files are small; "split" ones keep their vectors beside them (NAME.vectors.npy),
as gensim does for an array of 10M numbers or more."""

from pathlib import Path

import gensim
import numpy as np
from gensim.models import FastText, KeyedVectors
from gensim.test.utils import common_texts

from w2v_nce.run.vectors import to_keyed_vectors
from w2v_nce.tools.export import save_kv

here = Path(__file__).parent
tag = f"gensim{gensim.__version__}-numpy{np.__version__.split('.')[0]}"
rng = np.random.default_rng(0)
words = [f"w{i}" for i in range(40)]

kv = KeyedVectors(8)
kv.add_vectors(words, rng.standard_normal((40, 8)).astype(np.float32))
kv.set_vecattr("w1", "count", 7)
kv.save(str(here / f"{tag}-small.kv"))
kv.save(str(here / f"{tag}-split.kv"), sep_limit=100)  # gensim's rule for a large file, at a small size
ft = FastText(common_texts, vector_size=4, min_count=1, bucket=50, seed=1, workers=1)
ft.wv.save(str(here / f"{tag}-fasttext-split.kv"), sep_limit=100)
# what w2v-nce writes as a run's vectors.kv (export.save_kv: one file, pickle protocol 5)
save_kv(to_keyed_vectors(words, np.arange(40, 0, -1), rng.standard_normal((40, 8))), here / f"w2v-nce-numpy{tag[-1]}.kv")
