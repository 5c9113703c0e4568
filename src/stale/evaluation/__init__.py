"""Exact, vectorised ActivityNet temporal-detection mAP (see ``docs/evaluation.md``)."""

from stale.evaluation.detection import (TIOU_PRESETS, DetectionEvalConfig, DetectionResult,
                                        evaluate_detection, evaluate_files,
                                        interpolated_average_precision, resolve_tiou_thresholds)
from stale.evaluation.inputs import load_blocked, load_json_file
from stale.evaluation.matching import greedy_match, segment_tiou

__all__ = [
    "TIOU_PRESETS", "DetectionEvalConfig", "DetectionResult", "evaluate_detection",
    "evaluate_files", "interpolated_average_precision", "resolve_tiou_thresholds",
    "load_blocked", "load_json_file", "greedy_match", "segment_tiou",
]
