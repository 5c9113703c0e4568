"""Small feature releases generated in exactly the on-disk layouts the field distributes, for the
tests of ``stale.data.features`` and ``stale features`` and of the docs pages
(docs/features/*.md): the same seeded arrays written as each layout, so readers can be compared.
"""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np


def arrays(n: int = 5, dim: int = 12, seed: int = 0, lengths=None, prefix: str = "vid") -> dict[str, np.ndarray]:
    """``n`` seeded (T_i, dim) float32 arrays keyed ``<prefix>000``...; T_i from ``lengths`` or 7..30."""
    rng = np.random.default_rng(seed)
    lengths = lengths if lengths is not None else rng.integers(7, 31, size=n)
    return {f"{prefix}{i:03d}": rng.standard_normal((int(t), dim)).astype(np.float32)
            for i, t in enumerate(lengths)}


def write_npy(folder: Path, data: dict[str, np.ndarray], prefix: str = "", channel_first: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for vid, x in data.items():
        np.save(folder / f"{prefix}{vid}.npy", x.T if channel_first else x)
    return folder


def write_csv(folder: Path, data: dict[str, np.ndarray], prefix: str = "", header: str = "names",
              index_column: bool = False) -> Path:
    """BSN/BMN-style tables: ``header`` "names" (``f0,f1,...``), "numbers" (``0,1,...``) or "none";
    ``index_column``: pandas' default ``to_csv`` (an unnamed first column 0..T-1)."""
    folder.mkdir(parents=True, exist_ok=True)
    for vid, x in data.items():
        with open(folder / f"{prefix}{vid}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            cols = [f"f{j}" for j in range(x.shape[1])] if header == "names" else [str(j) for j in range(x.shape[1])]
            if header != "none":
                w.writerow(([""] if index_column else []) + cols)
            for t, row in enumerate(x):
                w.writerow(([t] if index_column else []) + [repr(float(v)) for v in row])
    return folder


def write_h5(path: Path, data: dict[str, np.ndarray], key: str = "{id}", prefix: str = "",
             channel_first: bool = False, dtype=np.float32) -> Path:
    """One dataset per video at ``key`` (``{id}`` = ``<prefix><video id>``; ``/`` makes groups)."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for vid, x in data.items():
            f.create_dataset(key.replace("{id}", f"{prefix}{vid}"), data=(x.T if channel_first else x).astype(dtype))
    return path


def write_pickle(path: Path, data: dict[str, np.ndarray], prefix: str = "", nested: str | None = None) -> Path:
    """A pickled dict ``{<prefix><id>: array}`` (or ``{id: {nested: array}}``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {f"{prefix}{vid}": ({nested: x} if nested else x) for vid, x in data.items()}
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


# ----------------------------------------------------------------------------- the three releases
# Real video ids, durations and segments of the packaged annotations (the shortest videos whose
# classes let a standard split train and test), features in each release's exact file layout.

def choose_videos(dataset: str, n_train: int = 3, n_test: int = 3, setting: int = 75, split: int = 0) -> list:
    """The ``n_train`` shortest training-subset videos with a seen class of the standard split and
    the ``n_test`` shortest test-subset videos with an unseen one (not blocked), as ``Video`` s."""
    from stale.data.annotations import AnnotationPolicy, load_annotations
    from stale.data.resources import annotations_path
    from stale.data.splits import load_split

    blocked = ("missing_features",) if dataset == "activitynet" else ()
    aset = load_annotations(annotations_path(dataset), policy=AnnotationPolicy(blocked=blocked))
    sp = load_split(dataset, setting, split)
    train_sub, test_sub = ("training", "validation") if dataset == "activitynet" else ("validation", "test")
    pick = []
    for sub, classes, n in ((train_sub, set(sp.seen), n_train), (test_sub, set(sp.unseen), n_test)):
        cands = [v for v in aset.subset(sub) if v.segments and {s.label for s in v.segments} & classes
                 and v.duration >= 8]
        pick += sorted(cands, key=lambda v: (v.duration, v.id))[:n]
    return pick


def thumos14_i3d_actionformer(root: Path, dim: int = 2048, seed: int = 0, videos=None) -> dict:
    """ActionFormer's THUMOS14 I3D release: ``thumos/i3d_features/<video_id>.npy`` (T, 2048)
    float32 for 16-frame clips every 4 frames at 30 fps, T = (frames - 16) // 4 + 1 (the
    annotations are the packaged ``thumos14.json``, ActionFormer's own)."""
    videos = videos if videos is not None else choose_videos("thumos14")
    lengths = [(int(v.duration * 30) - 16) // 4 + 1 for v in videos]
    data = dict(zip([v.id for v in videos], arrays(len(videos), dim, seed, lengths).values()))
    write_npy(root / "thumos" / "i3d_features", data)
    return {"features": root / "thumos" / "i3d_features", "data": data, "videos": videos, "rate": 30 / 4}


def activitynet_clip_stale(root: Path, dim: int = 512, seed: int = 0, videos=None, rate: float = 10.0) -> dict:
    """The STALE authors' ActivityNet CLIP release: ``anet/clip_features/v_<id>.npy`` (T, 512),
    one feature every 0.1 s (921 features for the 92.18 s ``v_--0edUL8zmA``)."""
    videos = videos if videos is not None else choose_videos("activitynet")
    lengths = [max(1, int(rate * v.duration)) for v in videos]
    data = dict(zip([v.id for v in videos], arrays(len(videos), dim, seed, lengths).values()))
    write_npy(root / "anet" / "clip_features", data, prefix="v_")
    return {"features": root / "anet" / "clip_features", "data": data, "videos": videos, "rate": rate}


def activitynet_tsn_bsn(root: Path, dim: int = 400, seed: int = 0, videos=None) -> dict:
    """BSN/BMN's ActivityNet two-stream TSN release: ``bsn/csv_mean_100/v_<id>.csv`` (a header
    row, 100 rows x 400 columns: every video rescaled to 100 features) with BSN's annotation
    files ``anet_anno_action.json`` (keyed ``v_<id>``) and ``video_info_new.csv``."""
    videos = videos if videos is not None else choose_videos("activitynet")
    data = dict(zip([v.id for v in videos], arrays(len(videos), dim, seed, [100] * len(videos)).values()))
    folder = root / "bsn"
    write_csv(folder / "csv_mean_100", data, prefix="v_", header="names")
    anno = {f"v_{v.id}": {"duration_second": v.duration, "duration_frame": int(v.duration * 30),
                          "feature_frame": int(v.duration * 30) // 16 * 16,
                          "annotations": [{"segment": [s.start, s.end], "label": s.label} for s in v.segments]}
            for v in videos}
    (folder / "anet_anno_action.json").write_text(json.dumps(anno))
    with open(folder / "video_info_new.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video", "numFrame", "seconds", "fps", "rfps", "subset", "featureFrame"])
        for v in videos:
            nf = int(v.duration * 30)
            w.writerow([f"v_{v.id}", nf, v.duration, 30.0, 30.0, v.subset, nf // 16 * 16])
    return {"features": folder / "csv_mean_100", "annotations": folder / "anet_anno_action.json", "data": data,
            "videos": videos, "rate": None}
