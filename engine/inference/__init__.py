"""Running a model: the model host, its process (the only llama_cpp user), templates, reasoning."""
