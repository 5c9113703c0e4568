"""The complete run configuration: data, protocol, model, text encoder, training, inference.

``StaleConfig`` is a tree of typed dataclasses; each part's config is defined next to the module
it configures. Load one with :func:`load_run_config`: a YAML file (with ``base:`` inheritance)
or the name of a shipped config, plus ``key.sub=value`` overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from typing import Literal

from stale.baselines.clip_detector import ClipDetectorConfig
from stale.baselines.linear_probe import LinearProbeConfig
from stale.baselines.two_stage import TwoStageConfig
from stale.core.config import load_config
from stale.core.errors import StaleError
from stale.data.config import DataConfig, ProtocolConfig
from stale.model.decoding import InferenceConfig
from stale.model.labels import LabelConfig
from stale.model.network import ModelConfig
from stale.text import TextEncoderConfig
from stale.training.config import TrainConfig


#: detection methods a run can train and predict with (docs/baselines.md)
METHODS = ("stale", "clip_detector", "linear_probe", "two_stage")


@dataclass
class StaleConfig:
    """A run. ``method`` selects the detector: ``stale`` (the paper's model, ``model`` section),
    ``clip_detector`` (training-free reference), ``linear_probe`` or ``two_stage`` (B-I); each
    baseline reads its own section, and they share ``data``, ``protocol``, ``text``, ``labels``
    and the final Soft-NMS -- the Soft-NMS fields of ``inference``, the one place every method
    reads them from (``stale.model.decoding.SOFT_NMS_KEYS``)."""

    method: Literal["stale", "clip_detector", "linear_probe", "two_stage"] = "stale"
    data: DataConfig = field(default_factory=DataConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    clip_detector: ClipDetectorConfig = field(default_factory=ClipDetectorConfig)
    linear_probe: LinearProbeConfig = field(default_factory=LinearProbeConfig)
    two_stage: TwoStageConfig = field(default_factory=TwoStageConfig)

    def validate(self) -> None:
        if self.data.features.dim is not None and self.data.features.dim != self.model.input_dim:
            raise StaleError(f"data.features.dim ({self.data.features.dim}) and model.input_dim "
                             f"({self.model.input_dim}) disagree")


def load_run_config(path: str | Path | None, overrides: Sequence[str] = ()) -> StaleConfig:
    """The run config of a YAML file (or shipped config name) plus ``key=value`` overrides; keys of
    older versions are mapped (:mod:`stale.pipeline.config_migration`)."""
    return load_config(StaleConfig, path, overrides, migrate=_migrate)


def final_method(data: dict, overrides: Sequence[str]) -> str:
    """The method a config dict ``data`` runs once ``overrides`` are applied (the last
    ``method=`` wins)."""
    from stale.core.config import parse_override

    method = data.get("method", "stale")
    for text in overrides:
        if str(text).split("=", 1)[0].strip() == "method":
            method = parse_override(text)[1]
    return method


def _migrate(data: dict, overrides: Sequence[str], where: str) -> tuple[dict, Sequence[str]]:
    from stale.pipeline.config_migration import migrate_overrides, migrate_user_config

    method = final_method(data, overrides)
    return migrate_user_config(data, where, method), migrate_overrides(overrides, method)

