"""The complete run configuration: data, protocol, model, text encoder, training, inference.

``StaleConfig`` is a tree of typed dataclasses; each model part's config is defined next to the
module it configures. Load one with :func:`load_run_config` (YAML file + ``key.sub=value``
overrides). Relative paths in a config are resolved against the current directory; the special
value ``builtin:thumos14`` / ``builtin:activitynet`` names an annotation file shipped with stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from stale.configtools import load_config
from stale.engine import TrainConfig
from stale.data.features import FeatureConfig
from stale.errors import StaleError
from stale.labels import LabelConfig
from stale.model.stale import ModelConfig
from stale.postprocess import InferenceConfig
from stale.text import TextEncoderConfig


@dataclass
class DataConfig:
    """Where the annotations and features are, and how features are turned into snippets."""

    dataset: str = "thumos14"  # thumos14 | activitynet: selects the standard class splits
    annotations: str = "builtin:thumos14"
    features: FeatureConfig = field(default_factory=FeatureConfig)
    num_snippets: int = 256  # T: every video is resampled to this many snippets (paper: 256 / 100)
    train_subset: str = "validation"  # THUMOS14 trains on its validation videos
    test_subset: str = "test"
    missing_features: Literal["error", "skip"] = "error"  # videos without a feature file
    blocked: list[str] = field(default_factory=list)  # "api", "missing_features" or files of ids
    exclude_videos: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if self.num_snippets < 2:
            raise StaleError("data.num_snippets must be >= 2")

    def annotation_path(self) -> Path:
        if self.annotations.startswith("builtin:"):
            from stale.data.resources import annotations_path

            return annotations_path(self.annotations.split(":", 1)[1])
        return Path(self.annotations)


@dataclass
class ProtocolConfig:
    """Zero-shot (train on seen classes, test on unseen ones) or closed-set (all classes)."""

    kind: Literal["zero_shot", "closed_set"] = "zero_shot"
    setting: int = 75  # 75 (75% seen / 25% unseen) or 50
    split: int = 0  # which of the 10 standard splits
    seen_file: str | None = None  # user-defined split: one class name per line
    unseen_file: str | None = None

    def validate(self) -> None:
        if self.setting not in (75, 50):
            raise StaleError(f"protocol.setting must be 75 or 50, got {self.setting}")
        if (self.seen_file is None) != (self.unseen_file is None):
            raise StaleError("protocol.seen_file and protocol.unseen_file go together")


@dataclass
class StaleConfig:
    data: DataConfig = field(default_factory=DataConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)


def load_run_config(path: str | Path | None, overrides: list[str] | tuple = ()) -> StaleConfig:
    return load_config(StaleConfig, path, overrides)
