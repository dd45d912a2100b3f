"""`streamdn train`: its flags and how it runs (the work itself is streamdn.tools.train)."""

from streamdn.tools.train import add_parser, run

__all__ = ["add_parser", "run"]
