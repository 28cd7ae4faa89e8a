"""w2v-nce: word2vec (CBOW / skip-gram) with softmax, negative sampling or true NCE, in PyTorch."""

__version__ = "0.2.0"

from .errors import W2VError  # noqa: E402,F401
