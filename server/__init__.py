"""The OpenAI-compatible HTTP API: one more caller of the model host, like the window and the command line."""
