"""Turns other formats into GGUF: Hugging Face and PEFT folders, and re-quantising."""
