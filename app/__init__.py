"""r1desk's desktop GUI (PySide6): turns engine generators into Qt signals and back."""
