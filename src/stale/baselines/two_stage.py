"""B-I, the two-stage baseline (paper Sec. 4.1): class-agnostic proposals, then CLIP
classification of each proposal with a hand-crafted prompt.

Stage 1 -- proposals. A lighter equivalent of BMN's boundary matching, in the spirit of BSN's
temporal evaluation module: a small 1-D conv net over the snippet features predicts, per snippet,
the probability of an action *start*, an action *end* and *actionness*. It is trained on the seen
classes only, class-agnostically (binary targets from every seen-class instance: start/end
regions of ``boundary_width`` snippets around each boundary, actionness = foreground), with a
class-balanced BCE per target. BMN's boundary-matching map (a T x T x N sampling tensor) costs
O(T^2 N D) per video; for the reduced CPU experiments we use start x end pairing instead (BSN's
proposal generation), which keeps the two-stage structure that B-I is about -- localisation first,
classification second -- at a fraction of the cost.

Proposal generation: candidate starts are snippets whose start probability is a local maximum or
above ``peak_ratio`` x the video's maximum (likewise ends); every (start <= end) pair within
``max_length`` snippets is a proposal scored ``p_start[s] * p_end[e] * mean actionness[s..e]``;
the best ``max_proposals`` go through class-agnostic Soft-NMS. Vectorised as (B, T, T) maps.
With ``proposals: ground_truth`` the test videos' annotated segments are the proposals (score 1),
which is Table 3's "GT proposals" row.

Stage 2 -- classification. A proposal's feature is the mean of the *input* snippet features
inside it (CLIP image features); its class probabilities are ``softmax_k(cos(f, e_k) / tau)``
with ``e_k`` the CLIP text embedding of the hand-crafted prompt ``template`` (no learned
prompt). Each proposal yields ``top_classes`` detections scored proposal score x class
probability, then the run's final Soft-NMS (its ``inference`` section, as for every method).
The class-agnostic proposal Soft-NMS of stage 1 is B-I's own (``proposal_nms_sigma``,
``proposals_kept``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stale.baselines.clip_detector import ensemble_embeddings
from stale.core.errors import StaleError
from stale.model.decoding import Candidates, Detections, InferenceConfig, select_detections, soft_nms


@dataclass
class TwoStageConfig:
    """B-I settings (module docstring; docs/baselines.md). ``proposal_nms_sigma`` /
    ``proposals_kept``: stage 1's class-agnostic proposal Soft-NMS; the final Soft-NMS of the
    detections is the run's ``inference`` section."""

    hidden: int = 256
    layers: int = 3
    kernel: int = 3
    dropout: float = 0.1
    boundary_width: float = 1.5      # snippets on each side of a boundary that are "start"/"end"
    peak_ratio: float = 0.5
    max_length: int | None = None    # longest proposal in snippets (None: T)
    max_proposals: int = 200
    proposal_nms_sigma: float = 0.5
    proposals_kept: int = 100
    proposals: Literal["predicted", "ground_truth"] = "predicted"
    template: str = "a video of {}."
    temperature: float = 0.01
    top_classes: int = 2

    def validate(self) -> None:
        if min(self.hidden, self.layers, self.max_proposals, self.proposals_kept, self.top_classes) < 1:
            raise StaleError("two_stage: sizes and counts must be >= 1")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise StaleError(f"two_stage.kernel must be odd, got {self.kernel}")
        if self.template.count("{}") != 1:
            raise StaleError("two_stage.template needs exactly one '{}'")
        if not 0.0 < self.peak_ratio <= 1.0 or not self.temperature > 0 or not self.boundary_width > 0:
            raise StaleError("two_stage: peak_ratio in (0, 1], temperature and boundary_width > 0")


@dataclass
class ProposalOutput:
    """Per-snippet logits (B, T) of an action start, end and actionness."""

    start: Tensor
    end: Tensor
    actionness: Tensor

    def float(self) -> "ProposalOutput":
        return ProposalOutput(self.start.float(), self.end.float(), self.actionness.float())


@dataclass
class ProposalLoss:
    """Terms of the proposal generator's objective (class-balanced BCE of each target)."""

    total: Tensor
    start: Tensor
    end: Tensor
    actionness: Tensor

    def values(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name).detach()) for f in fields(self)}


class ProposalNet(nn.Module):
    """Snippet features (B, T, D) -> :class:`ProposalOutput`; same call signature as STALE
    (``class_names`` and ``text`` are ignored: the proposals are class-agnostic)."""

    def __init__(self, input_dim: int, cfg: TwoStageConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        layers: list[nn.Module] = []
        width = input_dim
        for _ in range(cfg.layers):
            layers += [nn.Conv1d(width, cfg.hidden, cfg.kernel, padding=cfg.kernel // 2), nn.ReLU(),
                       nn.Dropout(cfg.dropout)]
            width = cfg.hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv1d(cfg.hidden, 3, 1)

    def forward(self, features: Tensor, class_names: Sequence[str] | None = None, gt_fg=None,
                text=None) -> ProposalOutput:
        x = self.head(self.body(features.transpose(1, 2)))                 # (B, 3, T)
        return ProposalOutput(x[:, 0], x[:, 1], x[:, 2])


def boundary_targets(instance_masks: Tensor, fg: Tensor, width: float) -> tuple[Tensor, Tensor]:
    """Start / end targets (B, T) in {0, 1} from the row-wise instance masks (B, T, T): snippet
    t is a start (end) when it lies within ``width`` snippets of some instance's first (last)
    snippet."""
    B, T, _ = instance_masks.shape
    pos = torch.arange(T, device=instance_masks.device, dtype=torch.float32)
    m = instance_masks > 0.5
    rows = fg > 0.5                                                       # (B, T) rows that own an instance
    first = torch.where(m, pos, torch.full_like(pos, float(T))).amin(-1)   # (B, T) start of row t's instance
    last = torch.where(m, pos, torch.full_like(pos, -1.0)).amax(-1)
    def near(anchor):
        d = (pos.view(1, 1, T) - anchor.unsqueeze(-1)).abs() <= width      # (B, rows, T)
        return (d & rows.unsqueeze(-1)).any(1).float()
    return near(first), near(last)


def _balanced_bce(logits: Tensor, target: Tensor) -> Tensor:
    """Mean over videos of ``mean_{pos} BCE + mean_{neg} BCE`` (0 for an empty side)."""
    pos = target > 0.5
    pos_l = F.softplus(-logits) * pos
    neg_l = F.softplus(logits) * ~pos
    n_pos, n_neg = pos.sum(1), (~pos).sum(1)
    term = (pos_l.sum(1) / n_pos.clamp(min=1)) + (neg_l.sum(1) / n_neg.clamp(min=1))
    return term.mean()


class ProposalObjective(nn.Module):
    """``loss(ProposalOutput, Targets) -> ProposalLoss``."""

    def __init__(self, cfg: TwoStageConfig):
        super().__init__()
        self.cfg = cfg

    def forward(self, out: ProposalOutput, targets) -> ProposalLoss:
        start_t, end_t = boundary_targets(targets.instance_masks, targets.fg_mask, self.cfg.boundary_width)
        ls = _balanced_bce(out.start, start_t)
        le = _balanced_bce(out.end, end_t)
        la = _balanced_bce(out.actionness, targets.fg_mask)
        return ProposalLoss(ls + le + la, ls, le, la)


def _peaks(p: Tensor, ratio: float) -> Tensor:
    """(B, T) bool: local maxima of ``p`` or values above ``ratio`` x the row maximum."""
    left = F.pad(p, (1, 0), value=-1.0)[:, :-1]
    right = F.pad(p, (0, 1), value=-1.0)[:, 1:]
    return ((p >= left) & (p >= right)) | (p >= ratio * p.amax(1, keepdim=True))


def generate_proposals(out: ProposalOutput, cfg: TwoStageConfig) -> Candidates:
    """Class-agnostic proposals (B, N) in snippets from the net's output (label 0)."""
    ps, pe, pa = (torch.sigmoid(x.float()) for x in (out.start, out.end, out.actionness))
    B, T = ps.shape
    dev = ps.device
    s_ok, e_ok = _peaks(ps, cfg.peak_ratio), _peaks(pe, cfg.peak_ratio)
    idx = torch.arange(T, device=dev)
    length = idx.view(1, T) - idx.view(T, 1) + 1                          # (s, e) -> e - s + 1
    max_len = cfg.max_length or T
    pair = (length >= 1) & (length <= max_len)
    csum = F.pad(pa.cumsum(1), (1, 0))                                    # (B, T+1)
    mean_act = (csum[:, 1:].unsqueeze(1) - csum[:, :-1].unsqueeze(2)) / length.clamp(min=1)  # (B, s, e)
    score = ps.unsqueeze(2) * pe.unsqueeze(1) * mean_act
    ok = s_ok.unsqueeze(2) & e_ok.unsqueeze(1) & pair
    score = torch.where(ok, score, torch.full_like(score, -1.0)).reshape(B, T * T)
    k = min(cfg.max_proposals, T * T)
    top, flat = score.topk(k, dim=1)
    cand = Candidates(start=flat // T, end=flat % T + 1, label=torch.zeros_like(flat),
                      score=top.clamp(min=0.0), valid=top > 0)
    nms = InferenceConfig(nms_sigma=cfg.proposal_nms_sigma, top_n=cfg.proposals_kept, class_aware_nms=False,
                          min_score=0.0)
    keep, kept_score, kept_valid = soft_nms(cand, nms)
    return Candidates(cand.start.gather(1, keep), cand.end.gather(1, keep), torch.zeros_like(keep),
                      kept_score, kept_valid)


def ground_truth_proposals(targets) -> Candidates:
    """The annotated instances of each video (from the row-wise masks) as proposals of score 1."""
    m = targets.instance_masks > 0.5
    B, T, _ = m.shape
    pos = torch.arange(T, device=m.device)
    first = torch.where(m, pos, torch.full_like(pos, T)).amin(-1)           # (B, T)
    last = torch.where(m, pos, torch.full_like(pos, -1)).amax(-1)
    rows = targets.fg_mask > 0.5
    key = torch.where(rows, first * (T + 1) + last, torch.full_like(first, -1))
    # one proposal per distinct (first, last) extent
    srt, _ = key.sort(dim=1)
    distinct = torch.ones_like(srt, dtype=torch.bool)
    distinct[:, 1:] = srt[:, 1:] != srt[:, :-1]
    valid = distinct & (srt >= 0)
    start, end = srt // (T + 1), srt % (T + 1) + 1
    return Candidates(start.clamp(min=0), end.clamp(min=0), torch.zeros_like(start),
                      valid.float(), valid)


class TwoStageDetector:
    """B-I as a detector: ``detector(features (B, T, E), class_names, durations, targets=None)``;
    ``nms``: the run's inference settings, whose Soft-NMS fields select the final detections."""

    def __init__(self, net: ProposalNet, tower, cfg: TwoStageConfig, device: torch.device | str = "cpu",
                 nms: InferenceConfig | None = None):
        cfg.validate()
        self.model = net.to(device).eval()
        self.tower = tower
        self.cfg = cfg
        self.nms = nms or InferenceConfig()
        self.nms.validate()
        self.needs_targets = cfg.proposals == "ground_truth"
        self._cache: dict[tuple[str, ...], Tensor] = {}

    def text_embeddings(self, class_names: Sequence[str]) -> Tensor:
        key = tuple(class_names)
        if key not in self._cache:
            self._cache = {key: ensemble_embeddings(key, [self.cfg.template], self.tower)}
        return self._cache[key]

    @torch.no_grad()
    def __call__(self, features: Tensor, class_names: Sequence[str], durations, targets=None) -> Detections:
        cfg = self.cfg
        text = self.text_embeddings(class_names).to(features.device)
        if features.shape[-1] != text.shape[-1]:
            raise StaleError(f"B-I classifies pooled features against CLIP text embeddings: the features "
                             f"must be CLIP image features ({text.shape[-1]}-d); got {features.shape[-1]}-d")
        if cfg.proposals == "ground_truth":
            if targets is None:
                raise StaleError("two_stage.proposals=ground_truth needs annotated test videos")
            props = ground_truth_proposals(targets)
        else:
            props = generate_proposals(self.model(features), cfg)
        B, T, _ = features.shape
        csum = F.pad(features.float().cumsum(1), (0, 0, 1, 0))               # (B, T+1, E)
        s, e = props.start.clamp(0, T), props.end.clamp(0, T)
        pooled = (csum.gather(1, e.unsqueeze(-1).expand(-1, -1, csum.shape[-1]))
                  - csum.gather(1, s.unsqueeze(-1).expand(-1, -1, csum.shape[-1])))
        pooled = pooled / (e - s).clamp(min=1).unsqueeze(-1)
        probs = (F.normalize(pooled, dim=-1) @ text.T / cfg.temperature).softmax(-1)   # (B, N, K)
        k = min(cfg.top_classes, probs.shape[-1])
        cls_p, cls = probs.topk(k, dim=-1)                                    # (B, N, k)
        n = props.score.shape[1]
        cand = Candidates(
            start=props.start.unsqueeze(-1).expand(B, n, k).reshape(B, n * k),
            end=props.end.unsqueeze(-1).expand(B, n, k).reshape(B, n * k),
            label=cls.reshape(B, n * k),
            score=(props.score.unsqueeze(-1) * cls_p).reshape(B, n * k),
            valid=props.valid.unsqueeze(-1).expand(B, n, k).reshape(B, n * k))
        return select_detections(cand, durations, T, len(class_names), self.nms)
