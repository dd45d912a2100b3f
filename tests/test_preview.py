"""The preview as a person sees it: the window opens at the picture's size (fitted to the screen
when larger), a divider and labels mark the two sides, the overlay is one clean line, and a lost
camera is shown. The last tests run the real window under a virtual X display (Xvfb) and look at
a screenshot; they are skipped where Xvfb, OpenCV's GUI or Pillow's X11 grab is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamdn.frames import Frame
from streamdn.io import preview
from streamdn.io.preview import Preview, compose, draw_label, fit_window


class Controls:
    """What the preview reads from a denoiser (LiveControls), without a model."""

    enabled = True
    gain = 1.0
    strength: float | None = None
    name = "fast"


def grey(value: int, w: int = 640, h: int = 480, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    img = np.full((h, w, 3), float(value))
    if noise:
        img += np.random.default_rng(seed).normal(0, noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def white_columns(img: np.ndarray, level: int = 235, share: float = 0.9) -> list[int]:
    """Columns where at least `share` of the pixels are white."""
    return [int(x) for x in np.flatnonzero((img.min(axis=2) >= level).mean(axis=0) >= share)]


def _divider_shown(rect: tuple[int, ...], screen: np.ndarray, share: float = 0.9) -> bool:
    """Whether the window's picture (below the overlay line) shows a white column yet."""
    x, y, w, h = rect
    return bool(white_columns(screen[y + 60: y + h, x: x + w], share=share))


def test_window_size_fits_the_screen_keeping_the_aspect() -> None:
    assert fit_window((640, 480), (1920, 1080)) == (640, 480)     # the picture's own size
    assert fit_window((640, 480), None) == (640, 480)
    w, h = fit_window((3840, 2160), (1920, 1080))
    assert w <= 1920 * 0.9 and h <= 1080 * 0.85 and abs(w / h - 16 / 9) < 0.01
    w, h = fit_window((1280, 480), (800, 600))                     # side by side on a small screen
    assert w == 720 and abs(w / h - 1280 / 480) < 0.01


@pytest.mark.parametrize("mode", ["split", "side"])
def test_compose_marks_the_divider_and_labels_both_sides(mode: str) -> None:
    noisy, clean = grey(60, noise=20), grey(120)
    img = compose(noisy, clean, mode)
    x = 320 if mode == "split" else 640
    assert img.shape == ((480, 640, 3) if mode == "split" else (480, 1280, 3))
    assert set(white_columns(img)) == {x - 1, x}                    # a 2-pixel line, nothing else
    # Each label: white text on a darkened box at the bottom, beside the divider.
    bottom = img[-40:]
    left, right = bottom[:, x - 120: x - 2], bottom[:, x + 2: x + 120]
    assert (left.min(axis=2) > 200).sum() > 30 and (right.min(axis=2) > 200).sum() > 30
    # Input on the left, output on the right.
    assert img[:300, : x - 10].std() > 10 and img[:300, x + 10:].std() < 1


def test_labels_can_be_left_out() -> None:
    img = compose(grey(60), grey(120), "split", labels=None)
    assert (img[:, 330:] == 120).all() and (img[:, :318] == 60).all()


def test_overlay_is_one_clean_line_inside_its_box() -> None:
    view = Preview.__new__(Preview)   # no window
    view.denoiser = Controls()
    view._times, view._latency, view._scale = deque([0.0, 0.5, 1.0]), deque([0.045]), 1.0
    assert view.overlay_text() == "2.0 fps   latency 45 ms   strength auto \u00d71.00   fast"
    img = grey(128)
    view.overlay(img)
    changed = np.argwhere((img != 128).any(axis=2))
    (y0, x0), (y1, x1) = changed.min(axis=0), changed.max(axis=0)
    # Every drawn pixel lies in one box just wide enough for the text: no second, wider copy
    # of it (a bold shadow) sticking out after the model's name.
    expected = cv2.getTextSize(preview._text(view.overlay_text()), preview.FONT, preview.TEXT_SCALE, 1)[0][0]
    assert (x0, y0) == (8, 8) and x1 - x0 <= expected + 2 * 6 + 2
    box = img[y0: y1 + 1, x0: x1 + 1]
    assert ((box == 128 * 3 // 8) | (box > 128 * 3 // 8)).all()   # the box is darkened, the text lighter


def test_overlay_names_the_rung_of_the_quality_ladder() -> None:
    view = Preview.__new__(Preview)   # no window
    controls = Controls()
    controls.name = "fast@0.5"
    controls.rung_position = (4, 5)   # type: ignore[attr-defined]
    view.denoiser = controls
    view._times, view._latency, view._scale = deque([0.0, 0.5, 1.0]), deque([0.045]), 1.0
    assert view.overlay_text() == "2.0 fps   latency 45 ms   strength auto \u00d71.00   fast@0.5 (rung 4/5)"


def test_draw_label_stays_in_its_box() -> None:
    img = grey(100, 200, 60)
    x0, y0, x1, y1 = draw_label(img, "noisy", 190, 55, 0.6, align="right", valign="bottom")
    assert x1 <= 190 and y1 <= 55
    outside = img.copy()
    outside[y0:y1, x0:x1] = 100
    assert (outside == 100).all()


def test_status_while_the_camera_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[np.ndarray] = []
    keys = iter([255, 255, 255, ord("q")])
    monkeypatch.setattr(preview.cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(preview.cv2, "resizeWindow", lambda *a: None)
    monkeypatch.setattr(preview.cv2, "imshow", lambda name, img: shown.append(img.copy()))
    monkeypatch.setattr(preview.cv2, "waitKey", lambda ms: next(keys))
    monkeypatch.setattr(preview.cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(preview, "screen_size", lambda: (1920, 1080))
    view = Preview(Controls(), "split", size=(160, 120))
    frame = Frame.from_ndarray(grey(150, 160, 120))
    view(frame, frame)
    view.idle("camera lost \u2014 waiting\u2026 2 s")
    assert len(shown) == 2 and shown[1].shape == shown[0].shape
    assert shown[1].mean() < shown[0].mean()                        # the last picture, dimmed
    assert (shown[1].min(axis=2) > 200).sum() > 50                  # with the status written on it
    view.idle("camera lost \u2014 waiting\u2026 2 s")                 # the same status: not redrawn
    assert len(shown) == 2
    with pytest.raises(preview.QuitRequested):                      # and the keys still work
        view.idle(None)


# -- the real window under Xvfb -------------------------------------------------------------------

CHILD = r"""
import sys, time
import cv2, numpy as np
from streamdn.frames import Frame
from streamdn.io.preview import Preview, WINDOW

class Controls:
    enabled, gain, strength, name = True, 1.0, None, "fast"

w, h, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
view = Preview(Controls(), mode, size=(w, h))
clean = Frame.from_ndarray(np.full((h, w, 3), 150, np.uint8))
for i in range(10):
    noisy = Frame.from_ndarray(np.clip(90 + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8))
    view(noisy, clean)
    time.sleep(0.02)
for _ in range(30):
    cv2.waitKey(10)
x, y, rw, rh = cv2.getWindowImageRect(WINDOW)
print(f"rect {x} {y} {rw} {rh}", flush=True)
# Keep the window painting until the test has its screenshot (a loaded machine may paint late).
import select
while not select.select([sys.stdin], [], [], 0)[0]:
    cv2.waitKey(10)
sys.stdin.readline()
view.close()
"""


def _gui_ready() -> str | None:
    """Why the window test cannot run here, or None."""
    if shutil.which("Xvfb") is None:
        return "Xvfb is not installed (apt-get install xvfb)"
    if "GUI:                           NONE" in cv2.getBuildInformation() or not hasattr(cv2, "namedWindow"):
        return "OpenCV has no GUI backend (opencv-python-headless)"
    try:
        from PIL import features
    except ImportError:
        return "Pillow is not installed"
    if not features.check("xcb"):
        return "Pillow was built without X11 screen grabbing"
    return None


@pytest.fixture
def xvfb(request: pytest.FixtureRequest) -> Iterator[str]:
    """A virtual X display of the size the test's parameter gives; yields its name (":N")."""
    reason = _gui_ready()
    if reason:
        pytest.skip(reason)
    w, h = request.param
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", f"{w}x{h}x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as fh:
        number = fh.readline().strip()
    try:
        if not number:
            pytest.skip("Xvfb did not start")
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def show_and_grab(display: str, w: int, h: int, mode: str, png: Path,
                  painted: Callable[[tuple[int, ...], np.ndarray], bool] = lambda rect, screen: True,
                  ) -> tuple[tuple[int, ...], np.ndarray]:
    """Runs a preview on `display`, grabs the screen into `png`; returns the window's image
    rectangle (x, y, width, height) and the screenshot as a BGR array. The screen is grabbed
    again (for up to 5 s) until `painted(rect, screenshot)` holds: the window may be painted
    late on a loaded machine."""
    from PIL import ImageGrab

    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(w), str(h), mode], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = child.stdout.readline() if child.stdout else ""
        if not line.startswith("rect"):
            _, err = child.communicate(timeout=30)
            pytest.fail(f"the preview did not open: {err}")
        rect = tuple(int(v) for v in line.split()[1:])
        deadline = time.monotonic() + 5.0
        while True:
            shot = ImageGrab.grab(xdisplay=display)
            screen = cv2.cvtColor(np.asarray(shot.convert("RGB")), cv2.COLOR_RGB2BGR)
            if painted(rect, screen) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        shot.save(png)
        child.communicate("\n", timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    return rect, screen


@pytest.mark.parametrize("xvfb", [(1280, 800)], indirect=True)
def test_window_opens_at_the_source_size_with_a_divider(xvfb: str, tmp_path: Path) -> None:
    rect, screen = show_and_grab(xvfb, 640, 480, "split", tmp_path / "split.png", _divider_shown)
    x, y, w, h = rect
    assert (w, h) == (640, 480)
    picture = screen[y: y + h, x: x + w]
    assert picture.shape == (480, 640, 3) and picture.mean() > 50   # the window shows the picture there
    cols = white_columns(picture[60:])                               # below the overlay line
    assert cols and all(abs(c - 319.5) <= 2 for c in cols)           # the divider, in the middle
    assert picture[100:400, 20:300].std() > 10                       # noisy input on the left
    assert picture[100:400, 340:620].std() < 3                       # clean output on the right
    bottom = picture[-40:]
    assert (bottom[:, 200:316].min(axis=2) > 200).sum() > 30         # the "original" label
    assert (bottom[:, 324:440].min(axis=2) > 200).sum() > 30         # the "denoised" label


@pytest.mark.parametrize("xvfb", [(800, 600)], indirect=True)
def test_side_by_side_window_fits_a_small_screen(xvfb: str, tmp_path: Path) -> None:
    rect, screen = show_and_grab(xvfb, 640, 480, "side", tmp_path / "side.png",
                                 lambda r, sc: _divider_shown(r, sc, share=0.8))
    x, y, w, h = rect
    assert w <= 800 and h <= 600 and abs(w / h - 1280 / 480) < 0.02
    assert w >= 700                                                  # as large as the screen allows
    picture = screen[y: y + h, x: x + w]
    cols = white_columns(picture[60:], share=0.8)
    assert cols and all(abs(c - w / 2) <= 3 for c in cols)


@pytest.mark.parametrize("xvfb", [(1280, 800)], indirect=True)
def test_live_command_opens_its_window(xvfb: str, tmp_path: Path) -> None:
    """The whole command with its window: the window opens whatever the command imported first
    (the PyAV and OpenCV wheels carry X11 libraries of the same names), and the run ends."""
    rec = tmp_path / "rec.mp4"
    env = {**os.environ, "DISPLAY": xvfb, "QT_QPA_PLATFORM": "xcb"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "streamdn", "live", "--synthetic", "--set", "source.width=160", "--set",
             "source.height=120", "--frames", "10", "--preview", "split", "--record", str(rec)],
            env=env, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("`streamdn live` with a preview window did not finish: the window never opened")
    assert done.returncode == 0, done.stderr
    assert "(end of input)" in done.stderr and rec.exists()
