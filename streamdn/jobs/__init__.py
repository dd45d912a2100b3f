"""Whole runs built from the stages: denoise a file, a live session, the demo."""
