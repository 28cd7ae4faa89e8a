"""What reads a trained run or a vectors file: evaluation, held-out likelihood, queries, export, pictures, the
benchmark against gensim."""
