"""``stale features inspect|convert``: look at a feature release, and convert it to the ``.npy``
layout; see :mod:`stale.pipeline.features` and docs/features.md."""

from __future__ import annotations

HELP = "inspect a feature release (videos, channels, lengths, rate) or convert it to per-video .npy files"


def _source_options(p) -> None:
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="a folder of .npy or .csv files, an .h5/.hdf5 file or a .pkl file; several are "
                        "concatenated along channels (e.g. RGB then flow)")
    p.add_argument("--kind", default="auto", choices=["auto", "npy", "csv", "hdf5", "pickle"],
                   help="source format (default: from the path)")
    p.add_argument("--prefix", default="", help='name prefix before the video id, e.g. "v_" (default none)')
    p.add_argument("--suffix", default=None, help="name suffix after the id (default .npy / .csv / none)")
    p.add_argument("--key", default=None,
                   help="entry of a video in an HDF5/pickle file: a pattern in which {id} = <prefix><id><suffix>; "
                        "'/' walks into groups, e.g. '{id}/rgb' (default: the entry named like the video)")
    p.add_argument("--layout", default="auto", choices=["auto", "tc", "ct"],
                   help="tc: (T, C) arrays; ct: channel-first (C, T); auto: (C, T) when --dim is the first axis")
    p.add_argument("--dim", default=None,
                   help="channel count: the total, or one per source (1024,1024); resolves (C, T) arrays")
    p.add_argument("--length-mismatch", default="error", choices=["error", "crop"],
                   help="streams of different lengths: error, or crop to the shortest (default error)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="features_command", metavar="ACTION", required=True)
    p = sub.add_parser("inspect", help="videos found/missing, channels, lengths, feature rate, non-finite values")
    _source_options(p)
    p.add_argument("--annotations", default=None,
                   help="annotation file (any layout stale reads, or builtin:thumos14 / builtin:activitynet): "
                        "videos found / missing / extra and the feature rate their durations imply")
    p.add_argument("--json", action="store_true", help="print the report as JSON (for scripts)")
    p = sub.add_parser("convert", help="write one (T, C) float32 <prefix><id>.npy per video")
    _source_options(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--nonfinite", default="error", choices=["error", "zero"],
                   help="NaN/inf values: error (default), or replace by 0 (counted)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a folder holding other files, replacing same-named .npy files")


def run(args) -> int:
    import json
    import sys

    from stale.api import features_convert, features_inspect
    from stale.core.errors import StaleError
    from stale.core.logs import interactive

    source = dict(kind=args.kind, prefix=args.prefix, suffix=args.suffix, key=args.key, layout=args.layout,
                  dim=args.dim, length_mismatch=args.length_mismatch,
                  progress=not args.no_progress and interactive())
    if args.features_command == "inspect":
        from stale.pipeline.features import format_inspect

        report = features_inspect(args.sources, args.annotations, **source)
        print(json.dumps(report, indent=1) if args.json else format_inspect(report))
        sys.stdout.flush()
        n = report["problems"]["count"]
        if n:
            raise StaleError(f"{n} problem(s) in {report['source']}, first: {report['problems']['examples'][0]}")
        return 0
    summary = features_convert(args.sources, args.out, nonfinite=args.nonfinite, overwrite=args.overwrite, **source)
    print(summary.line())
    return 0
