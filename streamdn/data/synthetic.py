"""Procedural moving scenes: a textured background under a slowly moving camera plus objects
that move on their own. Deterministic from a seed; used by the synthetic source (demo, tests)
and for training data."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SceneConfig:
    """Attributes:
        width, height: output size in pixels.
        speed: typical camera motion in pixels per frame.
        objects: number of independently moving objects.
        seed: everything is drawn from np.random.default_rng(seed).
    """

    width: int = 640
    height: int = 360
    speed: float = 1.5
    objects: int = 3
    seed: int = 0


def procedural_texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A natural-looking (H, W, 3) uint8 BGR texture: multi-scale coloured noise, gradients,
    stripes, filled shapes with hard edges and a few lines of text (fine detail)."""
    img = np.zeros((height, width, 3), np.float32)
    for scale in (64, 16, 4):
        small = rng.random((max(2, height // scale), max(2, width // scale), 3)).astype(np.float32)
        img += cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC) * (scale / 84.0)
    img = (img - img.min()) / max(1e-6, float(img.max() - img.min())) * 200 + 20
    img = 0.4 * img + 0.6 * img.mean(axis=2, keepdims=True)  # natural scenes are mostly unsaturated
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img += (30 * np.sin(xx / rng.uniform(3, 12)) * (yy > height * rng.uniform(0.5, 0.9)))[..., None]
    out = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 6)) + height * width // 12000):
        colour = tuple(int(c) for c in rng.integers(30, 226, 3))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(4, max(6, min(width, height) // 14)))
        if rng.random() < 0.5:
            cv2.circle(out, (cx, cy), r, colour, -1, lineType=cv2.LINE_AA)
        else:
            cv2.rectangle(out, (cx - r, cy - r // 2), (cx + r, cy + r // 2), colour, -1)
    for _ in range(int(rng.integers(1, 3)) + height * width // 40000):
        colour = tuple(int(c) for c in rng.integers(30, 226, 3))
        org = (int(rng.integers(0, max(1, width - 100))), int(rng.integers(20, max(21, height))))
        cv2.putText(out, "streamdn 0123", org, cv2.FONT_HERSHEY_SIMPLEX, rng.uniform(0.4, 1.2), colour, 1,
                    cv2.LINE_AA)
    return out


class MovingScene:
    """Renders frame t of a scene: camera pan/rotate/zoom over a texture plus moving sprites."""

    def __init__(self, cfg: SceneConfig) -> None:
        self.cfg = cfg
        rng = np.random.default_rng(cfg.seed)
        margin = 4 * int(cfg.speed * 64 + 32)
        self.background = procedural_texture(cfg.height + margin, cfg.width + margin, rng)
        self.phase = rng.uniform(0, 2 * math.pi, 4)
        self.sprites = []
        for _ in range(cfg.objects):
            size = int(rng.integers(max(8, cfg.height // 10), max(9, cfg.height // 4)))
            tex = procedural_texture(size, size, rng)
            mask = np.zeros((size, size), np.uint8)
            cv2.circle(mask, (size // 2, size // 2), size // 2 - 1, 255, -1, lineType=cv2.LINE_AA)
            start = rng.uniform([0, 0], [cfg.width - size, cfg.height - size])
            velocity = rng.uniform(-2.5, 2.5, 2) * max(cfg.speed, 0.5)
            self.sprites.append((tex, mask.astype(np.float32) / 255.0, start, velocity))

    def render(self, t: int) -> np.ndarray:
        """Frame t as (height, width, 3) uint8 BGR."""
        cfg = self.cfg
        bh, bw = self.background.shape[:2]
        s = cfg.speed
        # Smooth, mostly sub-2-pixel-per-frame camera motion with a little rotation and zoom.
        dx = s * 40 * math.sin(t / 40 + self.phase[0])
        dy = s * 20 * math.sin(t / 55 + self.phase[1])
        angle = 1.5 * math.sin(t / 70 + self.phase[2]) * min(s, 1.0)
        zoom = 1.0 + 0.03 * math.sin(t / 90 + self.phase[3]) * min(s, 1.0)
        m = cv2.getRotationMatrix2D((bw / 2, bh / 2), angle, zoom)
        m[0, 2] += dx - (bw - cfg.width) / 2
        m[1, 2] += dy - (bh - cfg.height) / 2
        frame = cv2.warpAffine(self.background, m, (cfg.width, cfg.height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        for tex, alpha, start, velocity in self.sprites:
            size = tex.shape[0]
            span = np.array([cfg.width - size, cfg.height - size], np.float64)
            pos = start + velocity * t
            pos = np.abs(np.mod(pos, 2 * np.maximum(span, 1)))  # bounce off the borders
            pos = np.where(pos > span, 2 * span - pos, pos)
            shift = np.float32([[1, 0, pos[0]], [0, 1, pos[1]]])
            tex_w = cv2.warpAffine(tex, shift, (cfg.width, cfg.height), flags=cv2.INTER_LINEAR).astype(np.float32)
            a_w = cv2.warpAffine(alpha, shift, (cfg.width, cfg.height), flags=cv2.INTER_LINEAR)[..., None]
            frame = frame * (1 - a_w) + tex_w * a_w
        return np.clip(frame + 0.5, 0, 255).astype(np.uint8)

    def frames(self, count: int) -> Iterator[np.ndarray]:
        for t in range(count):
            yield self.render(t)
