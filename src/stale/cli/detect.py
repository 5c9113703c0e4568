"""``stale detect VIDEO_OR_DIR... --classes "a,b" --out DIR [--run RUN] [--weights CLIP]``.

Video files in, detections a person can look at out: features (cached), detections, CSV,
subtitles, timelines and an HTML report; see :mod:`stale.pipeline.detect_videos` and docs/detect.md.
"""

from __future__ import annotations

HELP = "detect named actions in video files (features, detections JSON/CSV/SRT, timelines, HTML report)"


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="VIDEO_OR_DIR",
                        help="video files, or folders whose video files are all taken")
    parser.add_argument("--classes", required=True,
                        help='class names: "a,b,c" (free text, multi-word allowed) or @FILE (one per line, or a JSON list)')
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--run", default=None,
                        help="a trained run folder or checkpoint (default: the training-free CLIP detector)")
    parser.add_argument("--weights", default=None,
                        help="CLIP checkpoint (OpenAI .pt archive, open_clip state dict, .safetensors), an open_clip "
                             "tag (default: openai; downloaded once when online), or 'random' (TESTS ONLY); "
                             "without --run its text tower is used too")
    parser.add_argument("--arch", default="ViT-B-16",
                        help="open_clip architecture (default %(default)s; ViT-B-16-quickgelu for OpenAI "
                             "weights in open_clip format)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --weights random (default 0)")
    parser.add_argument("--clip-frames", type=int, default=16, help="frames per snippet (default %(default)s)")
    parser.add_argument("--stride", type=int, default=16, help="frames between snippet starts (default %(default)s)")
    parser.add_argument("--frames-per-clip", type=int, default=1,
                        help="frames encoded and averaged per snippet (default 1: the centre frame)")
    parser.add_argument("--batch-size", type=int, default=64, help="frames per image-tower pass (default %(default)s)")
    parser.add_argument("--device", default="auto", help="torch device (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS, else all cores)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="detector setting: without --run a training-free detector field (temperature=0.02, "
                             "segments.smooth=9); with --run an inference setting (inference.top_k=20)")
    parser.add_argument("--windows", action="store_true",
                        help="with --run: slide overlapping windows over each video and merge their detections "
                             "(for long videos with a run trained in resize mode; docs/windows.md)")
    parser.add_argument("--subtitle-top", type=int, default=10, help="best detections per video in the .srt (default 10)")
    parser.add_argument("--subtitle-min-score", type=float, default=0.0,
                        help="lowest score written to the .srt (default 0)")
    parser.add_argument("--timeline-top", type=int, default=10, help="detections drawn per video in the PNG (default 10)")
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable videos (listed) instead of failing")
    parser.add_argument("--allow-truncated", action="store_true",
                        help="keep the decodable part of a truncated video (counted) instead of failing")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace outputs made with other settings (or not by stale detect)")
    parser.add_argument("--serve", action="store_true", help="afterwards, serve the report on localhost until Ctrl-C")
    parser.add_argument("--port", type=int, default=0, help="port of --serve (default: any free one)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bf16"],
                        help="image tower and --run network precision: auto = bf16 weights and activations "
                             "where the CPU/GPU has native bf16 matrix units, else float32 (default %(default)s)")


def run(args) -> int:
    from stale.api import detect

    res = detect(args.inputs, args.classes, args.out, run=args.run, weights=args.weights, arch=args.arch,
                 overwrite=args.overwrite, threads=args.threads, seed=args.seed, clip_frames=args.clip_frames,
                 stride=args.stride, frames_per_clip=args.frames_per_clip, batch_size=args.batch_size,
                 device=args.device, overrides=list(args.overrides), subtitle_top=args.subtitle_top,
                 subtitle_min_score=args.subtitle_min_score, timeline_top=args.timeline_top, skip_bad=args.skip_bad,
                 allow_truncated=args.allow_truncated, progress=not args.no_progress,
                 windows=args.windows, precision=args.precision)
    n = sum(len(v) for v in res.results.values())
    print(f"{n} detections in {len(res.results)} videos ({res.detector})")
    for vid, t in res.timings.items():
        cached = " (features cached)" if t["cached_features"] else ""
        print(f"  {vid}: decode {t['decode']:.2f} s, features {t['features']:.2f} s, detection "
              f"{t['detection']:.3f} s{cached}")
    for path, reason in res.skipped.items():
        print(f"  skipped {path}: {reason}")
    print(f"report: {res.files['report']}  (also detections.json, detections.csv, subtitles/, timelines/)")
    if args.serve:
        from stale.reporting.serve import serve

        serve(res.files["report"], list(res.sources.values()), port=args.port)
    return 0
