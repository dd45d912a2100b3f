"""The live preview window (OpenCV): before/after as a split wipe or side by side, with a divider
and a label on each side ("original", "denoised"), an overlay of fps, latency, strength and the
model in use (with its rung of the live quality ladder), a banner while the camera is lost, and
keys: space toggles denoising, +/- change the strength, s saves a screenshot, q or Esc quits.
The window opens at the picture's size, or fitted to the screen (aspect kept) when the picture is
larger."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import time
from collections import deque
from typing import Protocol

import cv2
import numpy as np

from streamdn.frames import Frame

WINDOW = "streamdn (space: on/off, +/-: strength, s: screenshot, q: quit)"
LABELS = ("original", "denoised")
FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT_SCALE = 0.6           # font scale of the overlay and labels on a picture shown at its size
SCREEN_FRACTION = (0.9, 0.85)   # the most of the screen's width and height the window takes
# OpenCV 5 draws any UTF-8 text; the Hershey fonts of OpenCV 4 draw ASCII only.
_UNICODE = int(cv2.__version__.split(".")[0]) >= 5
_ASCII = {"\u2014": "-", "\u2026": "...", "\u00d7": "x"}


class LiveControls(Protocol):
    """What the preview reads and sets on the denoiser it shows (streamdn.Denoiser has these).
    A live quality ladder also has `rung_position`, (the rung in use counted from 1, the number
    of rungs) or None, which the overlay shows after the name."""

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


def screen_size() -> tuple[int, int] | None:
    """The screen's (width, height) in pixels (X11 and Windows), or None when it cannot be told."""
    try:
        if sys.platform == "win32":
            user32 = ctypes.windll.user32  # type: ignore[attr-defined]
            return int(user32.GetSystemMetrics(0)), int(user32.GetSystemMetrics(1))
        if not os.environ.get("DISPLAY"):
            return None
        x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
        x11.XOpenDisplay.argtypes, x11.XOpenDisplay.restype = [ctypes.c_char_p], ctypes.c_void_p
        x11.XDefaultScreen.argtypes = [ctypes.c_void_p]
        x11.XDisplayWidth.argtypes = x11.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        display = x11.XOpenDisplay(None)
        if not display:
            return None
        try:
            screen = x11.XDefaultScreen(display)
            return int(x11.XDisplayWidth(display, screen)), int(x11.XDisplayHeight(display, screen))
        finally:
            x11.XCloseDisplay(display)
    except (OSError, AttributeError):
        return None


def fit_window(size: tuple[int, int], screen: tuple[int, int] | None) -> tuple[int, int]:
    """The window size for a picture of `size` (width, height): the picture's own size, or scaled
    down with its aspect kept to fit SCREEN_FRACTION of `screen` (never scaled up)."""
    w, h = size
    if screen is None:
        return w, h
    scale = min(1.0, screen[0] * SCREEN_FRACTION[0] / w, screen[1] * SCREEN_FRACTION[1] / h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _text(text: str) -> str:
    return text if _UNICODE else "".join(_ASCII.get(c, c) for c in text)


def draw_label(img: np.ndarray, text: str, x: int, y: int, scale: float, align: str = "left",
               valign: str = "top") -> tuple[int, int, int, int]:
    """Draws `text` in white on a darkened box whose corner is (x, y): `align` "left" puts the
    box right of x, "right" left of it; `valign` "top" below y, "bottom" above it. Everything
    drawn stays inside the box; returns it as (x0, y0, x1, y1), clipped to the image."""
    text = _text(text)
    thickness = max(1, round(scale * 1.5))
    tw = cv2.getTextSize(text, FONT, scale, thickness)[0][0]
    (_, th), base = cv2.getTextSize("Hg", FONT, scale, thickness)   # one box height for any text
    pad = max(2, round(6 * scale))
    bw, bh = tw + 2 * pad, th + base + 2 * pad
    x0 = x if align == "left" else x - bw
    y0 = y if valign == "top" else y - bh
    h, w = img.shape[:2]
    x0c, y0c, x1c, y1c = max(0, x0), max(0, y0), min(w, x0 + bw), min(h, y0 + bh)
    if x1c <= x0c or y1c <= y0c:
        return x0c, y0c, x0c, y0c
    box = img[y0c:y1c, x0c:x1c]
    box[:] = (box.astype(np.uint16) * 3 // 8).astype(np.uint8)   # darkened, the picture still shows
    # Drawn into the box alone, so that nothing of the text lands outside it.
    canvas = np.ascontiguousarray(img[y0c:y1c, x0c:x1c])
    cv2.putText(canvas, text, (x0 + pad - x0c, y0 + pad + th - y0c), FONT, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)
    img[y0c:y1c, x0c:x1c] = canvas
    return x0c, y0c, x1c, y1c


def _divider(img: np.ndarray, x: int, scale: float) -> None:
    """A white vertical line at column x (2 px on a picture shown at its size), with a dark edge
    on each side so that it shows on a bright picture too."""
    half = max(1, round(scale))
    h, w = img.shape[:2]
    img[:, max(0, x - half - 1): min(w, x + half + 1)] = (0, 0, 0)
    img[:, max(0, x - half): min(w, x + half)] = (255, 255, 255)


def compose(noisy: np.ndarray, clean: np.ndarray, mode: str, labels: tuple[str, str] | None = LABELS,
            scale: float = 1.0) -> np.ndarray:
    """Before/after picture: "side" puts them next to each other, "split" shows the left half
    of the input and the right half of the output. A divider marks the boundary and `labels`
    (None: no labels) name the two sides at the bottom, beside the divider; `scale` sizes the
    divider and the text (1 for a picture shown at its size)."""
    if mode == "side":
        out = np.hstack([noisy, clean])
        x = noisy.shape[1]
    else:
        w = noisy.shape[1]
        x = w // 2
        out = clean.copy()
        out[:, :x] = noisy[:, :x]
    _divider(out, x, scale)
    if labels is not None:
        gap, bottom = round(8 * scale), out.shape[0] - round(8 * scale)
        text_scale = TEXT_SCALE * scale
        draw_label(out, labels[0], x - gap, bottom, text_scale, align="right", valign="bottom")
        draw_label(out, labels[1], x + gap, bottom, text_scale, align="left", valign="bottom")
    return out


class Preview:
    """Shows each (noisy, clean) pair; call it from Pipeline's on_frame, and `idle` between
    frames (it keeps the window responsive and shows a status such as a lost camera)."""

    def __init__(self, denoiser: LiveControls, mode: str = "split", screenshot_dir: str = ".",
                 size: tuple[int, int] | None = None) -> None:
        """Args:
            denoiser: what the overlay reports and the keys change.
            mode: "split" (a wipe: input left, output right) or "side" (side by side).
            screenshot_dir: where the s key saves.
            size: the source's (width, height): the window opens at once at the size the
                picture will have; without it, at the first frame.
        """
        self.denoiser = denoiser
        self.mode = mode
        self.screenshot_dir = screenshot_dir
        self._times: deque[float] = deque(maxlen=30)
        self._latency: deque[float] = deque(maxlen=30)
        self._last: np.ndarray | None = None     # the last picture composed (without the overlay)
        self._scale = 1.0                          # picture pixels per screen pixel (>= 1)
        self._status: str | None = None
        self._window: tuple[int, int] | None = None
        if size is not None:
            picture = (2 * size[0] if mode == "side" else size[0], size[1])
            self._open_window(picture)
            self._last = np.zeros((picture[1], picture[0], 3), np.uint8)   # until the first frame

    def _open_window(self, picture: tuple[int, int]) -> None:
        """Opens the window at the picture's size, fitted to the screen."""
        shown = fit_window(picture, screen_size())
        flags = cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL
        cv2.namedWindow(WINDOW, flags)
        cv2.resizeWindow(WINDOW, *shown)
        self._window = shown
        self._scale = max(1.0, picture[1] / shown[1])

    def overlay_text(self) -> str:
        """The overlay's line: fps, latency, strength and model (its rung on a quality ladder)."""
        fps = (len(self._times) - 1) / (self._times[-1] - self._times[0]) if len(self._times) > 1 else 0.0
        lat = float(np.median(self._latency)) * 1000 if self._latency else 0.0
        dn = self.denoiser
        if not dn.enabled:
            strength = "off"
        elif dn.strength is None:
            strength = f"auto \u00d7{dn.gain:.2f}"
        else:
            strength = f"{dn.strength * dn.gain:.1f}"
        model = dn.name
        position = getattr(dn, "rung_position", None)
        if position is not None:
            model = f"{model} (rung {position[0]}/{position[1]})"
        return f"{fps:.1f} fps   latency {lat:.0f} ms   strength {strength}   {model}"

    def overlay(self, img: np.ndarray) -> np.ndarray:
        """Draws the overlay line at the top left of `img` (on a darkened box) and returns it."""
        text = self.overlay_text()
        scale = TEXT_SCALE * self._scale
        tw = cv2.getTextSize(_text(text), FONT, scale, 1)[0][0]
        if tw > img.shape[1] * 0.95:   # a small picture: smaller text rather than text cut off
            scale *= img.shape[1] * 0.95 / tw
        margin = round(8 * self._scale)
        draw_label(img, text, margin, margin, scale)
        return img

    def _labels(self) -> tuple[str, str]:
        return LABELS if self.denoiser.enabled else (LABELS[0], "denoising off")

    def __call__(self, noisy: Frame, clean: Frame) -> None:
        now = time.monotonic()
        self._times.append(now)
        self._latency.append(now - noisy.captured)
        bgr = noisy.to_bgr()
        if self._window is None:
            self._open_window((2 * bgr.shape[1] if self.mode == "side" else bgr.shape[1], bgr.shape[0]))
        self._last = compose(bgr, clean.to_bgr(), self.mode, self._labels(), self._scale)
        self._status = None
        self._show(self.overlay(self._last.copy()))

    def idle(self, status: str | None = None) -> None:
        """Keeps the window responsive while no frame comes; `status` (e.g. "camera lost —
        waiting…") is shown over the dimmed last picture until the next frame."""
        if status is not None and self._last is not None:
            if status != self._status:
                img = (self._last.astype(np.uint16) // 2).astype(np.uint8)
                h, w = img.shape[:2]
                scale = TEXT_SCALE * 1.5 * self._scale
                tw = cv2.getTextSize(_text(status), FONT, scale, 1)[0][0]
                if tw > w * 0.9:
                    scale *= w * 0.9 / tw
                (tw, th), _ = cv2.getTextSize(_text(status), FONT, scale, 1)
                pad = max(2, round(6 * scale))
                draw_label(img, status, (w - tw) // 2 - pad, (h - th) // 2 - pad, scale)
                self._status = status
                self._show(img)
                return
        self._keys(None)

    def _show(self, img: np.ndarray) -> None:
        cv2.imshow(WINDOW, img)
        self._keys(img)

    def _keys(self, img: np.ndarray | None) -> None:
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
            shot = img if img is not None else self._last
            if shot is not None:
                path = os.path.join(self.screenshot_dir, f"streamdn-{time.strftime('%Y%m%d-%H%M%S')}.png")
                cv2.imwrite(path, shot)
                print(f"streamdn: saved {path}", file=sys.stderr)

    def close(self) -> None:
        if self._window is not None:
            cv2.destroyWindow(WINDOW)
