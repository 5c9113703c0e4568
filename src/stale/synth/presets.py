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

The honest family (issue 21): class codes from the generator's own prompt ensemble and name
paraphrases with a per-class perturbation, centred on a class-free vocabulary
(:mod:`stale.synth.codes`), so no shipped prompt starts a detector at the answer:

* ``clip-neutral`` -- CLIP-like (rotation + modality gap), backgrounds that walk through scenes
  unrelated to the action classes, mild per-video gain and offset: the world in which a
  training-free CLIP detector works.
* ``clip-context`` -- the same with backgrounds that carry the context of the video's classes.
* ``nonaligned-clean`` -- features through a fixed random map unknown to the detector (256-d),
  class-neutral backgrounds.
* ``nonaligned-nuisance`` -- the same with per-video channel gain, offsets and a background that
  drifts among scenes.

Measured difficulty of each preset: docs/synth.md ("Presets").
"""

from __future__ import annotations

from dataclasses import replace

from stale.core.errors import StaleError
from stale.synth.codes import GENERATOR_TEMPLATES, ClassCodeConfig
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


#: class codes of the honest family: never a shipped prompt, near but not at the name's text
HONEST_CODES = ClassCodeConfig(templates=list(GENERATOR_TEMPLATES), paraphrase=False, perturbation=0.5,
                               reference="vocabulary")
_NEUTRAL = RenderConfig(noise=1.0, instance_variation=0.6, actionness=0.5, bg_context=0.0,
                        bg_scenes=8, scene_length_s=40.0, scene_spread=2.0, gain=0.1, offset=0.3)
_NUISANCE = replace(_NEUTRAL, gain=0.3, offset=0.6, bg_drift=0.9)
_CLIP = VisualEncoderConfig(kind="aligned", rotation=0.6, gap=1.0, aligned_base="raw")
# CLIP's frame features change little from one frame to the next, and one action's instances
# look alike to it: less snippet noise and instance variation than the non-aligned settings
_CLIP_NEUTRAL = replace(_NEUTRAL, noise=0.3, instance_variation=0.3)

PRESETS.update({
    "clip-neutral": SynthConfig(layout="thumos14", dim=128, encoder=_CLIP, render=_CLIP_NEUTRAL, codes=HONEST_CODES),
    "clip-context": SynthConfig(layout="thumos14", dim=128, encoder=_CLIP,
                                render=replace(_CLIP_NEUTRAL, bg_context=1.0), codes=HONEST_CODES),
    "nonaligned-clean": SynthConfig(layout="thumos14", dim=256, encoder=VisualEncoderConfig(kind="linear"),
                                    render=replace(_NEUTRAL, bg_scenes=0, gain=0.0, offset=0.0),
                                    codes=HONEST_CODES),
    "nonaligned-nuisance": SynthConfig(layout="thumos14", dim=256, encoder=VisualEncoderConfig(kind="linear"),
                                       render=_NUISANCE, codes=HONEST_CODES),
})
#: the four settings of the honest benchmark family, in the order docs and specs list them
HONEST = ("clip-neutral", "clip-context", "nonaligned-clean", "nonaligned-nuisance")


def preset(name: str, seed: int = 0, max_videos_per_subset: int | None = None, length_factor: int = 1) -> SynthConfig:
    """The :class:`SynthConfig` of preset ``name`` with the given seed and subsample
    (``length_factor``: videos that many times longer, same actions; :class:`SynthConfig`)."""
    if name not in PRESETS:
        raise StaleError(f"unknown synth preset {name!r} (have: {', '.join(PRESETS)})")
    return replace(PRESETS[name], seed=seed, max_videos_per_subset=max_videos_per_subset, length_factor=length_factor)
