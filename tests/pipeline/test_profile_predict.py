"""The per-box prediction profile: FLOPs attributed to the right box (checked against the
boxes' own arithmetic), every box timed, the precision that ran reported."""

from __future__ import annotations

import pytest
import torch

from stale.pipeline.assemble import build_model
from stale.pipeline.config import load_run_config
from stale.pipeline.detectors import StaleDetector
from stale.pipeline.profile_predict import POSTPROCESS, REST, profile_prediction

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_box_flops_match_their_arithmetic_and_times_add_up(tiny_config, precision):
    cfg = load_run_config(tiny_config, ["text.weights=random", "text.arch=stale-test", "text.context_length=4",
                                        f"inference.precision={precision}", "inference.theta_c=0"])
    torch.manual_seed(0)
    det = StaleDetector(build_model(cfg).eval(), cfg)
    B, T, D, C = 3, cfg.data.num_snippets, cfg.model.input_dim, cfg.model.width
    x = torch.randn(B, T, D)
    prof = profile_prediction(det, x, ["high jump", "long jump"], [30.0, 40.0, 50.0], reps=1)
    rows = {r.name: r for r in prof.rows}
    assert prof.precision == precision and prof.videos == 3
    # E_p / E_m: Conv1d(Cin -> Cout, k) over T snippets per video = 2 * B * T * Cin * Cout * k
    convs = [m for m in det.model.consistency.modules() if isinstance(m, torch.nn.Conv1d)]
    convs = convs[:1] if det.model.consistency.fixed else convs
    want = sum(2 * B * T * m.in_channels * m.out_channels * m.kernel_size[0] for m in convs)
    assert rows["consistency projections (E_p, E_m)"].gflop * 1e9 == pytest.approx(want)
    # the mask localiser's controller alone is a (B*T, C) x (C, P) product
    ctrl = det.model.localizer.controller
    assert rows["mask localiser"].gflop * 1e9 >= 2 * B * T * C * ctrl.out_features
    # the text features are cached before anything is measured: no text FLOPs per call
    assert "text tower forward" not in rows or rows["text tower forward"].gflop == 0
    for box in ("temporal encoder", "masking", "cross-modal", "mask localiser", POSTPROCESS):
        assert rows[box].ms > 0
    assert rows[REST].ms >= 0
    assert sum(r.ms for r in prof.rows) >= 0.999 * prof.call_ms      # rest = the call minus the boxes
    table = prof.to_markdown(roofline=100.0)
    assert f"{prof.videos_per_s:.1f} videos/s" in table and "% of roofline" in table
