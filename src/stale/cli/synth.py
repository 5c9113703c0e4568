"""``stale synth``: write a semi-synthetic zero-shot TAD dataset in the real on-disk formats."""

from __future__ import annotations

HELP = "generate a semi-synthetic THUMOS14/ActivityNet-layout dataset (annotations + .npy features)"

# CLI flag -> RenderConfig field (difficulty knobs; defaults live in the dataclass)
KNOB_FLAGS = {
    "noise": "noise", "instance-variation": "instance_variation",
    "boundary-softness": "boundary_softness", "distractor-rate": "distractor_rate",
}


def add_arguments(parser) -> None:
    parser.add_argument("--layout", default=None, choices=["thumos14", "activitynet"],
                        help="dataset layout (required unless --preset)")
    from stale.synth.presets import PRESETS

    parser.add_argument("--preset", default=None, choices=list(PRESETS),
                        help="a built-in benchmark setting (stale.synth.presets; THUMOS14 layout); other "
                             "options then change it")
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=None, help="feature dimension (default 256)")
    parser.add_argument("--max-videos-per-subset", type=int, default=None,
                        help="keep at most N videos of each subset (seeded draw)")
    parser.add_argument("--subsets", default=None,
                        help="comma-separated subsets as spelled in the source file "
                             "(default: Validation,Test / training,validation)")
    for flag, name in KNOB_FLAGS.items():
        parser.add_argument(f"--{flag}", type=float, default=None, dest=name,
                            help=f"difficulty knob render.{name} (see docs/synth.md)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any config field, e.g. render.bg_drift=0.3 or encoder.hidden_dim=256")
    parser.add_argument("--text-weights", default=None, help="text-encoder weights (default: the offline tower)")
    parser.add_argument("--template", default="a video of {}.", help="prompt template for class names")
    parser.add_argument("--stats", action="store_true", help="also measure and print difficulty statistics")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a folder holding other files or another synthetic dataset "
                             "(same-named annotations.json, synth_meta.json and features are replaced)")


def run(args) -> int:
    import json

    from pathlib import Path

    from stale.core.config import apply_overrides, from_dict, to_dict
    from stale.core.errors import StaleError
    from stale.core.io import remove_stale_temp_files
    from stale.synth.generate import SynthConfig, SynthDataset, check_synth_folder, default_embed_fn

    if args.preset is None and args.layout is None:
        raise StaleError("give --layout thumos14|activitynet or --preset NAME")
    if args.preset is not None:
        from stale.synth.presets import preset

        data = to_dict(preset(args.preset))
        if args.layout is not None:
            data["layout"] = args.layout
        data["seed"] = args.seed
    else:
        data = to_dict(SynthConfig())
        data.update(layout=args.layout, seed=args.seed)
    if args.dim is not None:
        data["dim"] = args.dim
    if args.max_videos_per_subset is not None:
        data["max_videos_per_subset"] = args.max_videos_per_subset
    if args.subsets:
        data["subsets"] = [s.strip() for s in args.subsets.split(",") if s.strip()]
    for name in KNOB_FLAGS.values():
        if getattr(args, name) is not None:
            data["render"][name] = getattr(args, name)
    cfg = from_dict(SynthConfig, apply_overrides(data, args.set))
    if args.template.count("{}") != 1:
        raise StaleError(f"--template must contain '{{}}' exactly once, for the class name, got {args.template!r}")
    out = Path(args.out)
    # the folder is checked before the class names are embedded and anything is rendered
    check_synth_folder(out, args.overwrite, to_dict(cfg))
    remove_stale_temp_files(out)
    remove_stale_temp_files(out / "features")

    ds = SynthDataset(cfg, default_embed_fn(args.text_weights, args.template))
    meta = ds.write(out, text_info={"weights": args.text_weights, "template": args.template},
                    overwrite=args.overwrite)
    c = meta["counts"]
    print(f"wrote {c['videos']} videos ({cfg.layout}, dim {cfg.dim}, seed {cfg.seed}) to {args.out}; "
          f"{c['distractors']} distractor segments, {c['zero_length_segments']} zero-length segments not rendered")
    if args.stats:
        from stale.synth.stats import difficulty_stats

        print(json.dumps(difficulty_stats(ds), indent=1))
    return 0
