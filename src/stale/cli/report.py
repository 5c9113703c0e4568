"""``stale report FOLDER [--out FILE] [--serve]``: the HTML report of a demo, detect, run or
experiment folder; see :mod:`stale.reporting.folders` and docs/detect.md."""

from __future__ import annotations

HELP = "write the HTML report of a demo, detect, run or experiment folder (metrics, curves, timelines)"


def add_arguments(parser) -> None:
    parser.add_argument("folder", metavar="RUN_OR_EXPERIMENT_DIR",
                        help="a stale demo / detect / run / experiment folder")
    parser.add_argument("--out", default=None,
                        help="HTML file to write (default: the folder's report.html; a demo's report/index.html)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing file that is not a stale report")
    parser.add_argument("--serve", action="store_true", help="serve the report on localhost until Ctrl-C")
    parser.add_argument("--port", type=int, default=0, help="port of --serve (default: any free one)")


def run(args) -> int:
    from stale.reporting.folders import write_folder_report

    built = write_folder_report(args.folder, args.out, overwrite=args.overwrite)
    print(f"report of the {built.kind} folder {args.folder}: {built.default_out}")
    if args.serve:
        from stale.reporting.serve import serve

        serve(built.default_out, built.videos, port=args.port)
    return 0
