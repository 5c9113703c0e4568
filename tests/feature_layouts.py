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

def _database(durations: dict[str, float], subsets: dict[str, str], labels: dict[str, str]) -> dict:
    return {vid: {"subset": subsets[vid], "duration": d,
                  "annotations": [{"segment": [round(0.2 * d, 2), round(0.6 * d, 2)], "label": labels[vid]}]}
            for vid, d in durations.items()}


def thumos14_i3d_actionformer(root: Path, n: int = 6, dim: int = 2048, seed: int = 0) -> dict:
    """ActionFormer's THUMOS14 I3D release: ``i3d_features/<video_id>.npy`` (T, 2048) float32,
    16-frame clips every 4 frames at 30 fps (T = (N - 16) // 4 + 1), with ``thumos14.json``
    (ActionFormer layout: capitalised subsets, ``fps``). Returns paths and facts."""
    rng = np.random.default_rng(seed)
    ids = [f"video_validation_{i:07d}" for i in range(n // 2)] + [f"video_test_{i:07d}" for i in range(n - n // 2)]
    durations = {v: round(float(rng.uniform(20, 60)), 2) for v in ids}
    frames = {v: int(durations[v] * 30) for v in ids}
    lengths = [(frames[v] - 16) // 4 + 1 for v in ids]
    data = dict(zip(ids, arrays(n, dim, seed, lengths).values()))
    write_npy(root / "i3d_features", data)
    classes = ["BaseballPitch", "HighJump"]
    database = _database(durations, {v: "Validation" if "validation" in v else "Test" for v in ids},
                         {v: classes[i % 2] for i, v in enumerate(ids)})
    for v in ids:
        database[v]["fps"] = 30.0
    (root / "thumos14.json").write_text(json.dumps({"version": "Thumos14-30fps", "database": database}))
    return {"features": root / "i3d_features", "annotations": root / "thumos14.json", "data": data,
            "durations": durations, "rate": 30 / 4}


def _bsn_annotations(root: Path, ids: list[str], durations: dict[str, float], rng) -> Path:
    """BSN/BMN annotations: ``anet_anno_action.json`` keyed ``v_<id>`` + ``video_info_new.csv``."""
    classes = ["Long jump", "Pole vault"]
    anno = {f"v_{v}": {"duration_second": durations[v], "duration_frame": int(durations[v] * 30),
                       "feature_frame": int(durations[v] * 30) // 16 * 16,
                       "annotations": [{"segment": [round(0.2 * durations[v], 2), round(0.6 * durations[v], 2)],
                                        "label": classes[i % 2]}]}
            for i, v in enumerate(ids)}
    path = root / "anet_anno_action.json"
    path.write_text(json.dumps(anno))
    with open(root / "video_info_new.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video", "numFrame", "seconds", "fps", "rfps", "subset", "featureFrame"])
        for i, v in enumerate(ids):
            nf = int(durations[v] * 30)
            w.writerow([f"v_{v}", nf, durations[v], 30.0, 30.0, "training" if i % 3 else "validation",
                        nf // 16 * 16])
    return path


def _anet_ids(n: int, rng) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
    return ["".join(rng.choice(list(letters), 11)) for _ in range(n)]


def activitynet_clip_stale(root: Path, n: int = 6, dim: int = 512, seed: int = 0, rate: float = 10.0) -> dict:
    """The STALE authors' ActivityNet CLIP release: ``clip_features/v_<id>.npy`` (T, 512) at a
    native rate of ``rate`` features per second, with BSN/BMN annotations."""
    rng = np.random.default_rng(seed)
    ids = _anet_ids(n, rng)
    durations = {v: round(float(rng.uniform(30, 120)), 2) for v in ids}
    data = dict(zip(ids, arrays(n, dim, seed, [int(rate * durations[v]) for v in ids]).values()))
    write_npy(root / "clip_features", data, prefix="v_")
    ann = _bsn_annotations(root, ids, durations, rng)
    return {"features": root / "clip_features", "annotations": ann, "data": data, "durations": durations,
            "rate": rate}


def activitynet_tsn_bsn(root: Path, n: int = 6, dim: int = 400, seed: int = 0) -> dict:
    """BSN/BMN's ActivityNet two-stream TSN release: ``csv_mean_100/v_<id>.csv``, a header row and
    100 rows x 400 columns (every video rescaled to 100 features), with BSN/BMN annotations."""
    rng = np.random.default_rng(seed)
    ids = _anet_ids(n, rng)
    durations = {v: round(float(rng.uniform(30, 120)), 2) for v in ids}
    data = dict(zip(ids, arrays(n, dim, seed, [100] * n).values()))
    write_csv(root / "csv_mean_100", data, prefix="v_", header="names")
    ann = _bsn_annotations(root, ids, durations, rng)
    return {"features": root / "csv_mean_100", "annotations": ann, "data": data, "durations": durations,
            "rate": None}
