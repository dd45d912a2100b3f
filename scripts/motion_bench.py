"""Motion estimation and warping for the motion-compensated recursion, measured on synthetic
720p motion with known ground truth (the figures of docs/motion.md).

Sections:
  flow  every motion estimator on noisy 1280x720 frames (sigma 20, 8-bit) rendered from a mosaic
        of scikit-image's photographs: sub-pixel pans, a rotation + zoom, an object moving over a
        static background. The flow goes from the noisy current frame to (a) the previous noisy
        frame and (b) the previous clean frame (a stand-in for the previous denoised output), on
        the half- or quarter-resolution luma of the packed frame, and is always delivered at the
        packed (half) resolution. Reported: time per frame (luma extraction + flow + resampling
        to half resolution, 2 threads, the best of 3 repeats), end-point error in full-resolution
        pixels, and the PSNR of the previous CLEAN packed frame warped along the flow (bicubic,
        warp_packed) against the current clean packed frame: how well the carried state lines up.
  warp  speed of the Numba warp against cv2.remap on a (360, 640, 6) float32 state, and how far
        they differ.
  blur  what warping the carried state again every frame does to it: an image panned 0.5 and
        0.3 px per step for 30 steps, each step warping the previous result, against the
        exactly (Fourier-) shifted image; and the same inside a running average (weight 1/8 on
        the new frame, as a recursion that has averaged ~8 frames).

Usage:
    python scripts/motion_bench.py [--sections flow,warp,blur] [--frames 8] [--only TEXT ...] [--json PATH]

Needs scikit-image (pip install -e ".[eval]") for the photographs. Other processes on the machine
inflate the times: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Numba's OpenMP threads otherwise spin at every barrier: with another busy process on a 2-core
# machine a 2-thread kernel then waits a scheduler slice per parallel loop (a 3 ms block match
# took 110 ms). Passive waiting has to be chosen before OpenMP starts, so here, first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numba  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402

from streamdn.kernels import block_match, pack_yuv420, packed_luma, warp, warp_packed  # noqa: E402

W, H = 1280, 720
H2, W2 = H // 2, W // 2
SIGMA = 20.0
MARGIN = 16                 # half-resolution pixels left out at each border (content enters there)
THREADS = 2


# ---------------------------------------------------------------------------------------------
# Synthetic motion with ground truth


def mosaic(blur: float) -> np.ndarray:
    """A (1024, 1792, 3) uint8 BGR canvas of photographs at their native resolution over a
    gravel/grass texture, softened by a Gaussian of `blur` px (a camera's optics; it also keeps
    sub-pixel rendering close to exact)."""
    def bgr(img: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2BGR)

    canvas = np.zeros((1024, 1792, 3), np.uint8)
    tex = np.concatenate([bgr(skimage.data.gravel()), bgr(skimage.data.grass())], axis=1)
    canvas[:] = np.tile(tex, (2, 2, 1))[:1024, :1792]
    for img, (y, x) in [(skimage.data.astronaut(), (0, 0)), (skimage.data.coffee(), (0, 512)),
                        (skimage.data.rocket(), (0, 1112)), (skimage.data.stereo_motorcycle()[0], (512, 0)),
                        (skimage.data.brick(), (512, 741)), (skimage.data.chelsea(), (512, 1253)),
                        (skimage.data.camera()[:212, :], (812, 1253))]:
        img = bgr(img)
        h, w = min(img.shape[0], 1024 - y), min(img.shape[1], 1792 - x)
        canvas[y:y + h, x:x + w] = img[:h, :w]
    if blur > 0:
        canvas = cv2.GaussianBlur(canvas, (0, 0), blur)
    return canvas


@dataclass(frozen=True)
class Scene:
    """Camera motion per frame: pan (canvas px), rotation (degrees), zoom (factor); optionally
    an object (an ellipse cut from the canvas) moving by `obj_speed` px per frame over a
    static background."""

    name: str
    pan: tuple[float, float] = (0.0, 0.0)
    rotate: float = 0.0
    zoom: float = 1.0
    obj_speed: tuple[float, float] | None = None


def pan(speed: float) -> Scene:
    angle = math.radians(20.0)   # both components fractional
    return Scene(f"pan {speed:g} px", pan=(speed * math.cos(angle), speed * math.sin(angle)))


SCENES = [pan(0.3), pan(0.5), pan(1.3), pan(3.0),
          Scene("rotate 0.2 deg + zoom 0.5%", rotate=0.2, zoom=1.005),
          Scene("object (4, 1.5) px, static bg", obj_speed=(4.0, 1.5))]


def camera(scene: Scene, t: int, centre: tuple[float, float]) -> np.ndarray:
    """(3, 3) map from frame pixel (x, y, 1) to canvas pixel at frame t."""
    cx, cy = centre
    th = math.radians(scene.rotate * t)
    z = scene.zoom ** -t          # zooming in: a frame pixel covers less canvas
    c, s = math.cos(th) * z, math.sin(th) * z
    ox = cx + scene.pan[0] * t
    oy = cy + scene.pan[1] * t
    return np.array([[c, -s, ox - c * (W / 2 - 0.5) + s * (H / 2 - 0.5)],
                     [s, c, oy - s * (W / 2 - 0.5) - c * (H / 2 - 0.5)],
                     [0, 0, 1]], np.float64)


class Renderer:
    """Clean BGR frames and the ground-truth flow (current -> previous, full-resolution px)."""

    def __init__(self, canvas: np.ndarray, scene: Scene) -> None:
        self.canvas = canvas
        self.scene = scene
        self.centre = (canvas.shape[1] / 2 - 0.5, canvas.shape[0] / 2 - 0.5)
        if scene.obj_speed is not None:
            # The object: an ellipse of the astronaut's region, over a background from elsewhere.
            self.sprite = canvas[40:340, 120:440].copy()
            mask = np.zeros(self.sprite.shape[:2], np.float32)
            cv2.ellipse(mask, (160, 150), (150, 140), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
            self.mask = mask

    def frame(self, t: int) -> np.ndarray:
        flags = cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP
        if self.scene.obj_speed is None:
            m = camera(self.scene, t, self.centre)[:2]
            return cv2.warpAffine(self.canvas, m, (W, H), flags=flags, borderMode=cv2.BORDER_REFLECT)
        bg = self.canvas[152:152 + H, 256:256 + W].astype(np.float32)
        m = self._sprite_map(t)
        spr = cv2.warpAffine(self.sprite, m, (W, H), flags=flags, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        a = cv2.warpAffine(self.mask, m, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)[..., None]
        return np.clip(bg * (1 - a) + spr * a + 0.5, 0, 255).astype(np.uint8)

    def _sprite_map(self, t: int) -> np.ndarray:
        vx, vy = self.scene.obj_speed
        return np.array([[1, 0, -(300 + vx * t)], [0, 1, -(150 + vy * t)]], np.float64)

    def flow(self, t: int) -> np.ndarray:
        """(H, W, 2) float32 ground truth from frame t to frame t-1."""
        ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
        if self.scene.obj_speed is None:
            m = np.linalg.inv(camera(self.scene, t - 1, self.centre)) @ camera(self.scene, t, self.centre)
            fx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2] - xs
            fy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2] - ys
            return np.dstack([fx, fy]).astype(np.float32)
        a = cv2.warpAffine(self.mask, self._sprite_map(t), (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        out = np.zeros((H, W, 2), np.float32)
        out[a > 0.5] = (-self.scene.obj_speed[0], -self.scene.obj_speed[1])
        return out


def to_planes(bgr: np.ndarray, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BGR -> 8-bit I420 planes, with Gaussian noise of SIGMA added to each plane when rng."""
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    if rng is not None:
        yuv = np.clip(yuv + rng.normal(0.0, SIGMA, yuv.shape) + 0.5, 0, 255).astype(np.uint8)
    y = yuv[:H]
    u = yuv[H:H + H // 4].reshape(H2, W2)
    v = yuv[H + H // 4:].reshape(H2, W2)
    return y, u, v


def pack(bgr: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    y, u, v = to_planes(bgr, rng)
    return pack_yuv420(y, u, v, 1.0 / 255.0, np.empty((H2, W2, 6), np.float32))


# ---------------------------------------------------------------------------------------------
# Motion estimators: packed current, packed previous -> (H2, W2, 2) flow in half-resolution px


def dis_method(preset: int, factor: int, *, finest: int | None = None, blur: float = 0.0,
               var_iters: int | None = None) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    dis = cv2.DISOpticalFlow_create(preset)
    if finest is not None:
        dis.setFinestScale(finest)
    if var_iters is not None:
        dis.setVariationalRefinementIterations(var_iters)
    shape = (-(-H2 // factor), -(-W2 // factor))
    a = np.empty(shape, np.uint8)
    b = np.empty(shape, np.uint8)

    def run(cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
        packed_luma(cur, factor=factor, out=a)
        packed_luma(prev, factor=factor, out=b)
        ca, cb = (cv2.GaussianBlur(a, (0, 0), blur), cv2.GaussianBlur(b, (0, 0), blur)) if blur else (a, b)
        flow = dis.calc(ca, cb, None)
        if factor == 1:
            return flow
        return cv2.resize(flow, (W2, H2), interpolation=cv2.INTER_LINEAR) * np.float32(factor)

    return run


def bm_method(factor: int, **kw: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    shape = (-(-H2 // factor), -(-W2 // factor))
    a = np.empty(shape, np.float32)
    b = np.empty(shape, np.float32)
    out = np.empty((H2, W2, 2), np.float32)

    def run(cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
        packed_luma(cur, factor=factor, out=a)
        packed_luma(prev, factor=factor, out=b)
        return block_match(a, b, out=out, **kw)

    return run


def methods() -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    uf, fast = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, cv2.DISOPTICAL_FLOW_PRESET_FAST
    return {
        "DIS ultrafast, half": dis_method(uf, 1),
        "DIS ultrafast, half, blur 1": dis_method(uf, 1, blur=1.0),
        "DIS ultrafast, half, finest 1": dis_method(uf, 1, finest=1),
        "DIS ultrafast, half, finest 1, blur 1": dis_method(uf, 1, finest=1, blur=1.0),
        "DIS ultrafast, half, var 5": dis_method(uf, 1, var_iters=5),
        "DIS fast, half": dis_method(fast, 1),
        "DIS ultrafast, quarter": dis_method(uf, 2),
        "DIS ultrafast, quarter, finest 1": dis_method(uf, 2, finest=1),
        "BM half, tile 16/16": bm_method(1, tile=16, stride=16),
        "BM half, tile 16/12": bm_method(1, tile=16, stride=12),
        "BM half, tile 16/8": bm_method(1, tile=16, stride=8),
        "BM half, tile 24/16": bm_method(1, tile=24, stride=16),
        "BM half, tile 16/8, parabola": bm_method(1, tile=16, stride=8, refine=0),
        "BM half, tile 16/8, margin 0": bm_method(1, tile=16, stride=8, margin=0.0),
        "BM quarter, tile 16/8": bm_method(2, tile=16, stride=8),
    }


@dataclass
class Stats:
    epe: list[np.ndarray] = field(default_factory=list)
    sq_err: float = 0.0
    count: int = 0

    def add(self, flow: np.ndarray, gt: np.ndarray, prev_clean: np.ndarray, cur_clean: np.ndarray) -> None:
        inner = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]
        e = np.hypot(*(2.0 * flow[inner] - gt[inner]).transpose(2, 0, 1))    # full-resolution px
        self.epe.append(e[::2, ::2].ravel())
        warped, _ = warp_packed(prev_clean, flow, cubic=True)
        d = warped[inner] - cur_clean[inner]
        self.sq_err += float(np.square(d, dtype=np.float64).sum())
        self.count += d.size

    def summary(self) -> dict[str, float]:
        e = np.concatenate(self.epe) if self.epe else np.zeros(1)
        mse = self.sq_err / max(self.count, 1)
        return {"epe_median": float(np.median(e)), "epe_p90": float(np.percentile(e, 90)),
                "psnr": float(10 * math.log10(1.0 / mse)) if mse > 0 else float("inf")}


def time_calls(fn: Callable[[np.ndarray, np.ndarray], object], pairs: list[tuple[np.ndarray, np.ndarray]],
               threads: int, repeats: int = 3) -> float:
    """ms per call on `threads` threads: the median call of each of `repeats` passes over the
    pairs, the best pass (other processes on the machine only ever add time)."""
    numba.set_num_threads(threads)
    cv2.setNumThreads(threads)
    try:
        fn(*pairs[0])
        medians = []
        for _ in range(repeats):
            times = []
            for cur, prev in pairs:
                t0 = time.perf_counter()
                fn(cur, prev)
                times.append(time.perf_counter() - t0)
            medians.append(float(np.median(times)))
        return 1e3 * min(medians)
    finally:
        numba.set_num_threads(THREADS)
        cv2.setNumThreads(THREADS)


def bench_flow(frames: int, only: list[str] | None) -> dict:
    canvas = mosaic(blur=0.5)
    meths = {k: v for k, v in methods().items() if only is None or any(o in k for o in only)}
    refs = {"zero flow": None, "ground truth": None}
    rng = np.random.default_rng(0)
    results: dict = {"per_scene": {}, "time_ms": {}, "time_1t_ms": {}}
    totals = {(m, c): Stats() for m in [*refs, *meths] for c in ("noisy", "clean")}
    timing_pairs = None
    for scene in SCENES:
        r = Renderer(canvas, scene)
        clean = [pack(r.frame(t), None) for t in range(frames)]
        noisy = [pack(r.frame(t), rng) for t in range(frames)]
        gts = [None] + [cv2.resize(r.flow(t), (W2, H2), interpolation=cv2.INTER_AREA) for t in range(1, frames)]
        if scene.name == "pan 1.3 px":
            timing_pairs = [(noisy[t], clean[t - 1]) for t in range(1, frames)]
        per = {}
        for name in [*refs, *meths]:
            for case in ("noisy", "clean"):
                s = Stats()
                for t in range(1, frames):
                    prev = noisy[t - 1] if case == "noisy" else clean[t - 1]
                    if name == "zero flow":
                        flow = np.zeros((H2, W2, 2), np.float32)
                    elif name == "ground truth":
                        flow = gts[t] / np.float32(2.0)
                    else:
                        flow = meths[name](noisy[t], prev)
                    s.add(flow, gts[t], clean[t - 1], clean[t])
                    totals[(name, case)].add(flow, gts[t], clean[t - 1], clean[t])
                per[f"{name} | {case}"] = s.summary()
        results["per_scene"][scene.name] = per
        print(f"  {scene.name}: done", flush=True)
    results["all"] = {f"{m} | {c}": s.summary() for (m, c), s in totals.items()}
    assert timing_pairs is not None
    for name, fn in meths.items():
        results["time_ms"][name] = time_calls(lambda c, p: fn(c, p), timing_pairs, THREADS)
        results["time_1t_ms"][name] = time_calls(lambda c, p: fn(c, p), timing_pairs, 1)
    return results


def print_flow(res: dict) -> None:
    names = list(res["time_ms"])
    print(f"\n| method | ms, {THREADS} threads | ms, 1 thread | a: EPE med / p90 | a: PSNR | b: EPE med / p90 "
          "| b: PSNR |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in ["zero flow", "ground truth", *names]:
        a = res["all"][f"{name} | noisy"]
        b = res["all"][f"{name} | clean"]
        t = f"{res['time_ms'][name]:.1f} | {res['time_1t_ms'][name]:.1f}" if name in res["time_ms"] else "- | -"
        print(f"| {name} | {t} | {a['epe_median']:.2f} / {a['epe_p90']:.2f} | {a['psnr']:.2f} "
              f"| {b['epe_median']:.2f} / {b['epe_p90']:.2f} | {b['psnr']:.2f} |")
    scenes = list(res["per_scene"])
    print("\nPSNR (dB) of the warped previous clean frame, flow to the previous clean frame (case b):\n")
    print("| method | " + " | ".join(scenes) + " |")
    print("|---|" + "---:|" * len(scenes))
    for name in ["zero flow", "ground truth", *names]:
        row = [res["per_scene"][s][f"{name} | clean"]["psnr"] for s in scenes]
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    print("\nEPE median / p90 (full-resolution px), case b:\n")
    print("| method | " + " | ".join(scenes) + " |")
    print("|---|" + "---:|" * len(scenes))
    for name in names:
        row = [res["per_scene"][s][f"{name} | clean"] for s in scenes]
        print(f"| {name} | " + " | ".join(f"{v['epe_median']:.2f} / {v['epe_p90']:.2f}" for v in row) + " |")


# ---------------------------------------------------------------------------------------------
# Warp: Numba against cv2.remap


def bench_warp() -> dict:
    rng = np.random.default_rng(1)
    src = cv2.GaussianBlur(rng.random((H2, W2, 6), dtype=np.float32), (0, 0), 1.0)
    src = np.ascontiguousarray(src)
    # A smooth, non-uniform flow of a few pixels.
    flow = cv2.resize(rng.normal(0, 3, (6, 10, 2)).astype(np.float32), (W2, H2), interpolation=cv2.INTER_CUBIC)
    gx, gy = np.meshgrid(np.arange(W2, dtype=np.float32), np.arange(H2, dtype=np.float32))
    maps = np.dstack([gx + flow[..., 0], gy + flow[..., 1]])
    out = np.empty_like(src)
    valid = np.empty((H2, W2), np.float32)

    def remap(interp: int) -> np.ndarray:
        if interp == cv2.INTER_LINEAR:
            return cv2.remap(src, maps, None, interp, borderMode=cv2.BORDER_REPLICATE)
        # INTER_CUBIC takes at most 4 channels: two calls of 3.
        return np.concatenate([cv2.remap(np.ascontiguousarray(src[..., k:k + 3]), maps, None, interp,
                                         borderMode=cv2.BORDER_REPLICATE) for k in (0, 3)], axis=2)

    cases: dict[str, Callable[[], np.ndarray]] = {
        "numba warp bilinear": lambda: warp(src, flow, cubic=False, out=out, valid=valid)[0],
        "numba warp bicubic": lambda: warp(src, flow, cubic=True, out=out, valid=valid)[0],
        "numba warp_packed bilinear": lambda: warp_packed(src, flow, cubic=False, out=out, valid=valid)[0],
        "numba warp_packed bicubic": lambda: warp_packed(src, flow, cubic=True, out=out, valid=valid)[0],
        "cv2.remap INTER_LINEAR (6 ch)": lambda: remap(cv2.INTER_LINEAR),
        "cv2.remap INTER_CUBIC (3+3 ch)": lambda: remap(cv2.INTER_CUBIC),
    }
    res: dict = {"time_ms": {}, "time_1t_ms": {}}
    pairs = [(src, flow)] * 10
    for name, fn in cases.items():
        res["time_ms"][name] = time_calls(lambda c, p: fn(), pairs, THREADS)
        res["time_1t_ms"][name] = time_calls(lambda c, p: fn(), pairs, 1)
    lin = warp(src, flow, cubic=False)[0]
    cub = warp(src, flow, cubic=True)[0]
    res["max_diff_bilinear_vs_cv2"] = float(np.abs(lin - remap(cv2.INTER_LINEAR)).max())
    res["max_diff_bicubic_vs_cv2"] = float(np.abs(cub - remap(cv2.INTER_CUBIC)).max())
    return res


def print_warp(res: dict) -> None:
    print(f"\nWarp of a ({H2}, {W2}, 6) float32 state (median of 10 calls, best of 3):\n")
    print(f"| warp | ms, {THREADS} threads | ms, 1 thread |")
    print("|---|---:|---:|")
    for name, t in res["time_ms"].items():
        print(f"| {name} | {t:.2f} | {res['time_1t_ms'][name]:.2f} |")
    print(f"\nmax |numba bilinear - cv2 INTER_LINEAR| = {res['max_diff_bilinear_vs_cv2']:.2e}; "
          f"max |numba bicubic (a=-0.5) - cv2 INTER_CUBIC (a=-0.75)| = {res['max_diff_bicubic_vs_cv2']:.2e} "
          "(values in [0, 1])")


# ---------------------------------------------------------------------------------------------
# Blur of repeated warping


def fourier_shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """img (H, W[, C]) moved by (dx, dy) px exactly for a band-limited periodic image."""
    ky = np.fft.fftfreq(img.shape[0])[:, None]
    kx = np.fft.fftfreq(img.shape[1])[None, :]
    ph = np.exp(-2j * np.pi * (kx * dx + ky * dy))
    if img.ndim == 3:
        ph = ph[..., None]
    return np.real(np.fft.ifft2(np.fft.fft2(img, axes=(0, 1)) * ph, axes=(0, 1))).astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray, margin: int) -> float:
    d = (a - b)[margin:-margin, margin:-margin]
    return float(10 * math.log10(1.0 / np.mean(np.square(d, dtype=np.float64))))


def bench_blur(steps: int = 30, alpha: float = 1.0 / 8.0) -> dict:
    gray = {"astronaut": cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY),
            "brick": skimage.data.brick()}
    res: dict = {}
    margin = 48
    for img_name, img in gray.items():
        src = img.astype(np.float32)[..., None] / 255.0
        for step in (0.5, 0.3):
            flow = np.zeros((*src.shape[:2], 2), np.float32)
            flow[..., 0] = -step
            refs = [fourier_shift(src, step * t, 0.0) for t in range(steps + 1)]
            gx, gy = np.meshgrid(np.arange(src.shape[1], dtype=np.float32), np.arange(src.shape[0], dtype=np.float32))
            maps = np.dstack([gx + flow[..., 0], gy + flow[..., 1]])

            def lanczos(x: np.ndarray, _: np.ndarray, maps: np.ndarray = maps) -> tuple[np.ndarray, None]:
                out = cv2.remap(x[..., 0], maps, None, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
                return out[..., None], None

            def numba_warp(cubic: bool) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
                return lambda x, f: warp(x, f, cubic=cubic)

            for interp, fn in (("bilinear", numba_warp(False)), ("bicubic", numba_warp(True)),
                               ("cv2 INTER_LANCZOS4 (reference)", lanczos)):
                state = refs[0].copy()
                avg = refs[0].copy()
                first = 0.0
                for t in range(1, steps + 1):
                    state = fn(state, flow)[0]
                    avg = (1 - alpha) * fn(avg, flow)[0] + alpha * refs[t]
                    if t == 1:
                        first = psnr(state, refs[1], margin)
                key = f"{img_name} | {step} px/step | {interp}"
                res[key] = {"one": first, "repeated": psnr(state, refs[-1], margin),
                            "running_average": psnr(avg, refs[-1], margin)}
    # The packed state: luma phases warped as four planes (warp) or as one plane (warp_packed).
    rgb = skimage.data.astronaut()
    yuv = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), cv2.COLOR_BGR2YUV_I420).astype(np.float32) / 255.0
    h, w = rgb.shape[:2]
    y, u, v = yuv[:h], yuv[h:h + h // 4].reshape(h // 2, w // 2), yuv[h + h // 4:].reshape(h // 2, w // 2)

    def packed_shift(s: float) -> np.ndarray:   # s in full-resolution px
        ys = fourier_shift(y, s, 0.0)
        us, vs = fourier_shift(u, s / 2, 0.0), fourier_shift(v, s / 2, 0.0)
        return np.dstack([ys[0::2, 0::2], ys[0::2, 1::2], ys[1::2, 0::2], ys[1::2, 1::2], us, vs])

    for step in (0.5, 0.3):                         # full-resolution px per step
        flow = np.zeros((h // 2, w // 2, 2), np.float32)
        flow[..., 0] = -step / 2
        refs = [packed_shift(step * t) for t in range(steps + 1)]
        for fn_name, fn in (("warp", warp), ("warp_packed", warp_packed)):
            for cubic in (False, True):
                state = refs[0].copy()
                avg = refs[0].copy()
                first = 0.0
                for t in range(1, steps + 1):
                    state = fn(state, flow, cubic=cubic)[0]
                    avg = (1 - alpha) * fn(avg, flow, cubic=cubic)[0] + alpha * refs[t]
                    if t == 1:
                        first = psnr(state, refs[1], margin // 2)
                key = f"packed astronaut | {step} px/step | {fn_name} {'bicubic' if cubic else 'bilinear'}"
                res[key] = {"one": first, "repeated": psnr(state, refs[-1], margin // 2),
                            "running_average": psnr(avg, refs[-1], margin // 2)}
    return res


def print_blur(res: dict) -> None:
    print("\nRepeated warping (PSNR dB against the exactly shifted image; running average: "
          "state = 7/8 warp(state) + 1/8 new clean frame, after 30 frames):\n")
    print("| image | pan | interpolation | 1 warp | 30 warps in a row | running average |")
    print("|---|---|---|---:|---:|---:|")
    for key, v in res.items():
        img, step, interp = key.split(" | ")
        print(f"| {img} | {step} | {interp} | {v['one']:.2f} | {v['repeated']:.2f} | {v['running_average']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sections", default="flow,warp,blur", help="comma-separated: flow, warp, blur")
    ap.add_argument("--frames", type=int, default=8, help="frames per scene (pairs = frames - 1)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--only", action="append", default=None, metavar="TEXT",
                    help="flow: only the methods whose name contains TEXT (repeat for several)")
    args = ap.parse_args()
    numba.set_num_threads(THREADS)
    cv2.setNumThreads(THREADS)
    sections = args.sections.split(",")
    report: dict = {"load_before": os.getloadavg(), "threads": THREADS, "cpu_count": os.cpu_count(),
                    "omp_wait_policy": os.environ["OMP_WAIT_POLICY"]}
    print(f"load average before: {report['load_before']}, {THREADS} threads, "
          f"OMP_WAIT_POLICY={report['omp_wait_policy']}, numba layer ", end="")
    # Compile every kernel before any timing.
    z = np.zeros((64, 64, 6), np.float32)
    zf = np.zeros((64, 64, 2), np.float32)
    block_match(packed_luma(z), packed_luma(z))
    for c in (False, True):
        warp(z, zf, cubic=c)
        warp_packed(z, zf, cubic=c)
    packed_luma(z, out=np.empty((64, 64), np.uint8))
    print(numba.threading_layer())
    if "warp" in sections:
        report["warp"] = bench_warp()
        print_warp(report["warp"])
    if "blur" in sections:
        report["blur"] = bench_blur()
        print_blur(report["blur"])
    if "flow" in sections:
        report["flow"] = bench_flow(args.frames, args.only)
        print_flow(report["flow"])
    report["load_after"] = os.getloadavg()
    print(f"\nload average after: {report['load_after']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
