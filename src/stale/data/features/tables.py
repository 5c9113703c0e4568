"""A folder of per-video CSV tables, as BSN/BMN distribute ActivityNet's two-stream TSN features
(``v_<id>.csv``: a header row, then T rows of C comma-separated numbers)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from stale.core.errors import StaleError
from stale.data.features.source import FolderSource


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def csv_header(first_line: str) -> tuple[bool, bool]:
    """Whether the first line of a feature CSV is a header, and whether the table has an index
    column. A header is a row that is not all numbers, or the column numbers ``0..C-1`` /
    ``1..C`` (what pandas writes for unnamed columns); its empty first cell marks an index
    column (pandas' ``to_csv`` default)."""
    cells = [c.strip().strip('"') for c in first_line.strip().split(",")]
    if not all(_is_number(c) for c in cells):
        return True, cells[0] in ("", "index", "Unnamed: 0")
    n = len(cells)
    as_ints = [float(c) for c in cells]
    counting = as_ints == list(range(n)) or as_ints == list(range(1, n + 1))
    return counting and n > 1, False


def diagnose_csv(path: Path, skip: int) -> str:
    """The first ragged row or non-number of a CSV numpy could not parse, as one line."""
    width = first_row = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for row, line in enumerate(fh, start=1):
            if row <= skip or not line.strip():
                continue
            cells = line.rstrip("\r\n").split(",")
            if width is None:
                width, first_row = len(cells), row
            elif len(cells) != width:
                return (f"{path}: row {row} has {len(cells)} values but row {first_row} has {width} "
                        f"(a ragged table: truncated or badly written)")
            for col, cell in enumerate(cells, start=1):
                if not _is_number(cell.strip()):
                    return f"{path}: row {row}, column {col}: {cell.strip()[:40]!r} is not a number"
    return f"{path}: not a readable table of numbers"


def read_feature_csv(path: Path) -> np.ndarray:
    """(rows, columns) float32 array of a feature CSV (header row and index column dropped)."""
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except UnicodeDecodeError:
        raise StaleError(f"{path}: not a text (CSV) file") from None
    header, index_col = csv_header(first)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # "input contained no data": T = 0, checked later
            arr = np.loadtxt(path, delimiter=",", skiprows=int(header), dtype=np.float32, ndmin=2,
                             encoding="utf-8")
    except (ValueError, UnicodeDecodeError):
        raise StaleError(diagnose_csv(path, int(header))) from None
    return np.ascontiguousarray(arr[:, 1:]) if index_col else arr


class CsvFolder(FolderSource):
    """Reads ``<root>/<prefix><id><suffix>`` CSV tables; checks in :class:`FeatureSource`."""

    kind = "csv"
    owned_reads = True

    def __init__(self, root: str | Path, prefix: str = "", suffix: str = ".csv", dim: int | None = None,
                 nonfinite: Literal["error", "zero"] = "error", layout: str = "auto"):
        super().__init__(root, prefix, suffix, dim, nonfinite, layout)

    def _raw(self, video_id: str) -> np.ndarray:
        path = self.path(video_id)
        if not path.is_file():
            raise self.not_found(video_id)
        return read_feature_csv(path)
