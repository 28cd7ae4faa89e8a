"""w2v-nce: word2vec (CBOW / skip-gram) with softmax, negative sampling or true NCE, in PyTorch.

    import w2v_nce
    run = w2v_nce.train("corpus.txt", loss="nce")    # or a list of paths, or an iterable of sentences
    run.vectors.most_similar("king")                 # gensim KeyedVectors
    w2v_nce.load("runs/latest").metrics

The API (api.py) is imported on first use, so that `import w2v_nce` and the CLI's quick commands stay light.
"""

__version__ = "0.3.0"

from .errors import Interrupted, UnsafePickle, UsageError, W2VError  # noqa: E402,F401

__all__ = ["train", "load", "Run", "W2VError", "UsageError", "Interrupted", "UnsafePickle", "__version__"]


def __getattr__(name: str):
    if name in ("train", "load", "Run"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'w2v_nce' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
