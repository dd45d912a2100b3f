"""`streamdn bench`: its flags and how it runs (the work itself is streamdn.tools.bench)."""

from streamdn.tools.bench import add_parser, run

__all__ = ["add_parser", "run"]
