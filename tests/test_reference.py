"""The BM3D reference: the generalized Anscombe transform and its unbiased inverse, and BM3D itself
on a tiny frame (skipped without the bm3d package)."""

from __future__ import annotations

import numpy as np
import pytest

from streamdn.data.noise import NoiseSpec, add_noise_uint8
from streamdn.tools.reference import gat_forward, gat_inverse


@pytest.mark.parametrize("level", [2.0, 20.0, 120.0, 240.0])
def test_gat_stabilises_variance_and_inverts_without_bias(level: float) -> None:
    gain, read = 255.0 / 30.0, 4.0                 # the pg_lowlight preset
    rng = np.random.default_rng(0)
    z = gain * rng.poisson(level / gain, 200_000) + rng.normal(0, read, 200_000)
    t = gat_forward(z, gain, read)
    assert abs(t.std() - 1.0) < (0.3 if level < 10 else 0.03)
    back = float(gat_inverse(t.mean(), gain, read))
    assert abs(back - level) < max(0.5, 0.01 * level)


def test_bm3d_reference_denoises() -> None:
    pytest.importorskip("bm3d")
    from streamdn.metrics import psnr
    from streamdn.tools.reference import bm3d_frame

    yy, xx = np.mgrid[0:48, 0:48].astype(np.float32)
    clean = np.clip(np.stack([80 + xx * 2, 100 + yy, 60 + (xx + yy)], -1), 0, 255).astype(np.uint8)
    rng = np.random.default_rng(1)
    for spec in (NoiseSpec("gaussian", sigma=20.0), NoiseSpec("poisson_gaussian", sigma=4.0, peak=30.0),
                 NoiseSpec("speckle", sigma=15.0)):
        noisy = add_noise_uint8(clean, spec, rng)
        out = bm3d_frame(noisy, spec, clean)
        assert out.shape == clean.shape and out.dtype == np.uint8
        assert psnr(clean, out) > psnr(clean, noisy) + 5.0
