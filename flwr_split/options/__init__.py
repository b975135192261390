"""Run options: their one declaration and the typed settings read from a run config."""

from flwr_split.options.declaration import OPTIONS, Group, RunOption, read_options
from flwr_split.options.settings import RunSettings

__all__ = ["OPTIONS", "Group", "RunOption", "RunSettings", "read_options"]
