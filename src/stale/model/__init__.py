"""The STALE network (temporal encoder, masking, cross-modal adaptation, heads) and its losses.

See docs/model.md for the mapping from the paper's equations to this code.
"""

from stale.model.cross_modal import CrossModalAdapter, CrossModalConfig
from stale.model.heads import (ConsistencyProjections, CosineClassifier, DynamicMaskLocalizer,
                               HeadsConfig)
from stale.model.losses import (LossConfig, STALELoss, classification_loss, completeness_loss,
                                consistency_loss, mask_loss)
from stale.model.masking import MaskingConfig, RepresentationMasking, straight_through_binarize
from stale.model.network import STALE, ModelConfig
from stale.model.temporal import TemporalConfig, TemporalEncoder

__all__ = [
    "STALE", "ModelConfig", "STALELoss", "LossConfig", "TemporalConfig", "TemporalEncoder",
    "MaskingConfig", "RepresentationMasking", "straight_through_binarize", "CrossModalConfig",
    "CrossModalAdapter", "HeadsConfig", "CosineClassifier", "DynamicMaskLocalizer",
    "ConsistencyProjections", "classification_loss", "mask_loss", "completeness_loss",
    "consistency_loss",
]
