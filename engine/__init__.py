"""r1desk's engine: everything that is not GUI (models, chat, history, hardware, downloads)."""

__version__ = "0.1.0"
