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


def _classes(annotations, dataset):
    from stale.data import resources
    from stale.data.annotations import load_annotations
    from stale.core.errors import StaleError

    if annotations is None:
        if dataset is None:
            raise StaleError("give --annotations FILE (or a dataset name to use the packaged file)")
        annotations = resources.annotations_path(dataset)
    return load_annotations(annotations).classes()


def _show(args) -> int:
    from stale.data.splits import load_split

    split = load_split(args.dataset, args.setting, args.index)
    print(f"{split.name}")
    print(f"seen ({len(split.seen)}):")
    for n in split.seen:
        print(f"  {n}")
    print(f"unseen ({len(split.unseen)}):")
    for n in split.unseen:
        print(f"  {n}")
    return 0


def _validate(args) -> int:
    from stale.data.splits import NUM_SPLITS, canonical_dataset, load_split, read_split_files, validate_split
    from stale.core.errors import StaleError

    if (args.seen is None) != (args.unseen is None):
        raise StaleError("give both --seen and --unseen for a user-defined split")
    dataset = canonical_dataset(args.dataset) if args.dataset else None
    if args.seen is not None:
        splits = [read_split_files(args.seen, args.unseen)]
    else:
        if dataset is None or args.setting is None:
            raise StaleError("give DATASET SETTING [INDEX|all], or --seen and --unseen files")
        if args.index in (None, "all"):
            indices = range(NUM_SPLITS)
        elif str(args.index).isdigit():
            indices = [int(args.index)]
        else:
            raise StaleError(f"split index must be 0..{NUM_SPLITS - 1} or 'all', got {args.index!r}")
        splits = [load_split(dataset, args.setting, i) for i in indices]
    classes = _classes(args.annotations, dataset)
    for split in splits:
        validate_split(split, classes)
        print(f"ok {split.name}: {len(split.seen)} seen + {len(split.unseen)} unseen = {len(classes)} classes")
    return 0


def _random(args) -> int:
    from pathlib import Path

    from stale.core.io import remove_stale_temp_files
    from stale.core.output_checks import Output, check_outputs
    from stale.data.splits import random_split, write_split

    out = Path(args.out)
    ann = Path(args.annotations).expanduser()
    check_outputs([Output(out, "dir", "--out", exists_ok=True), Output(out / "train.list", "file", "--out"),
                   Output(out / "test.list", "file", "--out")],
                  inputs=[] if ann.is_dir() else [ann], input_dirs=[ann] if ann.is_dir() else [],
                  overwrite=args.overwrite)
    remove_stale_temp_files(out, names=["train.list", "test.list"])
    classes = _classes(args.annotations, None)
    split = random_split(classes, args.unseen, args.seed)
    train, test = write_split(split, args.out)
    print(f"{split.name}: {len(split.seen)} seen -> {train}, {len(split.unseen)} unseen -> {test}")
    return 0


def run(args) -> int:
    return {"show": _show, "validate": _validate, "random": _random}[args.splits_command](args)
