"""``python -m flwr_split.options``: print the README's configuration table."""

from flwr_split.options.table import markdown_table

print(markdown_table(), end="")
