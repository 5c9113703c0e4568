"""``stale train CONFIG.yaml [--set key=value ...] --out RUN_DIR [--resume]``."""

HELP = "train STALE on the seen classes (or all classes) of a config"


def add_arguments(parser):
    parser.add_argument("config", help="YAML run config (see configs/)")
    parser.add_argument("--out", required=True, help="run folder for checkpoints and logs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=5 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")


def run(args):
    import logging

    from stale.config import load_run_config
    from stale.training import run_training

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_run_config(args.config, args.overrides)
    run_training(cfg, args.out, resume=args.resume)
    return 0
