"""``stale predict RUN_DIR --out PRED.json [--gt-out GT.json] [--classes ...] [...]``."""

HELP = "detect actions of any named classes with a trained run (ActivityNet results format)"


def add_arguments(parser):
    parser.add_argument("run", help="run folder (uses best.pt, else last.pt) or a checkpoint file")
    parser.add_argument("--annotations", default=None,
                        help="annotation file giving the videos and their durations "
                             "(default: the run's data.annotations)")
    parser.add_argument("--subset", default=None, help="subset to predict on (default: the run's data.test_subset)")
    parser.add_argument("--features", default=None, help="feature folder (default: the run's data.features.root)")
    parser.add_argument("--classes", default=None,
                        help="comma-separated class names, or @FILE with one per line "
                             "(default: the run's test classes)")
    parser.add_argument("--all-videos", action="store_true",
                        help="predict on every video of the subset, not only those containing the classes")
    parser.add_argument("--out", required=True, help="results JSON to write")
    parser.add_argument("--gt-out", default=None,
                        help="also write the ground truth of exactly these classes and videos "
                             "(official layout, for stale evaluate)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an inference setting, e.g. --set inference.top_k=20")
    parser.add_argument("--windows", action="store_true",
                        help="slide overlapping windows over each video and merge their detections "
                             "(data.sampling=window; docs/windows.md)")
    parser.add_argument("--fuse-video-scores", default=None, metavar="JSON",
                        help="REPRODUCTION ONLY: relabel with an external closed-set classifier's "
                             "video scores {video: {class: score}}; output marked as not zero-shot")
    parser.add_argument("--precision", default=None, choices=["auto", "float32", "bf16"],
                        help="the network's precision (inference.precision; default: the run's, auto = bf16 "
                             "weights and activations where the CPU/GPU has native bf16 matrix units)")


def run(args):
    from stale.api import predict

    predict(args.run, args.out, subset=args.subset, classes=args.classes, all_videos=args.all_videos,
            gt_out=args.gt_out, batch_size=args.batch_size, device=args.device, threads=args.threads,
            overrides=args.overrides, annotations=args.annotations, features=args.features,
            fuse_video_scores=args.fuse_video_scores, overwrite=args.overwrite, windows=args.windows,
            precision=args.precision)
    return 0
