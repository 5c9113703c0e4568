"""``stale train CONFIG [--set key=value ...] --out RUN_DIR [--resume | --overwrite]`` and
``stale train CONFIG --profile [--profile-steps N] [--out DIR [--overwrite]]``."""

HELP = "train STALE on the seen classes (or all classes) of a config"


def add_arguments(parser):
    parser.add_argument("config", help="YAML run config, or the name of a shipped one (stale config list)")
    parser.add_argument("--out", default=None,
                        help="run folder for checkpoints and logs (required unless --profile; with "
                             "--profile: where profile.md and profile_trace.json are written)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=5 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again in --out; the old run is moved aside to OUT.old-<time>, never deleted")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: train.threads)")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: train.device)")
    parser.add_argument("--profile", action="store_true",
                        help="profile one warm-up and N training steps (torch profiler) and print a "
                             "per-module table; trains nothing, writes nothing without --out")
    parser.add_argument("--profile-steps", type=int, default=2, metavar="N",
                        help="measured steps of --profile after the warm-up step (default 2)")


#: TextEncoderConfig.arch's default, for the pre-flight check before torch is imported (tested equal)
DEFAULT_TEXT_ARCH = "ViT-B-16"


def preflight(config: str, overrides: list[str]) -> None:
    """Fail within a second when the config's CLIP text weights are a tag that cannot be
    downloaded (offline, hub unreachable, nothing cached), before importing torch and open_clip.
    Reads the raw YAML tree; any problem with it is left to the full config loader."""
    from stale.core.config import apply_overrides, find_config, load_yaml_tree
    from stale.core.errors import StaleError
    from stale.core.hub import preflight_weights

    try:
        raw = apply_overrides(load_yaml_tree(find_config(config)), overrides)
    except StaleError:
        return
    text = raw.get("text") if isinstance(raw, dict) else None
    text = text if isinstance(text, dict) else {}
    arch, weights = text.get("arch", DEFAULT_TEXT_ARCH), text.get("weights")
    if isinstance(arch, str) and (weights is None or isinstance(weights, str)):
        preflight_weights(arch, weights, "text encoder weights")


def run(args):
    from stale.core.errors import StaleError

    if args.out is None and not args.profile:
        raise StaleError("--out is required (the run folder), unless --profile")
    if args.profile and args.resume:
        raise StaleError("--profile and --resume do not go together: a profile starts from a fresh model")
    if args.profile and args.profile_steps < 1:
        raise StaleError(f"--profile-steps must be >= 1, got {args.profile_steps}")
    from stale.core.config import option_overrides

    overrides = option_overrides(args.overrides, train_threads=args.threads, train_device=args.device)
    if not args.resume:
        preflight(args.config, overrides)
    from stale.pipeline.config import load_run_config
    from stale.pipeline.train import run_training

    cfg = load_run_config(args.config, overrides)
    if args.profile:
        from stale.pipeline.profile import profile_training

        print(profile_training(cfg, args.profile_steps, args.out, args.overwrite), end="")
        return 0
    run_training(cfg, args.out, resume=args.resume, overwrite=args.overwrite)
    return 0
