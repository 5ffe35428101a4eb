"""Dataset formats, validation and statistics (pure Python; the trainer bundle carries it)."""
