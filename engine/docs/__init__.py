"""Chat with local files: text out of documents, chunks for the index, the index and retrieval."""
