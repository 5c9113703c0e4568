"""``stale report``: the HTML report (:mod:`stale.reporting.render`) of whatever a folder holds.

Recognised folders (first match wins):

* a ``stale detect`` output folder (``detect.json``): the detections in the source videos;
* a ``stale demo`` folder (``report/metrics.json``; the ``report/`` folder itself works too):
  mAP by tIoU, per-class AP, precision-recall curves and the leakage control of every method,
  the training curves and the test videos the demo drew;
* an experiment folder (``results.json``, written by ``stale experiment``): every cell, the
  mean +- std per variant, per-class AP, the leakage controls, precision-recall curves of the
  cells whose predictions exist, failed cells with their errors;
* a run folder (``config.yaml`` / ``metrics.jsonl`` / ``best.pt`` / ``predictions.json``): its
  evaluation when it holds ``predictions.json`` + ``ground_truth.json`` (plus
  ``predictions_control.json`` for the leakage control), its training curves, and otherwise a
  note that no predictions exist and how to make them.

Whatever part of a folder cannot be read becomes a highlighted note in the page instead of an
error, so a half-finished experiment still renders what is there.
"""

from __future__ import annotations

import os
from pathlib import Path

from stale.core.errors import StaleError
from stale.core.output_checks import DETECT_MARKER
from stale.reporting.folder_parts import BuiltReport
from stale.reporting.folder_pages import demo_page, detect_page, experiment_page, run_page


def _is_demo_report(folder: Path) -> bool:
    """A demo's ``report/`` folder itself: its metrics.json lists methods (a run's does not)."""
    from stale.core.io import read_json

    if not (folder / "metrics.json").is_file():
        return False
    try:
        data = read_json(folder / "metrics.json")
    except StaleError:
        return False
    return isinstance(data, dict) and isinstance(data.get("methods"), dict)


def folder_kind(path: str | os.PathLike) -> tuple[str, Path]:
    """``(kind, default page path)`` of a folder (module docstring), or a StaleError saying what
    was expected. Reads at most one small JSON file."""
    from stale.core.output_checks import RUN_ARTEFACTS

    folder = Path(path)
    if not folder.exists():
        raise StaleError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise StaleError(f"{folder}: not a folder (give a demo, detect, run or experiment folder)")
    if (folder / DETECT_MARKER).is_file():
        return "detect", folder / "report.html"
    if (folder / "report" / "metrics.json").is_file():
        return "demo", folder / "report" / "index.html"
    if _is_demo_report(folder):
        return "demo-report", folder / "index.html"
    if (folder / "results.json").is_file():
        return "experiment", folder / "report.html"
    if any((folder / n).exists() for n in (*RUN_ARTEFACTS, "predictions.json")):
        return "run", folder / "report.html"
    if (folder / "experiment.json").is_file():
        raise StaleError(f"{folder}: an experiment folder without results.json yet; run "
                         f"'stale experiment summarize {folder}' first")
    raise StaleError(f"{folder}: not a stale folder (expected detect.json, report/metrics.json, "
                     f"results.json, or a run's config.yaml / metrics.jsonl / predictions.json)")


def build_report(path: str | os.PathLike, page: str | os.PathLike | None = None,
                 workdir: str | os.PathLike | None = None) -> BuiltReport:
    """The report of the folder ``path`` (module docstring). ``page``: where the page will be
    written (video paths are made relative to it; default: the folder kind's default)."""
    import tempfile

    folder = Path(path)
    kind, default = folder_kind(folder)
    target = Path(page) if page is not None else default
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        if kind == "detect":
            built = detect_page(folder, target)
        elif kind == "demo":
            built = demo_page(folder / "report", target, work)
        elif kind == "demo-report":
            built = demo_page(folder, target, work)
        elif kind == "experiment":
            built = experiment_page(folder, target, work)
        else:
            built = run_page(folder, target, work)
    built.default_out = default
    return built


def _refuse_input_as_output(folder: Path, target: Path, ours: bool) -> None:
    """``--overwrite`` replaces the command's own earlier page, never one of its inputs: an
    existing file in the reported folder (a checkpoint, ``experiment.json``,
    ``detections.json``, ...) that is not a stale page is refused, with or without it."""
    from stale.core.output_checks import resolved_path

    if ours or not (target.exists() or target.is_symlink()):
        return
    r, root = resolved_path(target), resolved_path(folder)
    if r == root or root in r.parents:
        raise StaleError(f"--out {target}: is a file of the folder being reported ({folder}), one of the "
                         f"report's inputs; --overwrite replaces only a page stale wrote -- choose another path")


def write_folder_report(path: str | os.PathLike, out: str | os.PathLike | None = None,
                        overwrite: bool = False) -> BuiltReport:
    """Build and write the report of ``path``; returns it (``default_out`` = the written path).

    An existing file at the output is replaced only when it is a page stale wrote (its generator
    tag) or with ``overwrite``."""
    from stale.core.output_checks import Output, check_outputs
    from stale.reporting.render import is_stale_report, write_report

    kind, default = folder_kind(path)
    target = Path(out) if out is not None else default
    ours = target.is_file() and is_stale_report(target)
    # a demo's report/ folder: the demo folder around it (runs, data) is protected as well
    demo = Path(path).parent if kind == "demo-report" and (Path(path).parent / "report").is_dir() else None
    _refuse_input_as_output(demo or Path(path), target, ours)
    # the output is checked before the (possibly slow) evaluation work
    check_outputs([Output(target, "file", "--out", exists_ok=ours)], overwrite=overwrite)
    built = build_report(path, page=target)
    check_outputs([Output(target, "file", "--out", exists_ok=True)], inputs=built.inputs)
    write_report(built.report, target)
    built.default_out = target
    return built
