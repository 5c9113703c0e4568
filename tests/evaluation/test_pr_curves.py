"""Precision-recall curves: by hand, and integrated they give the evaluator's AP bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from stale.core.errors import StaleError
from stale.evaluation import evaluate_detection
from stale.evaluation.curves import curve_ap, precision_recall
from test_eval_detection import gt_and_predictions, gt_file, pred_file, thresholds


def test_curves_by_hand():
    gt = gt_file({"a": [(0, 10, "x"), (20, 30, "x")], "b": [(0, 5, "y")]})
    pred = pred_file({"a": [(0, 10, "x", 0.9), (50, 60, "x", 0.8), (21, 30, "x", 0.7), (0, 10, "y", 0.95)],
                      "zz": [(0, 1, "x", 0.85)],            # a video without GT: a false positive
                      "b": [(0, 5, "nope", 1.0)]})          # not a GT class: ignored
    pr = precision_recall(gt, pred, "validation", "0.5,0.95")
    x = pr.curves["x"]
    assert x.scores.tolist() == [0.9, 0.85, 0.8, 0.7] and x.npos == 2
    assert x.tp.tolist() == [[True, False, False, True], [True, False, False, False]]
    np.testing.assert_array_equal(x.recall[0], [0.5, 0.5, 0.5, 1.0])
    np.testing.assert_array_equal(x.precision[0], [1.0, 0.5, 1 / 3, 0.5])
    np.testing.assert_array_equal(x.recall[1], [0.5, 0.5, 0.5, 0.5])
    y = pr.curves["y"]                                        # one detection, in the wrong video
    assert y.tp.tolist() == [[False], [False]] and y.recall[0].tolist() == [0.0]
    ap = pr.average_precision()
    assert ap[0, pr.classes.index("x")] == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)
    assert ap[:, pr.classes.index("y")].tolist() == [0.0, 0.0]
    rec, prec = pr.at(0.5)["x"]
    assert rec.tolist() == x.recall[0].tolist() and prec.tolist() == x.precision[0].tolist()


def _assert_same_ap(gt, pred, thr, blocked=(), **kw):
    res = evaluate_detection(gt, pred, "validation", thr, blocked, **kw)
    pr = precision_recall(gt, pred, "validation", thr, blocked, **kw)
    assert pr.classes == res.classes and pr.tiou == res.tiou
    assert np.array_equal(pr.average_precision(), res.ap)          # exact
    for c, name in enumerate(pr.classes):
        assert np.array_equal(curve_ap(pr.curves[name]), res.ap[:, c])
        cur = pr.curves[name]
        assert cur.tp.shape == cur.precision.shape == cur.recall.shape == (len(pr.tiou), cur.scores.size)
        assert (np.diff(cur.scores) <= 0).all()                     # ranked best first


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=gt_and_predictions(), thr=thresholds)
def test_integrates_to_the_evaluators_ap_on_adversarial_inputs(data, thr):
    gt, pred = data
    try:
        evaluate_detection(gt, pred, "validation", thr)
    except StaleError:
        with pytest.raises(StaleError):
            precision_recall(gt, pred, "validation", thr)
        return
    _assert_same_ap(gt, pred, thr, max_pairs=7)


@pytest.mark.parametrize("seed", [0, 1])
def test_integrates_to_the_evaluators_ap_on_larger_inputs(seed):
    rng = np.random.default_rng(seed)
    gt_v, pred_v = {}, {}
    for v in range(25):
        s = np.round(rng.uniform(0, 50, rng.integers(0, 12)))
        gt_v[f"vid{v}"] = [(float(a), float(a + rng.integers(0, 8)), f"c{rng.integers(4)}") for a in s]
        ps = np.round(rng.uniform(0, 50, rng.integers(0, 60)))
        pred_v[f"vid{v + 2}"] = [(float(a), float(a + rng.integers(0, 8)), f"c{rng.integers(5)}",
                                  float(np.round(rng.random(), 1))) for a in ps]
    _assert_same_ap(gt_file(gt_v), pred_file(pred_v), "0.1,0.3,0.5,0.7", max_pairs=50)
