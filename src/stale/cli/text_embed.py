"""`stale text-embed`: frozen CLIP text embeddings of class names from a hand-written template.

Writes ``OUT.npy`` (K, E) float32, L2-normalised rows in class order, and next to it
``OUT.classes.json`` = ``{"classes": [...], "template", "arch", "weights", "embed_dim"}``.
Without ``--weights`` the offline seeded text tower is used (no network needed).
"""

from __future__ import annotations

import json
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


def read_class_list(classes: str | None, classes_file: str | None) -> list[str]:
    """Class names from ``--classes`` or ``--classes-file`` (blank lines ignored, names stripped)."""
    from stale.core.errors import StaleError

    if classes is not None:
        names = [c.strip() for c in classes.split(",")]
        where = "--classes"
    else:
        path = Path(classes_file)
        if not path.is_file():
            raise StaleError(f"--classes-file: file not found: {path}")
        text = path.read_text(encoding="utf-8")
        where = str(path)
        if path.suffix == ".json":
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise StaleError(f"{path}: not valid JSON ({exc})") from None
            if not isinstance(data, list) or not all(isinstance(c, str) for c in data):
                raise StaleError(f"{path}: expected a JSON list of class names")
            names = [c.strip() for c in data]
        else:
            names = [line.strip() for line in text.splitlines()]
    if any(not n for n in names) and classes is not None:
        raise StaleError(f"{where}: empty class name in {classes!r}")
    names = [n for n in names if n]
    if not names:
        raise StaleError(f"{where}: no class names given")
    return names


def run(args) -> int:
    import numpy as np

    from stale.core.errors import StaleError
    from stale.core.io import atomic_save, atomic_write_json
    from stale.text.embed import embed_class_names
    from stale.text.weights import OFFLINE_ARCH

    out = Path(args.out)
    if out.suffix != ".npy":
        raise StaleError(f"--out {out}: must end with .npy")
    names = read_class_list(args.classes, args.classes_file)
    emb = embed_class_names(names, weights=args.weights, template=args.template, arch=args.arch,
                            cache_dir=args.cache_dir, device=args.device)

    def save(p: Path) -> None:
        with open(p, "wb") as fh:   # a file handle: np.save would append ".npy" to a bare path
            np.save(fh, emb)

    atomic_save(out, save)
    meta_path = out.with_suffix(".classes.json")
    arch = args.arch or ("ViT-B-16" if args.weights is not None else OFFLINE_ARCH)
    atomic_write_json(meta_path, {"classes": names, "template": args.template, "arch": arch,
                                  "weights": args.weights, "embed_dim": int(emb.shape[1])})
    print(f"wrote {out} ({emb.shape[0]} x {emb.shape[1]}) and {meta_path}")
    return 0
