"""`stale text-embed`: frozen CLIP text embeddings of class names from a hand-written template.

Writes ``OUT.npy`` (K, E) float32, L2-normalised rows in class order, and next to it
``OUT.classes.json`` = ``{"classes": [...], "template", "arch", "weights", "embed_dim"}``.
Without ``--weights`` the offline seeded text tower is used (no network needed).
"""

from __future__ import annotations

from pathlib import Path

HELP = "embed class names with the CLIP text tower and a prompt template -> .npy (+ class list JSON)"


def add_arguments(parser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--classes", help='comma-separated class names, e.g. "long jump,high jump"')
    src.add_argument("--classes-file", help="file with one class name per line, or a JSON list")
    parser.add_argument("--weights", default=None,
                        help="CLIP checkpoint file or open_clip tag (default: offline seeded tower)")
    parser.add_argument("--arch", default=None,
                        help="open_clip architecture for --weights (default ViT-B-16)")
    parser.add_argument("--template", default="a video of {}.",
                        help="prompt template with one {} for the class name (default: %(default)r)")
    parser.add_argument("--out", required=True, help="output .npy file")
    parser.add_argument("--cache-dir", default=None, help="offline tower cache (default $STALE_CACHE_DIR or ~/.cache/stale)")
    parser.add_argument("--device", default=None, help="torch device (default cpu)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing OUT.npy / OUT.classes.json")


def run(args) -> int:
    from stale.api import text_embed

    emb, _ = text_embed(args.out, args.classes, args.classes_file, args.weights, args.arch, args.template,
                        args.cache_dir, args.device, args.overwrite)
    out = Path(args.out)
    print(f"wrote {out} ({emb.shape[0]} x {emb.shape[1]}) and {out.with_suffix('.classes.json')}")
    return 0
