"""Small helpers every layer shares: derived seeds, spec strings, typed config values."""
