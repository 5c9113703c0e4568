"""`stale evaluate`: ActivityNet-style detection mAP of a results file against ground truth."""

from __future__ import annotations

import sys

HELP = "detection mAP per tIoU (exact ActivityNet algorithm) of a results JSON against ground truth"


def add_arguments(parser):
    parser.add_argument("ground_truth", help="ground-truth JSON ({'database': {vid: {...}}})")
    parser.add_argument("predictions", help="results JSON ({'results': {vid: [detections]}})")
    parser.add_argument("--subset", default=None,
                        help="GT subset to evaluate, case-insensitive (default: the ground truth's only "
                             "subset when it holds one, else validation; THUMOS14: test)")
    parser.add_argument("--tiou", default="activitynet",
                        help="activitynet (0.50:0.05:0.95), thumos14 (0.3:0.1:0.7) or a "
                             "comma-separated list, e.g. 0.3,0.5 (default: activitynet)")
    parser.add_argument("--blocked", metavar="FILE",
                        help="video ids to exclude: JSON list, JSON {subset: [ids]} or one id "
                             "per line")
    parser.add_argument("--json-out", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json-out file")
    parser.add_argument("--per-class", action="store_true", help="print AP of every class")


def format_table(result, per_class: bool = False) -> str:
    """Human-readable table (percentages, 2 decimals) of a DetectionResult."""
    head = "  ".join(f"{t:>6.2f}" for t in result.tiou)
    lines = [f"subset {result.subset!r}: {result.num_gt_videos} videos, "
             f"{result.num_gt_instances} GT instances, {len(result.classes)} classes; "
             f"{result.num_predictions} predictions evaluated, {result.ignored_predictions} "
             f"ignored (label not a GT class), {result.predictions_in_unknown_videos} in videos "
             f"without GT (false positives)"
             + (f", {result.negative_starts['predictions']} starting before 0 s"
                if result.negative_starts.get("predictions") else ""), ""]
    width = max([len("mAP (%)")] + ([len(c) for c in result.classes] if per_class else []))
    lines.append(f"{'tIoU':<{width}}  {head}  {'avg':>6}")
    lines.append(f"{'mAP (%)':<{width}}  " + "  ".join(f"{100 * v:>6.2f}" for v in result.mAP)
                 + f"  {100 * result.average_mAP:>6.2f}")
    if per_class:
        lines.append("")
        for i, name in enumerate(result.classes):
            row = result.ap[:, i]
            lines.append(f"{name:<{width}}  " + "  ".join(f"{100 * v:>6.2f}" for v in row)
                         + f"  {100 * row.mean():>6.2f}")
    return "\n".join(lines)


def run(args) -> int:
    from pathlib import Path

    from stale.core.io import atomic_write_json, remove_stale_temp_files
    from stale.core.output_checks import Output, check_outputs
    from stale.evaluation import evaluate_files

    if args.json_out:   # checked before the evaluation: never the GT, the predictions or a folder
        check_outputs([Output(args.json_out, "file", "--json-out")],
                      inputs=[args.ground_truth, args.predictions, args.blocked], overwrite=args.overwrite)
        out = Path(args.json_out).expanduser().absolute()
        remove_stale_temp_files(out.parent, names=[out.name])
    result = evaluate_files(args.ground_truth, args.predictions, args.subset, args.tiou,
                            args.blocked)
    for msg in result.warnings:
        print(f"stale evaluate: warning: {msg}", file=sys.stderr)
    print(format_table(result, args.per_class))
    if args.json_out:
        atomic_write_json(args.json_out, result.to_json())
        print(f"\nwrote {args.json_out}")
    return 0
