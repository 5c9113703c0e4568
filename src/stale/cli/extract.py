"""``stale extract VIDEO_OR_DIR... --out DIR``: CLIP image features of your own videos.

Writes ``<prefix><stem>.npy`` (T, C) per video, ``extract_meta.json`` and a ``videos.json``
annotation stub (subset ``testing``) for ``stale predict``; see :mod:`stale.runs.extract` and
docs/extract.md.
"""

from __future__ import annotations

HELP = "extract CLIP image features from video files (-> per-video .npy + videos.json for predict)"


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="VIDEO_OR_DIR",
                        help="video files, or folders whose video files are all taken")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--weights", default=None,
                        help="CLIP checkpoint file (open_clip state dict, .safetensors, OpenAI JIT .pt), "
                             "open_clip tag (default: openai; needs a download unless cached), or "
                             "'random' (seeded random weights: TESTS/BENCHMARKS ONLY)")
    parser.add_argument("--arch", default="ViT-B-16",
                        help="open_clip architecture (default %(default)s; ViT-B-16-quickgelu for "
                             "OpenAI state dicts without a config)")
    parser.add_argument("--clip-frames", type=int, default=16, help="frames per clip (default %(default)s)")
    parser.add_argument("--stride", type=int, default=16, help="frames between clip starts (default %(default)s)")
    parser.add_argument("--frames-per-clip", type=int, default=1,
                        help="evenly spaced frames encoded and averaged per clip (default 1: centre frame)")
    parser.add_argument("--batch-size", type=int, default=64, help="frames per forward pass (default %(default)s)")
    parser.add_argument("--device", default="auto", help="torch device (default: cuda if available)")
    parser.add_argument("--prefix", default="", help='feature file-name prefix, e.g. "v_" (default none)')
    parser.add_argument("--overwrite", action="store_true",
                        help="re-extract videos that already have features, and write into a folder "
                             "holding files stale extract did not make (same-named .npy files are replaced)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip unreadable videos (counted in the summary and meta) instead of failing")
    parser.add_argument("--allow-truncated", action="store_true",
                        help="keep the decodable part of a truncated video (its duration is the decoded "
                             "one; counted in the summary and meta) instead of failing")
    parser.add_argument("--seed", type=int, default=0, help="seed of --weights random (default 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="extract only shard I of N (0 <= I < N; a video's shard is crc32(id) mod N), so "
                             "N jobs (e.g. a Slurm array: --shard $SLURM_ARRAY_TASK_ID/N) fill one --out")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``--shard I/N`` -> (I, N); a malformed value is a one-line error."""
    from stale.core.errors import StaleError

    if text is None:
        return None
    parts = text.split("/")
    try:
        i, n = (int(p) for p in parts)
    except ValueError:
        raise StaleError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise StaleError(f"--shard {text!r}: must be I/N with 0 <= I < N")
    return i, n


def run(args) -> int:
    import sys

    from stale.core.hub import preflight_weights

    preflight_weights(args.arch, args.weights, "CLIP image weights")   # before the slow imports
    from stale.runs.extract import ExtractConfig, check_extract_output, extract_videos
    from stale.text.image import load_image_encoder
    from stale.training.runtime import resolve_device, set_threads

    set_threads(args.threads)
    cfg = ExtractConfig(arch=args.arch, weights=args.weights, clip_frames=args.clip_frames,
                        stride=args.stride, frames_per_clip=args.frames_per_clip,
                        batch_size=args.batch_size, device=str(resolve_device(args.device)),
                        prefix=args.prefix, overwrite=args.overwrite, skip_bad=args.skip_bad,
                        allow_truncated=args.allow_truncated, seed=args.seed,
                        progress=not args.no_progress, shard=parse_shard(args.shard))
    check_extract_output(args.inputs, args.out, cfg)   # before the weights load
    encoder = load_image_encoder(cfg.arch, cfg.weights, cfg.seed)
    if encoder.random:
        print(f"WARNING: image encoder {encoder.description}. These features carry no visual "
              f"meaning; use them for tests and benchmarks only.", file=sys.stderr)
    summary = extract_videos(args.inputs, args.out, cfg, encoder)
    shard = f"shard {cfg.shard[0]}/{cfg.shard[1]}: " if cfg.shard else ""
    print(f"{shard}{summary.line()}; features, extract_meta.json and videos.json in {args.out}")
    for path, reason in summary.bad.items():
        print(f"  skipped {path}: {reason}", file=sys.stderr)
    return 0
