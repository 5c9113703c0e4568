"""The complete run configuration: data, protocol, model, text encoder, training, inference.

``StaleConfig`` is a tree of typed dataclasses; each part's config is defined next to the module
it configures. Load one with :func:`load_run_config`: a YAML file (with ``base:`` inheritance)
or the name of a shipped config, plus ``key.sub=value`` overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from stale.core.config import load_config
from stale.core.errors import StaleError
from stale.data.config import DataConfig, ProtocolConfig
from stale.model.decoding import InferenceConfig
from stale.model.labels import LabelConfig
from stale.model.network import ModelConfig
from stale.text import TextEncoderConfig
from stale.training.config import TrainConfig


@dataclass
class StaleConfig:
    data: DataConfig = field(default_factory=DataConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)

    def validate(self) -> None:
        if self.data.features.dim is not None and self.data.features.dim != self.model.input_dim:
            raise StaleError(f"data.features.dim ({self.data.features.dim}) and model.input_dim "
                             f"({self.model.input_dim}) disagree")


def load_run_config(path: str | Path | None, overrides: Sequence[str] = ()) -> StaleConfig:
    return load_config(StaleConfig, path, overrides)

