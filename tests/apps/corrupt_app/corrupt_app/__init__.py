"""A Flower App whose last SuperNode sends corrupted replies (a test fixture)."""
