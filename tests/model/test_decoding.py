import math

import numpy as np
import pytest
import torch

import stale.model.decoding as pp
from stale.core.errors import StaleError
from stale.model.labels import assign_labels
from stale.model.outputs import Targets
from stale.model.decoding import (
    Candidates,
    InferenceConfig,
    generate_candidates,
    postprocess,
    segment_tiou,
    soft_nms,
    threshold_runs,
)


# ---------------------------------------------------------------- threshold runs

def runs_reference(rows, anchor, thresholds):
    """Walk left and right from the anchor, one row and one threshold at a time."""
    shape = anchor.shape + (len(thresholds),)
    start, end = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    valid, peak = np.zeros(shape, bool), np.zeros(shape, rows.dtype)
    for i in np.ndindex(anchor.shape):
        row, a = rows[i], anchor[i]
        for k, th in enumerate(thresholds):
            if not row[a] > th:
                start[i + (k,)] = end[i + (k,)] = a
                continue
            lo, hi = a, a
            while lo > 0 and row[lo - 1] > th:
                lo -= 1
            while hi + 1 < len(row) and row[hi + 1] > th:
                hi += 1
            start[i + (k,)], end[i + (k,)], valid[i + (k,)] = lo, hi + 1, True
            peak[i + (k,)] = row[lo:hi + 1].max()
    return start, end, valid, peak


@pytest.mark.parametrize("seed", range(6))
def test_threshold_runs_match_loop_reference(seed):
    g = torch.Generator().manual_seed(seed)
    T = 1 + seed * 7
    rows = torch.rand(6, 5, T, generator=g)
    if seed % 2:
        rows = (rows * 5).round() / 5          # ties with the thresholds themselves
    anchor = torch.randint(0, T, (6, 5), generator=g)
    thr = torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8])
    start, end, valid, peak = threshold_runs(rows, anchor, thr)
    rs, re_, rv, rp = runs_reference(rows.numpy(), anchor.numpy(), thr.numpy())
    assert np.array_equal(start.numpy(), rs) and np.array_equal(end.numpy(), re_)
    assert np.array_equal(valid.numpy(), rv) and np.array_equal(peak.numpy(), rp)


def test_threshold_runs_edges():
    rows = torch.tensor([[0.9, 0.7, 0.1, 0.8], [0.5, 0.6, 0.7, 0.9], [0.0, 0.0, 0.0, 0.3]])
    start, end, valid, peak = threshold_runs(rows, torch.tensor([1, 2, 3]), torch.tensor([0.2]))
    assert start[:, 0].tolist() == [0, 0, 3] and end[:, 0].tolist() == [2, 4, 4]
    assert valid.all() and torch.allclose(peak[:, 0], torch.tensor([0.9, 0.9, 0.3]))


# ---------------------------------------------------------------- tIoU and Soft-NMS

def test_segment_tiou_hand_cases():
    s = torch.tensor([0.0, 2.0, 5.0, 1.0])
    e = torch.tensor([4.0, 6.0, 7.0, 3.0])
    iou = segment_tiou(s, e, torch.tensor(2.0), torch.tensor(6.0))
    # [0,4]&[2,6]: 2/6; equal: 1; [5,7]: 1/5; [1,3] vs [2,6]: 1/5
    assert torch.allclose(iou, torch.tensor([2 / 6, 1.0, 1 / 5, 1 / 5]))
    # disjoint and empty segments give 0, not NaN
    assert segment_tiou(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(2.0),
                        torch.tensor(3.0)).item() == 0.0
    assert segment_tiou(torch.tensor(1.0), torch.tensor(1.0), torch.tensor(1.0),
                        torch.tensor(1.0)).item() == 0.0


def soft_nms_reference(start, end, score, label, valid, cfg):
    """Plain per-video Gaussian Soft-NMS (Bodla et al. 2017) with Python loops."""
    out = []
    for b in range(len(score)):
        alive = {i: score[b][i] for i in range(len(score[b]))
                 if valid[b][i] and score[b][i] > cfg.min_score}
        kept = []
        while alive and len(kept) < cfg.top_n:
            best = max(alive, key=lambda i: (alive[i], -i))
            kept.append((best, alive.pop(best)))
            for i in list(alive):
                if cfg.class_aware_nms and label[b][i] != label[b][best]:
                    continue
                inter = max(0.0, min(end[b][i], end[b][best]) - max(start[b][i], start[b][best]))
                union = (end[b][i] - start[b][i]) + (end[b][best] - start[b][best]) - inter
                iou = inter / union if union > 0 else 0.0
                if iou > cfg.nms_iou_threshold:
                    alive[i] *= math.exp(-iou * iou / cfg.nms_sigma)
                if alive[i] <= cfg.min_score:
                    del alive[i]
        out.append(kept)
    return out


def random_candidates(seed, B=7, N=40, T=30, K=3):
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, T - 1, (B, N), generator=g)
    end = (start + torch.randint(1, 12, (B, N), generator=g)).clamp(max=T)
    label = torch.randint(0, K, (B, N), generator=g)
    score = torch.rand(B, N, generator=g, dtype=torch.float64)
    valid = torch.rand(B, N, generator=g) > 0.2
    valid[0] = False                       # a video without candidates
    return Candidates(start, end, label, score, valid)


@pytest.mark.parametrize("seed,cfg", [
    (0, InferenceConfig()),
    (1, InferenceConfig(class_aware_nms=False)),
    (2, InferenceConfig(top_n=5, nms_sigma=0.3)),
    (3, InferenceConfig(nms_iou_threshold=0.4, min_score=0.2)),
    (4, InferenceConfig(class_aware_nms=False, nms_sigma=1.5, min_score=0.0)),
])
@pytest.mark.parametrize("pairwise", [True, False])
def test_soft_nms_matches_reference(seed, cfg, pairwise, monkeypatch):
    if not pairwise:                       # the per-step path used for very large N
        monkeypatch.setattr(pp, "_PAIRWISE_LIMIT", 0)
    c = random_candidates(seed)
    idx, score, valid = soft_nms(c, cfg)
    ref = soft_nms_reference(c.start.tolist(), c.end.tolist(), c.score.tolist(),
                             c.label.tolist(), c.valid.tolist(), cfg)
    for b, kept in enumerate(ref):
        n = int(valid[b].sum())
        assert valid[b, :n].all() and not valid[b, n:].any()
        assert idx[b, :n].tolist() == [i for i, _ in kept]
        assert np.allclose(score[b, :n].numpy(), [s for _, s in kept], rtol=1e-12)
    assert not valid[0].any()


def test_soft_nms_never_raises_scores_and_keeps_disjoint_segments():
    # the released code divided by the threshold and boosted low-overlap scores
    c = Candidates(start=torch.tensor([[0, 10, 1]]), end=torch.tensor([[5, 15, 5]]),
                   label=torch.tensor([[0, 0, 0]]),
                   score=torch.tensor([[0.9, 0.5, 0.8]], dtype=torch.float64),
                   valid=torch.ones(1, 3, dtype=torch.bool))
    idx, score, valid = soft_nms(c, InferenceConfig())
    assert idx[0].tolist() == [0, 1, 2]
    iou = 4 / 5
    assert score[0].tolist() == pytest.approx([0.9, 0.5, 0.8 * math.exp(-iou ** 2 / 0.5)])
    assert (score[0] <= c.score[0, idx[0]]).all()
    # scores come out sorted for random inputs too
    rc = random_candidates(9)
    _, s, v = soft_nms(rc, InferenceConfig())
    for b in range(s.shape[0]):
        kept = s[b][v[b]]
        assert (kept[1:] <= kept[:-1]).all()


# ---------------------------------------------------------------- candidates

def test_candidates_hand_case():
    # one video, T=6, K=2; snippet 2 is class 1 with p=0.7, snippet 4 class 0 with p=0.05
    T, K = 6, 2
    cp = torch.zeros(1, T, K + 1)
    cp[..., K] = 1.0
    cp[0, 2] = torch.tensor([0.1, 0.7, 0.2])
    cp[0, 4] = torch.tensor([0.05, 0.0, 0.95])
    mp = torch.zeros(1, T, T)
    mp[0, 2] = torch.tensor([0.3, 0.5, 0.9, 0.7, 0.1, 0.45])
    cand = generate_candidates(cp, mp, InferenceConfig(top_k=3, mask_thresholds=(0.2, 0.4, 0.6)))
    got = {(int(s), int(e), int(l), round(float(x), 6))
           for s, e, l, x, v in zip(cand.start[0], cand.end[0], cand.label[0], cand.score[0],
                                    cand.valid[0]) if v}
    # p=0.1 on class 0 at snippet 2 is not > theta_c=0.1; snippet 4's 0.05 neither
    assert got == {(0, 4, 1, round(0.7 * 0.9, 6)), (1, 4, 1, round(0.7 * 0.9, 6)),
                   (2, 4, 1, round(0.7 * 0.9, 6))}


def test_candidates_skip_anchor_below_threshold_and_short_runs():
    T = 5
    cp = torch.zeros(1, T, 2)
    cp[0, :, 0] = torch.tensor([0.0, 0.0, 0.9, 0.0, 0.0])
    mp = torch.zeros(1, T, T)
    mp[0, 2] = torch.tensor([0.9, 0.9, 0.3, 0.9, 0.9])     # anchor itself is low
    cand = generate_candidates(cp, mp, InferenceConfig(top_k=1, mask_thresholds=(0.5,)))
    assert not cand.valid.any()
    mp[0, 2] = torch.tensor([0.0, 0.0, 0.8, 0.0, 0.0])
    cand = generate_candidates(cp, mp, InferenceConfig(top_k=1, mask_thresholds=(0.5,),
                                                       min_snippets=2))
    assert not cand.valid.any()


def test_same_candidate_from_several_snippets_and_thresholds_is_merged():
    T = 8
    cp = torch.zeros(1, T, 2)
    cp[0, 2:6, 0] = torch.tensor([0.5, 0.9, 0.6, 0.8])
    cp[0, :, 1] = 1 - cp[0, :, 0]
    mp = torch.zeros(1, T, T)
    mp[0, 2:6, 2:6] = 0.95
    cand = generate_candidates(cp, mp, InferenceConfig(top_k=4))
    assert int(cand.valid.sum()) == 1
    i = int(cand.valid[0].nonzero())
    assert (cand.start[0, i], cand.end[0, i]) == (2, 6)
    assert float(cand.score[0, i]) == pytest.approx(0.9 * 0.95)


# ---------------------------------------------------------------- end to end

def random_video(rng, T, K):
    D = float(rng.uniform(20, 300))
    n = int(rng.integers(1, 6))
    edges = np.sort(rng.choice(np.arange(1, 2 * T), size=2 * n, replace=False)) / 2.0
    s, e = edges[0::2] * D / T, edges[1::2] * D / T        # disjoint, >= half-snippet apart
    keep = (e - s) * T / D >= 1.0
    return D, s[keep], e[keep], rng.integers(0, K, int(keep.sum()))


@pytest.mark.parametrize("seed", range(6))
def test_round_trip_perfect_predictions_recover_segments(seed):
    rng = np.random.default_rng(seed)
    T, K, B = 40, 5, 4
    videos = [random_video(rng, T, K) for _ in range(B)]
    targets = [assign_labels(D, s, e, c, K, T) for D, s, e, c in videos]
    batch = Targets.stack(targets).to("cpu")
    class_probs = torch.nn.functional.one_hot(batch.snippet_labels, K + 1).float()
    durations = torch.tensor([v[0] for v in videos], dtype=torch.float64)
    det = postprocess(class_probs, batch.instance_masks, durations,
                      InferenceConfig(top_k=T * K))
    names = [f"class{i}" for i in range(K)]
    results = det.to_results([f"v{b}" for b in range(B)], names)
    for b, (D, s, e, c) in enumerate(videos):
        items = results[f"v{b}"]
        assert len(items) == len(s)
        items = sorted(items, key=lambda it: it["segment"][0])
        for it, si, ei, ci in zip(items, s, e, c):
            assert it["label"] == names[ci] and it["score"] == pytest.approx(1.0)
            # snippet resolution: boundaries move by at most half a snippet
            assert abs(it["segment"][0] - si) <= 0.5 * D / T + 1e-9
            assert abs(it["segment"][1] - ei) <= 0.5 * D / T + 1e-9


def test_round_trip_with_nested_instances_and_two_labels():
    K, T, D = 3, 20, 40.0
    t = assign_labels(D, [0.0, 10.0, 30.0, 30.0], [20.0, 14.0, 36.0, 36.0], [0, 1, 2, 1], K, T)
    b = Targets.stack([t]).to("cpu")
    cp = torch.nn.functional.one_hot(b.snippet_labels, K + 1).double()
    det = postprocess(cp, b.instance_masks.double(), [D], InferenceConfig(top_k=100))
    got = sorted((tuple(x["segment"]), x["label"]) for x in det.to_lists(["a", "b", "c"])[0])
    # the nested short instance and the long one are both found; of the doubly-labelled
    # segment only the lower class index survives label assignment
    assert got == [((0.0, 20.0), "a"), ((10.0, 14.0), "b"), ((30.0, 36.0), "b")]


def test_batch_equals_single_videos_and_output_format():
    g = torch.Generator().manual_seed(3)
    B, T, K = 5, 24, 4
    cp = torch.softmax(3 * torch.randn(B, T, K + 1, generator=g), -1)
    mp = torch.sigmoid(3 * torch.randn(B, T, T, generator=g))
    dur = torch.rand(B, generator=g) * 100 + 1
    cfg = InferenceConfig(top_k=15, top_n=20)
    whole = postprocess(cp, mp, dur, cfg).to_lists(list("abcd"))
    for b in range(B):
        single = postprocess(cp[b:b + 1], mp[b:b + 1], dur[b:b + 1], cfg).to_lists(list("abcd"))
        assert single[0] == whole[b]
        assert 0 < len(whole[b]) <= 20
        for it in whole[b]:
            assert set(it) == {"segment", "label", "score"} and it["label"] in "abcd"
            s, e = it["segment"]
            assert 0 <= s < e <= float(dur[b]) + 1e-4 and 0 < it["score"] <= 1
        scores = [it["score"] for it in whole[b]]
        assert scores == sorted(scores, reverse=True)


def test_bad_inputs_raise_stale_error():
    cp, mp = torch.rand(2, 6, 3), torch.rand(2, 6, 6)
    with pytest.raises(StaleError, match="mask_probs"):
        postprocess(cp, torch.rand(2, 6, 5), [1.0, 2.0])
    with pytest.raises(StaleError, match="class_probs"):
        postprocess(torch.rand(2, 6), mp, [1.0, 2.0])
    with pytest.raises(StaleError, match="durations"):
        postprocess(cp, mp, [1.0, 0.0])
    with pytest.raises(StaleError, match="durations"):
        postprocess(cp, mp, [1.0])
    bad = cp.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(StaleError, match="NaN"):
        postprocess(bad, mp, [1.0, 2.0])
    with pytest.raises(StaleError, match="nms_sigma"):
        postprocess(cp, mp, [1.0, 2.0], InferenceConfig(nms_sigma=0.0))
    det = postprocess(cp, mp, [1.0, 2.0])
    with pytest.raises(StaleError, match="video ids"):
        det.to_results(["only_one"], ["a", "b"])
    with pytest.raises(StaleError, match="class names"):
        det.to_lists(["a", "b", "c"])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(0)
    cp = torch.softmax(torch.randn(8, 50, 11, generator=g), -1)
    mp = torch.sigmoid(torch.randn(8, 50, 50, generator=g))
    dur = torch.rand(8, generator=g) * 50 + 1
    a = postprocess(cp, mp, dur).to_lists(list("abcdefghij"))
    b = postprocess(cp.cuda(), mp.cuda(), dur.cuda()).to_lists(list("abcdefghij"))
    assert [len(x) for x in a] == [len(x) for x in b]
    for xa, xb in zip(a, b):
        for ia, ib in zip(xa, xb):
            assert ia["label"] == ib["label"] and ia["score"] == pytest.approx(ib["score"])


def test_activitynet_sized_batch_equals_its_videos_one_by_one():
    """A batch of 100 videos x 100 snippets x 50 classes (ActivityNet-sized) is decoded in one
    vectorised pass whose detections are those of each video decoded alone (no wall-clock
    assertion: speed is measured in docs/benchmarks.md, not asserted on a shared machine)."""
    g = torch.Generator().manual_seed(0)
    B, T, K = 100, 100, 50
    cp = torch.softmax(4 * torch.randn(B, T, K + 1, generator=g), -1)
    mp = torch.sigmoid(4 * torch.randn(B, T, T, generator=g))
    dur = torch.rand(B, generator=g) * 200 + 5
    names = [str(i) for i in range(K)]
    batched = postprocess(cp, mp, dur).to_lists(names)
    assert len(batched) == B and sum(len(x) for x in batched) > B
    for b in range(0, B, 7):
        alone = postprocess(cp[b:b + 1], mp[b:b + 1], dur[b:b + 1]).to_lists(names)[0]
        assert [d["label"] for d in batched[b]] == [d["label"] for d in alone]
        for x, y in zip(batched[b], alone):
            assert x["segment"] == pytest.approx(y["segment"]) and x["score"] == pytest.approx(y["score"])


def test_config_from_yaml_dict_and_validation():
    from stale.core.config import from_dict, to_dict

    cfg = from_dict(InferenceConfig, {"mask_thresholds": [0.1, 0.5], "top_k": 40})
    assert cfg.mask_thresholds == (0.1, 0.5) and cfg.top_k == 40
    assert from_dict(InferenceConfig, to_dict(cfg)) == cfg
    with pytest.raises(StaleError, match="mask_thresholds"):
        from_dict(InferenceConfig, {"mask_thresholds": [1.5]})
