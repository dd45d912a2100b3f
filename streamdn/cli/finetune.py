"""`streamdn finetune`: its flags and how it runs (the work itself is streamdn.tools.finetune for
the video networks, streamdn.tools.finetune_photo for the still-image network and bursts).

    streamdn finetune night1.mp4 night2.mp4 --base fast -o night.safetensors --minutes 10
    streamdn denoise night3.mp4 -o clean.mp4 --model night.safetensors
    streamdn finetune bursts/night1 bursts/night2 --base photo -o stills.safetensors
"""

from __future__ import annotations

import argparse
import sys

from streamdn.cli.args import EXIT_INTERRUPTED, EXIT_OK
from streamdn.tools.footage import FootageConfig
from streamdn.errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Adds `streamdn finetune` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "finetune", help="teach a network your own footage's noise (no clean frames needed)",
        description="Fine-tune a network on your own noisy videos, with no clean reference: each output is "
                    "scored against the next frame, aligned along the motion (its noise is new to the "
                    "network). With --base photo (the still-image network) the footage is bursts instead: "
                    "folders of hand-held shots of one scene, each shot scored against the next one aligned "
                    "onto it. The last part of each video (the last shots of each burst) is held out to check "
                    "the result; the new weights "
                    "are kept only if they beat the base there, else the output holds the base unchanged. "
                    "Writes OUT.safetensors (use it with --model OUT.safetensors) and its card OUT.md; "
                    "checkpoints in OUT.safetensors.run/, so the same command continues a stopped run. "
                    "Footage that moves little (a webcam, a tripod) works best; noise must change from "
                    "frame to frame (not a fixed pattern or a frozen compression artefact).",
        epilog="examples: streamdn finetune night1.mp4 night2.mp4 -o night.safetensors\n"
               "          streamdn finetune footage/ --base fast_mc -o mine.safetensors --minutes 20\n"
               "          streamdn finetune bursts/night1 bursts/night2 --base photo -o stills.safetensors\n"
               "          streamdn denoise night3.mp4 -o clean.mp4 --model night.safetensors",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("footage", nargs="+", metavar="VIDEO",
                   help="noisy videos from the camera to learn (folders: every video below them); with --base "
                        "photo, burst folders (each: two or more shots of one scene)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.safetensors", help="the fine-tuned weights")
    p.add_argument("--base", default="fast", metavar="MODEL",
                   help="network to start from: fast (default), fast_mc, photo or a .safetensors file")
    p.add_argument("--minutes", type=float, default=10.0, metavar="M",
                   help="wall time of the whole run, reading and checking included (default %(default)g)")
    p.add_argument("--windows", type=int, default=FootageConfig.windows, metavar="N",
                   help="stretches of footage to learn from, spread evenly over it (default %(default)s; "
                        f"each holds {FootageConfig.frames + 1} frames of a {2 * FootageConfig.region}-pixel square)")
    p.add_argument("--lr", type=float, default=2e-4, help="learning rate (default %(default)g)")
    p.add_argument("--rehearsal", type=float, default=0.5, metavar="R",
                   help="synthetic clips with known clean frames mixed into each step, per footage crop, so "
                        "the network keeps what it knew (default %(default)g; 0: footage only)")
    p.add_argument("--device", default="auto", metavar="DEVICE",
                   help="auto (a CUDA GPU when present, default), cpu, cuda or cuda:N")
    p.add_argument("--json", metavar="FILE.json", help="also write the run's figures here")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    """Runs `streamdn finetune` from parsed arguments; returns the exit code."""
    from streamdn.atomic import write_json
    from streamdn.tools.finetune import FinetuneConfig, finetune
    from streamdn.tools.finetune_photo import finetune_photo, is_photo_base

    if args.rehearsal < 0:
        raise ConfigError(f"--rehearsal {args.rehearsal}: give 0 or more.")
    if args.windows < 2:
        raise ConfigError(f"--windows {args.windows}: need at least 2 (one to train on, one to check).")
    cfg = FinetuneConfig(base=args.base, out=args.output, minutes=args.minutes, lr=args.lr,
                         rehearsal=args.rehearsal, device=args.device,
                         footage=FootageConfig(windows=args.windows))
    try:
        res = (finetune_photo if is_photo_base(args.base) else finetune)(args.footage, cfg, quiet=args.quiet)
    except KeyboardInterrupt:
        print("streamdn: interrupted; run the same command again to continue.", file=sys.stderr)
        return EXIT_INTERRUPTED
    s = res.summary
    loss = s["held_out_loss"]
    if res.steps == 0:
        print(f"wrote {res.out} with {s['base']}'s weights unchanged: no time was left to train after reading the "
              f"footage; give more --minutes.", file=sys.stderr)
    elif res.improved:
        print(f"wrote {res.out} (card {res.card}): held-out loss {loss['change']:+.1%} against {s['base']} "
              f"(lower is better; most of it is the footage's own noise); "
              f"{res.steps} steps, {res.train_seconds / 60:.1f} min", file=sys.stderr)
    else:
        print(f"wrote {res.out} (card {res.card}) with {s['base']}'s weights unchanged: fine-tuning did not beat "
              f"it on the held-out footage ({res.steps} steps, {res.train_seconds / 60:.1f} min); more footage or "
              f"more minutes may help.", file=sys.stderr)
    if args.json:
        write_json(args.json, s)
    return EXIT_OK
