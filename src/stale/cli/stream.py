"""``stale stream SOURCE --classes "a,b" [--run RUN] [--weights CLIP] [--out FILE.jsonl]``.

Online detection on a live source (a camera, a URL, a file; ``--realtime`` plays a file as if
live): each detection is printed as a JSON line as soon as it is final (or appended to
``--out``), with an SRT of all of them; see :mod:`stale.pipeline.stream` and docs/stream.md.
Exit status 0 when the source ends (also by a stall or a decoding error, named in the summary
line), 130 on Ctrl-C (everything emitted so far is written), 2 for bad input.
"""

from __future__ import annotations

HELP = "detect named actions online in a live source (camera, URL, file), emitting each detection once final"


def add_arguments(parser) -> None:
    parser.add_argument("source", metavar="SOURCE",
                        help="a video file, a URL (rtsp://, http://, udp://...) or a device PyAV opens "
                             "(with --input-format, e.g. v4l2 /dev/video0)")
    parser.add_argument("--classes", required=True,
                        help='class names: "a,b,c" (free text, multi-word allowed) or @FILE (one per line, or a JSON list)')
    parser.add_argument("--run", default=None,
                        help="a trained run folder or checkpoint (default: the training-free CLIP detector)")
    parser.add_argument("--weights", default=None,
                        help="CLIP checkpoint, open_clip tag (default: openai) or 'random' (TESTS ONLY); without "
                             "--run its text tower is used too")
    parser.add_argument("--arch", default="ViT-B-16", help="open_clip architecture (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --weights random (default 0)")
    parser.add_argument("--out", default=None,
                        help="JSON-lines file of the detections, appended and flushed line by line "
                             "(default: JSON lines on stdout)")
    parser.add_argument("--srt", default=None,
                        help="SubRip file of all detections so far, rewritten atomically (default: --out with .srt)")
    parser.add_argument("--subtitle-min-score", type=float, default=0.0, help="lowest score written to the SRT (default 0)")
    parser.add_argument("--window", type=float, default=60.0,
                        help="seconds of the causal window the detector sees (default %(default)s; the longest "
                             "reportable action is window - margin)")
    parser.add_argument("--hop", type=float, default=2.0, help="seconds between detector runs (default %(default)s)")
    parser.add_argument("--margin", type=float, default=4.0,
                        help="seconds seen after a detection's end before it is final (default %(default)s)")
    parser.add_argument("--repeat-iou", type=float, default=0.5,
                        help="tIoU at which a detection repeats an emitted one of its label (default %(default)s)")
    parser.add_argument("--realtime", action="store_true", help="pace a file at its frame rate (tests, demos)")
    parser.add_argument("--input-format", default=None, help="FFmpeg input format of a device or pipe (v4l2, mpegts, ...)")
    parser.add_argument("--queue", type=int, default=16, help="clips waiting for the image tower at most (default %(default)s)")
    parser.add_argument("--backpressure", default="auto", choices=("auto", "skip", "block"),
                        help="when the tower falls behind: skip clips (counted) or block the reader; auto: block "
                             "for a file read unpaced, skip otherwise")
    parser.add_argument("--stall-timeout", type=float, default=30.0,
                        help="seconds without a frame after which the stream ends as at its end (default %(default)s)")
    parser.add_argument("--clip-frames", type=int, default=16, help="frames per snippet (default %(default)s)")
    parser.add_argument("--stride", type=int, default=16, help="frames between snippet starts (default %(default)s)")
    parser.add_argument("--frames-per-clip", type=int, default=1,
                        help="frames encoded and averaged per snippet (default 1: the centre frame)")
    parser.add_argument("--batch-size", type=int, default=8, help="most clips per image-tower pass (default %(default)s)")
    parser.add_argument("--device", default="auto", help="torch device (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS, else all cores)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="detector setting, as stale detect --set")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out / --srt")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bf16"],
                        help="image tower and --run network precision: auto = bf16 weights and activations "
                             "where the CPU/GPU has native bf16 matrix units, else float32 (default %(default)s)")


def run(args) -> int:
    import json
    import sys

    from stale.api import stream

    st = stream(args.source, args.classes, run=args.run, weights=args.weights, arch=args.arch, out=args.out,
                srt=args.srt, overwrite=args.overwrite, threads=args.threads, seed=args.seed,
                subtitle_min_score=args.subtitle_min_score, window=args.window, hop=args.hop, margin=args.margin,
                repeat_iou=args.repeat_iou, realtime=args.realtime, input_format=args.input_format,
                queue=args.queue, backpressure=args.backpressure, stall_timeout=args.stall_timeout,
                clip_frames=args.clip_frames, stride=args.stride, frames_per_clip=args.frames_per_clip,
                batch_size=args.batch_size, device=args.device, overrides=list(args.overrides),
                precision=args.precision)
    status = 0
    try:
        with st:
            for det in st:
                if args.out is None:
                    print(json.dumps(det.to_dict()), flush=True)
    except KeyboardInterrupt:   # the outputs hold everything emitted so far (the stream closed itself)
        status = 130
        st.summary.ended = "interrupted"
    print(f"stale stream: {st.summary.line()}", file=sys.stderr)
    if st.summary.frames_skipped:
        print(f"stale stream: warning: {st.summary.frames_skipped} frames ({st.summary.clips_skipped} clips) skipped "
              f"because the image tower fell behind; raise --stride or --hop, or use a GPU", file=sys.stderr)
    return status
