"""Fuzzing the command line and the API with damaged containers, odd streams, bad options and bad
arrays, generated on the fly from tiny clips. Every case checks the contract:

- the exit code is the documented one (0 done, 1 input/output failed, 2 bad option, 130 stopped);
- stderr has at most one `streamdn: error:` line and never a traceback;
- it ends (subprocesses run with a timeout; in-process cases under an alarm);
- nothing is left behind in the output folder (no temporary file, no .partial, no empty folder),
  and a file that was there before is unchanged (hashed before and after) unless replaced on
  purpose;
- a run that succeeds wrote a file that decodes, with as many frames as it reported.

The default run takes about 40 s on two cores. The long seeded run is deselected by default:

    STREAMDN_FUZZ_CASES=400 STREAMDN_FUZZ_SEED=7 python -m pytest -m fuzz_long tests/test_fuzz.py
    python scripts/fuzz.py --cases 400 --seed 7      # the same
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from streamdn.cli import main
from videos import Spec, make_video

TIMEOUT = 60          # seconds per subprocess case (a tiny clip takes ~2 s)
ALARM = 60            # seconds per in-process case
LONG_CASES = int(os.environ.get("STREAMDN_FUZZ_CASES", "300"))
LONG_SEED = int(os.environ.get("STREAMDN_FUZZ_SEED", "1"))
FAST = ["--model", "classical:gaussian", "-q"]   # the damage is in the decoding, not the model

# Base clips: container, codec, pixel format (PyAV has these encoders in every wheel).
BASES = {
    "mp4": Spec(width=32, height=24, frames=6, codec="libx264"),
    "mkv": Spec(width=32, height=24, frames=6, codec="libx264"),
    "webm": Spec(width=32, height=24, frames=6, codec="libvpx-vp9"),
    "avi": Spec(width=32, height=24, frames=6, codec="mpeg4"),
}
# Odd streams: what they are, and the file to write them to.
ODD = {
    "17x9-ffv1": ("mkv", Spec(width=17, height=9, frames=4, codec="ffv1")),
    "2x2-ffv1": ("mkv", Spec(width=2, height=2, frames=4, codec="ffv1")),
    "17x9-x264-444": ("mp4", Spec(width=17, height=9, frames=4, pix_fmt="yuv444p")),
    "gray-x264": ("mkv", Spec(width=32, height=24, frames=4, pix_fmt="gray")),
    "rgb24-x264rgb": ("mkv", Spec(width=32, height=24, frames=4, codec="libx264rgb", pix_fmt="rgb24")),
    "yuv420p10-x264": ("mkv", Spec(width=32, height=24, frames=4, pix_fmt="yuv420p10le")),
    "yuv444p16-ffv1": ("mkv", Spec(width=18, height=10, frames=4, codec="ffv1", pix_fmt="yuv444p16le")),
    "argb-qtrle": ("mov", Spec(width=16, height=16, frames=4, codec="qtrle", pix_fmt="argb")),
}


# -- the contract ----------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int
    err: str


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> hash; '<dir>' for folders)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = "<dir>" if p.is_dir() else _sha(p) if p.is_file() else "<other>"
    return out


def check_contract(o: Outcome, codes: set[int], before: dict[str, str], after: dict[str, str],
                   created: set[str] = frozenset(), what: str = "") -> None:
    """The rules every case obeys (see the module docstring)."""
    assert o.code in codes, (what, o.code, o.err)
    assert "Traceback" not in o.err, (what, o.err)
    assert sum(line.startswith("streamdn: error:") for line in o.err.splitlines()) <= 1, (what, o.err)
    for name, digest in before.items():          # nothing that was there changed or went away
        assert after.get(name) == digest, (what, name)
    new = set(after) - set(before)
    leftovers = [n for n in new if ".tmp" in n or ".partial" in n or ".parts" in n]
    assert not leftovers, (what, leftovers)
    empty_dirs = [n for n in new if after[n] == "<dir>" and not any(m.startswith(n + os.sep) for m in after)]
    assert not empty_dirs, (what, empty_dirs)
    assert new <= set(created) | {n for n in new if after[n] == "<dir>"}, (what, new, created)


def frames_in(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def run_cli(args: list[str], timeout: float = TIMEOUT) -> Outcome:
    """`python -m streamdn ARGS...` in a subprocess (a hang fails the case)."""
    try:
        proc = subprocess.run([sys.executable, "-m", "streamdn", *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"streamdn {' '.join(args)} did not end within {timeout} s")
    return Outcome(proc.returncode, proc.stderr)


class _Hang(Exception):
    pass


@contextlib.contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def ring(signum: int, frame: object) -> None:
        raise _Hang

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_main(args: list[str]) -> Outcome:
    """streamdn.cli.main(ARGS) in this process (cheap: no interpreter start), its stderr captured;
    an exception escaping main is a failed case, as a traceback would be."""
    err = io.StringIO()
    try:
        with alarm(ALARM), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(args)
    except _Hang:
        pytest.fail(f"streamdn {' '.join(args)} did not end within {ALARM} s")
    except SystemExit as exit_:   # argparse's usage errors
        code = int(exit_.code or 0)
    return Outcome(code, err.getvalue())


# -- damage ----------------------------------------------------------------------------------


def damage(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One seeded damage: a truncation, byte flips, a zeroed or repeated block, or a tag swap."""
    kind = rng.choice(["truncate", "flip", "flip", "zero", "repeat", "header"])
    buf = bytearray(data)
    n = len(buf)
    if kind == "truncate":
        return kind, bytes(buf[:rng.randrange(1, n)])
    if kind == "flip":
        for _ in range(rng.randint(1, 40)):
            k = rng.randrange(n)
            buf[k] ^= 1 << rng.randrange(8)
    elif kind == "zero":
        start = rng.randrange(n)
        buf[start:start + rng.randint(1, 512)] = bytes(min(512, n - start))[:len(buf[start:start + 512])]
    elif kind == "repeat":
        start = rng.randrange(n)
        block = buf[start:start + rng.randint(1, 256)]
        at = rng.randrange(n)
        buf[at:at] = block
    else:   # the first 512 bytes (headers, codec tags) take the hits
        for _ in range(rng.randint(1, 8)):
            k = rng.randrange(min(512, n))
            buf[k] = rng.randrange(256)
    return kind, bytes(buf)


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("bases")
    return {ext: make_video(folder / f"base.{ext}", spec).read_bytes() for ext, spec in BASES.items()}


def damaged_case(bases: dict[str, bytes], folder: Path, seed: int, *, existing: bool) -> tuple[Path, Path, str]:
    """Writes one damaged input into `folder`/in and returns (input, output, description); with
    `existing` an older file already sits at the output path (it must survive a failure)."""
    rng = random.Random(seed)
    ext = rng.choice(sorted(bases))
    kind, data = damage(bases[ext], rng)
    (folder / "in").mkdir(parents=True, exist_ok=True)
    (folder / "out").mkdir(exist_ok=True)
    src = folder / "in" / f"d{seed}.{ext}"
    src.write_bytes(data)
    out = folder / "out" / f"o{seed}.mkv"
    if existing:
        out.write_bytes(b"an older result " * 8)
    return src, out, f"seed {seed}: {ext} {kind}"


def check_damaged(o: Outcome, out: Path, before: dict[str, str], after: dict[str, str], overwrite: bool,
                  what: str) -> None:
    name = out.name
    if o.code == 0:
        if overwrite or name not in before:
            assert frames_in(out) >= 1, what
        check_contract(o, {0}, {k: v for k, v in before.items() if k != name}, after, {name}, what)
    else:
        check_contract(o, {1}, before, after, set(), what)


# -- the default suite -----------------------------------------------------------------------

DAMAGE_SEEDS_CLI = range(100, 104)        # 4 subprocess cases
DAMAGE_SEEDS_INPROC = range(200, 236)     # 36 in-process cases


@pytest.mark.parametrize("seed", DAMAGE_SEEDS_CLI)
def test_damaged_cli(bases: dict[str, bytes], tmp_path: Path, seed: int) -> None:
    existing = seed % 2 == 0
    src, out, what = damaged_case(bases, tmp_path, seed, existing=existing)
    overwrite = existing and seed % 4 == 0
    before = snapshot(tmp_path / "out")
    o = run_cli(["denoise", str(src), "-o", str(out), *FAST] + (["--overwrite"] if overwrite else []))
    if existing and not overwrite:
        check_contract(o, {1}, before, snapshot(tmp_path / "out"), set(), what)
        assert "already exists" in o.err
        return
    check_damaged(o, out, before, snapshot(tmp_path / "out"), overwrite, what)


def test_damaged_in_process(bases: dict[str, bytes], tmp_path: Path) -> None:
    for seed in DAMAGE_SEEDS_INPROC:
        folder = tmp_path / str(seed)
        src, out, what = damaged_case(bases, folder, seed, existing=seed % 3 == 0)
        before = snapshot(folder / "out")
        o = run_main(["denoise", str(src), "-o", str(out), *FAST, "--overwrite"])
        check_damaged(o, out, before, snapshot(folder / "out"), True, what)


def test_damaged_batch_goes_on(bases: dict[str, bytes], tmp_path: Path) -> None:
    """A folder of damaged files and one good file: every file gets an outcome, the good one is
    done, the exit code is 1 when any failed; nothing unfinished is left."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.mp4").write_bytes(bases["mp4"])
    for seed in range(300, 306):
        rng = random.Random(seed)
        ext = rng.choice(sorted(bases))
        (folder / f"d{seed}.{ext}").write_bytes(damage(bases[ext], rng)[1])
    out = tmp_path / "out"
    o = run_cli(["batch", str(folder), "-o", str(out), *FAST])
    assert o.code in (0, 1) and "Traceback" not in o.err, o.err
    assert (out / "good.mp4").exists() and frames_in(out / "good.mp4") == 6
    leftovers = [p.name for p in out.rglob("*") if ".tmp" in p.name or ".partial" in p.name or ".parts" in p.name]
    assert not leftovers
    failed = o.err.count("  failed ")
    assert (o.code == 1) == (failed > 0)


@pytest.fixture(scope="module")
def odd_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("odd")
    clips = {}
    for name, (ext, spec) in ODD.items():
        try:
            clips[name] = make_video(folder / f"{name}.{ext}", spec)
        except (av.error.FFmpegError, ValueError):   # an encoder this PyAV build lacks
            continue
    return clips


@pytest.mark.parametrize("name", sorted(ODD))
def test_odd_stream_in_process(odd_clips: dict[str, Path], tmp_path: Path, name: str) -> None:
    if name not in odd_clips:
        pytest.skip(f"this PyAV cannot write {name}")
    src = odd_clips[name]
    spec = ODD[name][1]
    for ext in (".mkv", ".mp4"):
        out = tmp_path / f"o{ext}"
        o = run_main(["denoise", str(src), "-o", str(out), "-q"])
        check_contract(o, {0}, {}, snapshot(tmp_path), {out.name}, f"{name} -> {ext}")
        with av.open(str(out)) as c:
            v = c.streams.video[0]
            assert (v.codec_context.width, v.codec_context.height) == (spec.width, spec.height)
            assert sum(1 for _ in c.decode(v)) == spec.frames
        out.unlink()


@pytest.mark.parametrize("name", ["yuv420p10-x264"])
def test_odd_stream_cli(odd_clips: dict[str, Path], tmp_path: Path, name: str) -> None:
    if name not in odd_clips:
        pytest.skip(f"this PyAV cannot write {name}")
    out = tmp_path / "o.mkv"
    o = run_cli(["denoise", str(odd_clips[name]), "-o", str(out), "-q"])
    check_contract(o, {0}, {}, snapshot(tmp_path), {"o.mkv"}, name)
    assert frames_in(out) == ODD[name][1].frames


# Bad options: (argv after the input and output, exit code). Each runs with an existing output
# and --overwrite, so a bad option that got through would replace it.
BAD_OPTIONS = [
    (["--crf", "99"], 2), (["--crf", "-1"], 2), (["--crf", "x"], 2), (["--preset", "bogus"], 2),
    (["--strength", "nan"], 2), (["--strength", "-5"], 2), (["--strength", "inf"], 2),
    (["--device", "gpu"], 2), (["--impulses", "sometimes"], 2), (["--codec", "nosuchcodec"], 2),
    (["--pix-fmt", "nosuchfmt"], 2), (["--frames", "0"], 2), (["--frames", "-3"], 2),
    (["--set", "pipeline.queue_size=-3"], 2), (["--set", "pipeline.queue_size='x'"], 2),
    (["--set", "nosuch.key=1"], 2), (["--set", "encode.nokey=1"], 2), (["--set", "garbage"], 2),
    (["--config", "/nonexistent.toml"], 2), (["--model", "nosuchmodel"], 2), (["--lossless", "--crf", "70"], 2),
]
BAD_OPTIONS_CLI = [0, 3, 13]       # these also run as subprocesses (import-time paths)


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("small") / "in.mp4", Spec(width=32, height=24, frames=3))


def _bad_option_case(clip: Path, folder: Path, flags: list[str], code: int, runner: object) -> None:
    out = folder / "out.mp4"
    out.write_bytes(b"an older result")
    before = snapshot(folder)
    o = runner(["denoise", str(clip), "-o", str(out), "--overwrite", "-q", *flags])  # type: ignore[operator]
    check_contract(o, {code}, before, snapshot(folder), set(), " ".join(flags))
    assert "streamdn: error:" in o.err or "usage:" in o.err, o.err


def test_bad_options_in_process(small_clip: Path, tmp_path: Path) -> None:
    for i, (flags, code) in enumerate(BAD_OPTIONS):
        folder = tmp_path / str(i)
        folder.mkdir()
        _bad_option_case(small_clip, folder, flags, code, run_main)


@pytest.mark.parametrize("index", BAD_OPTIONS_CLI)
def test_bad_options_cli(small_clip: Path, tmp_path: Path, index: int) -> None:
    flags, code = BAD_OPTIONS[index]
    _bad_option_case(small_clip, tmp_path, flags, code, run_cli)


BAD_COMMANDS = [
    (["batch", "{clip}", "-o", "{out}/b", "--strength", "nan"], 2),
    (["batch", "{clip}", "-o", "{out}/b", "--workers", "0"], 2),
    (["batch", "{clip}", "-o", "{out}/b", "--segments", "0"], 2),
    (["batch", "/dev/zero", "-o", "{out}/b"], 1),
    (["denoise", "/dev/zero", "-o", "{out}/o.mp4"], 1),
    (["denoise", "{clip}", "-o", "{out}/o.xyz"], 2),
    (["denoise", "{clip}", "-o", "{out}/nofolder/o.mp4"], 1),
    (["denoise", "{clip}", "-o", "{out}"], 2),          # a folder where a file is expected
    (["eval", "--synthetic", "1", "--size", "8x8", "--out", "{out}/e"], 2),
    (["live", "--source", "/dev/zero", "--record", "{out}/r.mp4", "--preview", "off"], 1),
    (["nosuchcommand"], 2),
]
BAD_COMMANDS_CLI = [0, 4, 10]      # these also run as subprocesses


def _bad_command_case(clip: Path, folder: Path, args: list[str], code: int, runner: object) -> None:
    argv = [a.format(clip=clip, out=folder) for a in args]
    o = runner(argv)  # type: ignore[operator]
    check_contract(o, {code}, {}, snapshot(folder), set(), " ".join(args))


def test_bad_commands_in_process(small_clip: Path, tmp_path: Path) -> None:
    for i, (args, code) in enumerate(BAD_COMMANDS):
        folder = tmp_path / str(i)
        folder.mkdir()
        _bad_command_case(small_clip, folder, args, code, run_main)


@pytest.mark.parametrize("index", BAD_COMMANDS_CLI)
def test_bad_commands_cli(small_clip: Path, tmp_path: Path, index: int) -> None:
    args, code = BAD_COMMANDS[index]
    _bad_command_case(small_clip, tmp_path, args, code, run_cli)


# -- the API: bad arrays ---------------------------------------------------------------------


def bad_arrays(rng: np.random.Generator, n: int) -> Iterator[object]:
    """Arrays of every odd shape, dtype and content, and things that are not arrays at all."""
    fixed: list[object] = [
        np.zeros((0, 0, 3), np.uint8), np.zeros((0, 7, 3), np.uint8), np.zeros((5, 0, 3), np.uint8),
        np.zeros((1, 1, 3), np.uint8), np.zeros((1, 2, 3), np.uint8), np.zeros((3, 1, 3), np.uint8),
        np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 1), np.uint8),
        np.zeros((2, 4, 4, 3, 1), np.uint8), np.zeros((), np.uint8), np.full((4, 4, 3), np.nan, np.float32),
        np.zeros((4, 4, 3), np.float64), np.zeros((4, 4, 3), np.int64), np.zeros((4, 4, 3), bool),
        np.zeros((9, 7, 3), np.uint16), np.zeros((9, 7, 3), np.uint8)[:, ::2], np.zeros((8, 6, 3), np.uint8).T,
        (np.zeros((4, 4), np.uint8), np.zeros((2, 2), np.uint8)), (np.zeros((4, 4), np.uint8),) * 3,
        (np.zeros((0, 0), np.uint8),) * 3, "a string", None, 3.5, [[1, 2, 3]],
    ]
    yield from fixed
    dtypes = [np.uint8, np.uint16, np.int8, np.float32, np.float16]
    for _ in range(n):
        ndim = int(rng.integers(1, 5))
        shape = tuple(int(x) for x in rng.integers(0, 9, ndim))
        dtype = dtypes[int(rng.integers(len(dtypes)))]
        a = (rng.random(shape) * 300 - 20).astype(dtype) if np.prod(shape) else np.zeros(shape, dtype)
        yield a


def check_api(frame: object) -> None:
    """The Denoiser either denoises `frame` into the same shape and dtype or raises ConfigError."""
    from streamdn import Denoiser
    from streamdn.errors import ConfigError

    with Denoiser("classical:gaussian") as dn:
        try:
            out = dn(frame)
        except ConfigError:
            return
        if isinstance(frame, np.ndarray):
            assert isinstance(out, np.ndarray) and out.shape == frame.shape and out.dtype == frame.dtype


def test_api_bad_arrays() -> None:
    rng = np.random.default_rng(0)
    for frame in bad_arrays(rng, 60):
        with alarm(ALARM):
            try:
                check_api(frame)
            except Exception as err:  # noqa: BLE001 - the case fails with the input shown
                shape = getattr(frame, "shape", type(frame).__name__)
                pytest.fail(f"Denoiser()({shape} {getattr(frame, 'dtype', '')}) raised {type(err).__name__}: {err}")


# -- the long seeded run (release checks) ----------------------------------------------------


@pytest.mark.fuzz_long
def test_fuzz_long(bases: dict[str, bytes], odd_clips: dict[str, Path], tmp_path: Path) -> None:
    """LONG_CASES damaged inputs (in process; one in ten as a subprocess) from LONG_SEED, then as
    many random arrays through the API."""
    rng = random.Random(LONG_SEED)
    for i in range(LONG_CASES):
        seed = rng.randrange(1 << 30)
        folder = tmp_path / str(i)
        src, out, what = damaged_case(bases, folder, seed, existing=i % 3 == 0)
        before = snapshot(folder / "out")
        args = ["denoise", str(src), "-o", str(out), *FAST, "--overwrite"]
        o = run_cli(args) if i % 10 == 0 else run_main(args)
        check_damaged(o, out, before, snapshot(folder / "out"), True, what)
    np_rng = np.random.default_rng(LONG_SEED)
    for frame in bad_arrays(np_rng, LONG_CASES):
        with alarm(ALARM):
            check_api(frame)
