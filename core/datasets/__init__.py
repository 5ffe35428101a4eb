"""Dataset formats, validation and statistics.

formats.py and rules.py are pure Python (the trainer carries them and skips the rows the rules flag); the validator
(validate.py, scan.py, fastpath.py, reader.py, stats.py) adds msgspec, xxhash and numpy; tokens.py imports
transformers only when a model is given.
"""
