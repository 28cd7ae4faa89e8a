"""The model: the input embeddings, the output heads and the noise sampler."""
