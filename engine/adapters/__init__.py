"""LoRA adapters: kept in SQLite, checked against the model, written out for llama.cpp."""
