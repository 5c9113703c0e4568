"""Named settings of the built-in semi-synthetic benchmark (THUMOS14 layout), used by
``stale demo``, ``stale synth --preset`` and the experiment specs (``synth: {preset: NAME}``).

* ``aligned`` -- CLIP-like: features share the 128-d space of the offline text tower (the demo's
  benchmark), with a class-agnostic actionness cue; per-snippet zero-shot matching of unseen
  classes against their text embeddings is about 0.5 accurate (chance 0.2).
* ``aligned-gap`` -- the same, with the two misalignments of CLIP's image and text embeddings:
  a fixed random rotation of the class prototypes and a constant modality-gap offset.
* ``nonaligned`` -- features in an unrelated 256-d space (a fixed random linear map of the class
  text plus a non-linear perturbation), as from a video encoder trained without language; the
  class geometry is kept, so a linear map fitted on the seen classes can recover it.

Measured difficulty of each preset: docs/synth.md ("Presets").
"""

from __future__ import annotations

from dataclasses import replace

from stale.core.errors import StaleError
from stale.synth.encoder import VisualEncoderConfig
from stale.synth.generate import SynthConfig
from stale.synth.render import RenderConfig

_RENDER = RenderConfig(noise=1.0, instance_variation=0.6, actionness=1.0)

PRESETS: dict[str, SynthConfig] = {
    "aligned": SynthConfig(layout="thumos14", dim=128, encoder=VisualEncoderConfig(kind="aligned"),
                           render=_RENDER),
    "aligned-gap": SynthConfig(layout="thumos14", dim=128,
                               encoder=VisualEncoderConfig(kind="aligned", rotation=0.6, gap=1.0),
                               render=_RENDER),
    "nonaligned": SynthConfig(layout="thumos14", dim=256, encoder=VisualEncoderConfig(kind="linear"),
                              render=_RENDER),
}


def preset(name: str, seed: int = 0, max_videos_per_subset: int | None = None) -> SynthConfig:
    """The :class:`SynthConfig` of preset ``name`` with the given seed and subsample."""
    if name not in PRESETS:
        raise StaleError(f"unknown synth preset {name!r} (have: {', '.join(PRESETS)})")
    return replace(PRESETS[name], seed=seed, max_videos_per_subset=max_videos_per_subset)
