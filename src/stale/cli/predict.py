"""``stale predict RUN_DIR --annotations FILE --subset NAME --out PRED.json [...]``."""

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
                        help="also write the ground truth restricted to these classes and videos "
                             "(official layout, for stale evaluate)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an inference setting, e.g. --set inference.top_k=20")
    parser.add_argument("--fuse-video-scores", default=None, metavar="JSON",
                        help="REPRODUCTION ONLY: relabel with an external closed-set classifier's "
                             "video scores {video: {class: score}}; output marked as not zero-shot")


def _classes(spec):
    from pathlib import Path

    from stale.errors import StaleError

    if spec is None:
        return None
    if spec.startswith("@"):
        path = Path(spec[1:])
        if not path.is_file():
            raise StaleError(f"class file not found: {path}")
        names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    else:
        names = [n.strip() for n in spec.split(",")]
    names = [n for n in names if n]
    if not names:
        raise StaleError("--classes gave no class names")
    return names


def run(args):
    import logging

    from stale.data.annotations import AnnotationPolicy, load_annotations
    from stale.engine import resolve_device
    from stale.inference import load_run, run_prediction

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_ = load_run(args.run, resolve_device(args.device), args.overrides)
    cfg = run_.cfg
    path = args.annotations or cfg.data.annotation_path()
    ann = load_annotations(path, policy=AnnotationPolicy(blocked=tuple(cfg.data.blocked),
                                                         exclude_videos=tuple(cfg.data.exclude_videos)))
    run_prediction(run_, ann, args.subset or cfg.data.test_subset, args.out, args.features,
                   _classes(args.classes), args.all_videos, args.batch_size,
                   args.fuse_video_scores, args.gt_out)
    return 0
