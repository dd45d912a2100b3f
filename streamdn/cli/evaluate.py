"""`streamdn evaluate`: its flags and how it runs (the work itself is streamdn.tools.evaluate)."""

from streamdn.tools.evaluate import add_parser, run

__all__ = ["add_parser", "run"]
