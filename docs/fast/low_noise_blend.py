"""How the low-noise blend of streamdn.models.network (LOW_NOISE_BLEND) was chosen.

    python docs/fast/low_noise_blend.py [WEIGHTS]        (default: the shipped fast model)

Training-style clips (training images, procedural MovingScenes; seeds the validation set never
uses), Gaussian RGB noise of sigma 0..8, blind noise estimate as in the product. For each (s0, s1)
the output is input + w * (network - input), w = clip((luma sigma - s0) / (s1 - s0), 0, 1);
prints the mean RGB PSNR (frames 2..9) of the input, the network alone and each blend.
"""

from __future__ import annotations

import sys

import numpy as np

from streamdn.data.clips import ClipSpec, render_clip
from streamdn.denoiser import Denoiser
from streamdn.frames import frame_from_bgr
from streamdn.kernels.pack import unpack_yuv420
from streamdn.metrics import psnr
from streamdn.data.synthetic import MovingScene, SceneConfig

GRID = [(0.5, 2.0), (0.5, 3.0), (0.5, 4.0), (1.0, 2.5), (1.0, 3.0), (1.0, 4.0), (0.0, 3.0), (1.5, 3.0)]


def clips(rng: np.random.Generator) -> list[np.ndarray]:
    out = [render_clip(ClipSpec(frames=10, size=(192, 320), speed=float(rng.uniform(0, 1.5)),
                                objects=int(rng.integers(0, 3))), rng) for _ in range(4)]
    for i in range(2):
        scene = MovingScene(SceneConfig(width=320, height=192, speed=float(rng.uniform(0.3, 1.5)), objects=2,
                                        seed=9000 + i))
        out.append(np.stack(list(scene.frames(10))))
    return out


def main(weights: str = "fast") -> None:
    scenes = clips(np.random.default_rng(4242))
    for sigma in (0, 1, 2, 3, 4, 5, 8):
        res: dict[object, list[float]] = {g: [] for g in ["input", "network", *GRID]}
        for ci, clip in enumerate(scenes):
            dn = Denoiser(weights)
            dn.model.low_noise_blend = (0.0, 0.0)
            nrng = np.random.default_rng(ci * 100 + sigma)
            for t, clean in enumerate(clip):
                noisy = clean if not sigma else \
                    np.clip(clean + nrng.normal(0, sigma, clean.shape), 0, 255).round().astype(np.uint8)
                f = frame_from_bgr(noisy, index=t)
                packed = dn.pack(f)
                net = dn.model.forward(packed)[0].permute(1, 2, 0).numpy()
                if t < 2:
                    continue
                cur = packed.cur[0].permute(1, 2, 0).numpy()
                res["input"].append(psnr(clean, f.to_bgr()))
                for g in ["network", *GRID]:
                    w = 1.0 if g == "network" else float(np.clip((packed.sigma_y - g[0]) / (g[1] - g[0]), 0, 1))
                    planes = np.empty_like(f.y), np.empty_like(f.u), np.empty_like(f.v)
                    unpack_yuv420(np.ascontiguousarray(cur + w * (net - cur), np.float32), 255, *planes)
                    res[g].append(psnr(clean, f.with_planes(*planes).to_bgr()))
            dn.close()
        print(f"sigma {sigma:2d}  " + "  ".join(f"{g if isinstance(g, str) else '%g-%g' % g}: {np.mean(v):.2f}"
                                                for g, v in res.items()), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:2])
