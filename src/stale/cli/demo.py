"""``stale demo [--out DIR]``: train on seen classes, detect unseen ones, score, report."""

HELP = "run the built-in zero-shot demo on the semi-synthetic THUMOS14-layout benchmark"


def add_arguments(parser):
    parser.add_argument("--out", default="stale_demo", help="output folder (data, runs, report)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the benchmark and the training")
    parser.add_argument("--max-videos-per-subset", type=int, default=None,
                        help="use a subsample of the benchmark (faster, noisier numbers)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: OMP_NUM_THREADS, else all cores)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override the demo's run config (stale config show demo)")


def run(args):
    from stale.api import demo

    demo(args.out, args.seed, args.max_videos_per_subset, args.threads, args.overrides)
    return 0
