"""`stale splits`: show, validate and draw zero-shot class splits."""

from __future__ import annotations

HELP = "show, validate or draw zero-shot class splits (seen/unseen classes)"


def add_arguments(parser):
    sub = parser.add_subparsers(dest="splits_command", metavar="ACTION", required=True)

    p = sub.add_parser("show", help="print the seen and unseen classes of a standard split")
    p.add_argument("dataset", help="thumos14 or activitynet")
    p.add_argument("setting", help="75 (75/25) or 50 (50/50)")
    p.add_argument("index", type=int, help="split index 0..9")

    p = sub.add_parser("validate", help="check splits against the classes of an annotation file")
    p.add_argument("dataset", nargs="?", help="thumos14 or activitynet (a standard split)")
    p.add_argument("setting", nargs="?", help="75 or 50")
    p.add_argument("index", nargs="?", help="split index 0..9, or 'all' (default)")
    p.add_argument("--seen", help="file of seen class names (user-defined split; with --unseen)")
    p.add_argument("--unseen", help="file of unseen class names (user-defined split; with --seen)")
    p.add_argument("--annotations", help="annotation file or folder (default: the packaged one)")

    p = sub.add_parser("random", help="draw a seeded random split and write train/test lists")
    p.add_argument("--annotations", required=True, help="annotation file or folder giving the classes")
    p.add_argument("--unseen", type=float, default=0.25, help="fraction of unseen classes (default 0.25)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, help="output folder for train.list (seen) and test.list (unseen)")
    p.add_argument("--overwrite", action="store_true", help="replace existing train.list / test.list")


def _show(args) -> int:
    from stale.api import splits

    split = splits(args.dataset, args.setting, args.index)
    print(f"{split.name}")
    print(f"seen ({len(split.seen)}):")
    for n in split.seen:
        print(f"  {n}")
    print(f"unseen ({len(split.unseen)}):")
    for n in split.unseen:
        print(f"  {n}")
    return 0


def _validate(args) -> int:
    from stale.api import splits_validate

    for split, num_classes in splits_validate(args.dataset, args.setting, args.index, args.seen, args.unseen,
                                              args.annotations):
        print(f"ok {split.name}: {len(split.seen)} seen + {len(split.unseen)} unseen = {num_classes} classes")
    return 0


def _random(args) -> int:
    from stale.api import splits_random

    split, train, test = splits_random(args.annotations, args.out, args.unseen, args.seed, args.overwrite)
    print(f"{split.name}: {len(split.seen)} seen -> {train}, {len(split.unseen)} unseen -> {test}")
    return 0


def run(args) -> int:
    return {"show": _show, "validate": _validate, "random": _random}[args.splits_command](args)
