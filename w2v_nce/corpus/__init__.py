"""The corpus: inputs, the tokenizer, the vocabulary, phrases, and the training examples."""
