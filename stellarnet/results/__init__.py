"""Results folders: the history table on disk, and reading saved runs back."""
