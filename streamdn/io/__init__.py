"""Frames in and out: sources (file, URL, synthetic), the camera, sinks (file, stream, virtual
camera), encoder choice and the live preview window."""
