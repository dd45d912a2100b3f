"""The live preview window (OpenCV): before/after as a split wipe or side by side, an overlay
of fps, latency and strength, and keys: space toggles denoising, +/- change the strength,
s saves a screenshot, q or Esc quits."""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from typing import Protocol

import cv2
import numpy as np

from streamdn.frames import Frame

WINDOW = "streamdn (space: on/off, +/-: strength, s: screenshot, q: quit)"


class LiveControls(Protocol):
    """What the preview reads and sets on the denoiser it shows (streamdn.Denoiser has these)."""

    enabled: bool            # False: frames pass through (space toggles it)
    gain: float              # multiplies the strength (+/- change it)
    strength: float | None   # the fixed strength (8-bit RGB sigma), None for "auto"

    @property
    def name(self) -> str:
        """The model's name."""
        ...


class QuitRequested(Exception):
    """The user closed the preview (q, Esc or the window's close button)."""


def display_available() -> bool:
    """Whether an OpenCV window can open here (Linux needs an X11 or Wayland display)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def compose(noisy: np.ndarray, clean: np.ndarray, mode: str) -> np.ndarray:
    """Before/after picture: "side" puts them next to each other, "split" shows the left half
    of the input and the right half of the output with a divider."""
    if mode == "side":
        return np.hstack([noisy, clean])
    w = noisy.shape[1]
    out = clean.copy()
    out[:, : w // 2] = noisy[:, : w // 2]
    out[:, w // 2: w // 2 + 1] = (255, 255, 255)
    return out


class Preview:
    """Shows each (noisy, clean) pair; call it from Pipeline's on_frame."""

    def __init__(self, denoiser: LiveControls, mode: str = "split", screenshot_dir: str = ".") -> None:
        self.denoiser = denoiser
        self.mode = mode
        self.screenshot_dir = screenshot_dir
        self._times: deque[float] = deque(maxlen=30)
        self._latency: deque[float] = deque(maxlen=30)
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)

    def overlay(self, img: np.ndarray) -> np.ndarray:
        fps = (len(self._times) - 1) / (self._times[-1] - self._times[0]) if len(self._times) > 1 else 0.0
        lat = float(np.median(self._latency)) * 1000 if self._latency else 0.0
        dn = self.denoiser
        if not dn.enabled:
            strength = "off"
        elif dn.strength is None:
            strength = f"auto x{dn.gain:.2f}"
        else:
            strength = f"{dn.strength * dn.gain:.1f}"
        text = f"{fps:4.1f} fps  latency {lat:3.0f} ms  strength {strength}  {dn.name}"
        cv2.putText(img, text, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, text, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        return img

    def __call__(self, noisy: Frame, clean: Frame) -> None:
        self._times.append(time.monotonic())
        self._latency.append(time.monotonic() - noisy.captured)
        img = self.overlay(compose(noisy.to_bgr(), clean.to_bgr(), self.mode))
        cv2.imshow(WINDOW, img)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            raise QuitRequested
        if key == ord(" "):
            self.denoiser.enabled = not self.denoiser.enabled
        elif key in (ord("+"), ord("=")):
            self.denoiser.gain = min(self.denoiser.gain * 1.25, 8.0)
        elif key in (ord("-"), ord("_")):
            self.denoiser.gain = max(self.denoiser.gain / 1.25, 0.1)
        elif key == ord("s"):
            path = os.path.join(self.screenshot_dir, f"streamdn-{time.strftime('%Y%m%d-%H%M%S')}.png")
            cv2.imwrite(path, img)
            print(f"streamdn: saved {path}", file=sys.stderr)

    def close(self) -> None:
        cv2.destroyWindow(WINDOW)
