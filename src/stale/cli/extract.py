"""``stale extract VIDEO_OR_DIR... --out DIR``: CLIP image features of your own videos.

Writes ``<prefix><stem>.npy`` (T, C) per video, ``extract_meta.json`` and a ``videos.json``
annotation stub (subset ``testing``) for ``stale predict``; see :mod:`stale.pipeline.extract` and
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
    parser.add_argument("--workers", type=int, default=0,
                        help="processes decoding and preprocessing videos for the image tower (default 0: "
                             "this process); the features are the same bytes either way")
    parser.add_argument("--fps", type=float, default=None,
                        help="resample every video to this constant frame rate before taking clips "
                             "(default: each video's own rate)")
    from stale.data.features.rate import EXTRACT_PRESETS

    parser.add_argument("--convention", default=None, choices=sorted(EXTRACT_PRESETS),
                        help="sampling preset, sets --clip-frames/--stride/--fps: "
                             + "; ".join(f"{c.name}: {c.clip_frames} frames every {c.stride} at {c.fps:g} fps "
                                         f"({c.rate:g} features/s)" for c in EXTRACT_PRESETS.values())
                             + " (docs/extract.md)")
    parser.add_argument("--shards", type=int, default=None, metavar="N",
                        help="submit all N shards as jobs of --launcher (instead of running one with --shard)")
    parser.add_argument("--launcher", default="local", choices=["local", "slurm", "submitit-local"],
                        help="with --shards: local processes, Slurm jobs through submitit, or submitit's "
                             "local executor (the launcher of stale experiment)")
    parser.add_argument("--partition", default=None, help="Slurm partition (with --shards)")
    parser.add_argument("--time", type=int, default=60, help="Slurm time limit per shard, minutes")
    parser.add_argument("--gpus-per-job", type=int, default=0, help="Slurm GPUs per shard")
    parser.add_argument("--cpus-per-job", type=int, default=2, help="Slurm CPUs per shard")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bf16"],
                        help="image tower precision: auto = bf16 weights and inputs where the CPU/GPU has "
                             "native bf16 matrix units (~3.7x faster, features at cosine >= 0.999), else "
                             "float32 (default %(default)s)")


def run(args) -> int:
    import sys

    from stale.api import extract

    summary = extract(args.inputs, args.out, args.weights, args.arch, args.clip_frames, args.stride,
                      args.frames_per_clip, args.batch_size, args.device, args.prefix, args.overwrite,
                      args.skip_bad, args.allow_truncated, args.seed, args.threads, not args.no_progress,
                      shard=args.shard, workers=args.workers, fps=args.fps, convention=args.convention,
                      shards=args.shards, launcher=args.launcher, partition=args.partition, time=args.time,
                      gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job, precision=args.precision)
    shard = f"shard {args.shard}: " if args.shard else (f"{args.shards} shards: " if args.shards else "")
    print(f"{shard}{summary.line()}; features, extract_meta.json and videos.json in {args.out}")
    for path, reason in summary.bad.items():
        print(f"  skipped {path}: {reason}", file=sys.stderr)
    return 0
