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


def read_class_list(classes: str | None, classes_file: str | None) -> list[str]:
    """Class names from ``--classes`` or ``--classes-file`` (blank lines ignored, names stripped);
    a file that is not UTF-8, an empty list and a name listed twice are errors naming the source."""
    from stale.core.errors import StaleError
    from stale.core.io import parse_json_bytes, read_text

    if classes is not None:
        names = [c.strip() for c in classes.split(",")]
        where = "--classes"
    else:
        path = Path(classes_file).expanduser()
        text = read_text(path, "class file")
        where = str(path)
        if path.suffix == ".json":
            data = parse_json_bytes(text.encode("utf-8"), str(path))
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
    first: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in first:
            raise StaleError(f"{where}: class {n!r} is listed twice (entries {first[n] + 1} and {i + 1})")
        first[n] = i
    return names


def run(args) -> int:
    import numpy as np

    from stale.core.errors import StaleError
    from stale.core.io import atomic_save, atomic_write_json, remove_stale_temp_files
    from stale.core.output_checks import Output, check_outputs
    from stale.text.embed import embed_class_names
    from stale.text.weights import OFFLINE_ARCH
    from stale.training.runtime import resolve_device

    out = Path(args.out)
    if out.suffix != ".npy":
        raise StaleError(f"--out {out}: must end with .npy")
    meta_path = out.with_suffix(".classes.json")
    weights = args.weights if args.weights and Path(args.weights).expanduser().exists() else None
    resolved = check_outputs([Output(out, "file", "--out"), Output(meta_path, "file", "--out (class list)")],
                             inputs=[args.classes_file, weights], overwrite=args.overwrite)
    if args.template.count("{}") != 1:
        raise StaleError(f"--template {args.template!r}: must contain {{}} exactly once, where the class "
                         f"name goes")
    device = str(resolve_device(args.device)) if args.device is not None else None
    names = read_class_list(args.classes, args.classes_file)
    for path in resolved:
        remove_stale_temp_files(path.parent, names=[path.name])
    emb = embed_class_names(names, weights=args.weights, template=args.template, arch=args.arch,
                            cache_dir=args.cache_dir, device=device)

    def save(p: Path) -> None:
        with open(p, "wb") as fh:   # a file handle: np.save would append ".npy" to a bare path
            np.save(fh, emb)

    atomic_save(out, save)
    arch = args.arch or ("ViT-B-16" if args.weights is not None else OFFLINE_ARCH)
    atomic_write_json(meta_path, {"classes": names, "template": args.template, "arch": arch,
                                  "weights": args.weights, "embed_dim": int(emb.shape[1])})
    print(f"wrote {out} ({emb.shape[0]} x {emb.shape[1]}) and {meta_path}")
    return 0
