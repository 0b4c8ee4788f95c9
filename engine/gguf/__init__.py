"""GGUF files: the bounded header reader (local and over HTTP), quant and split names."""
