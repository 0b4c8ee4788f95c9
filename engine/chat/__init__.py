"""Conversations: the chat service over the model host, and their history in SQLite."""
