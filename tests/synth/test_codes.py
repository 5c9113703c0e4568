"""Class codes of the honest benchmark family: never a shipped prompt, class-free centring."""

import numpy as np
import pytest
import yaml

from stale.synth.codes import (GENERATOR_TEMPLATES, REFERENCE_VOCABULARY, ClassCodeConfig, class_codes,
                               paraphrase)
from stale.synth.encoder import RandomVisualEncoder, VisualEncoderConfig
from stale.synth.presets import HONEST, preset
from stale.text.embed import DEFAULT_TEMPLATE, ENSEMBLE_TEMPLATES

NAMES = ["BaseballPitch", "HighJump", "PoleVault", "Diving", "ThrowDiscus"]


def _shipped_templates():
    """Every prompt template the package ships: the detector ensemble, text-embed's default and
    each shipped config's ``ctx_init`` (with the class name after it)."""
    from pathlib import Path

    import stale

    found = set(ENSEMBLE_TEMPLATES) | {DEFAULT_TEMPLATE}
    for path in (Path(stale.__file__).parent / "configs").glob("*.yaml"):
        text = (yaml.safe_load(path.read_text()) or {}).get("text") or {}
        if text.get("ctx_init"):
            found |= {f"{text['ctx_init']} {{}}.", f"{text['ctx_init']} {{}}"}
    return found


def test_generator_templates_are_none_of_the_shipped_ones():
    shipped = _shipped_templates()
    assert "a video of {}." in shipped
    assert not set(GENERATOR_TEMPLATES) & shipped


def test_paraphrase():
    assert paraphrase("BaseballPitch") == "baseball pitch"
    assert paraphrase("Playing_guitar") == "playing guitar"
    assert paraphrase("Shotput") == "shotput"


@pytest.mark.parametrize("name", HONEST)
def test_honest_codes_never_equal_a_detector_starting_point(name, embed):
    cfg = preset(name).codes

    def embed_t(names, template):
        from stale.text import embed_class_names
        return embed_class_names(list(names), template=template)

    codes, _ = class_codes(NAMES, cfg, embed_t, np.random.default_rng(0))
    codes = codes / np.linalg.norm(codes, axis=1, keepdims=True)
    for template in _shipped_templates():
        start = embed_t(NAMES, template)
        cos = (codes * start).sum(1)
        assert cos.max() < 0.99, (template, cos)
    # but near: each code is closest to its own name's prompt among the 5 (the zero-shot signal)
    start = embed_t(NAMES, DEFAULT_TEMPLATE)
    centred = codes - codes.mean(0)
    assert ((centred @ (start - start.mean(0)).T).argmax(1) == np.arange(len(NAMES))).mean() >= 0.6


def test_vocabulary_centring_uses_no_class_information(embed):
    """With the vocabulary reference, a class's prototype does not depend on the other class
    names; with the legacy class-mean centring it does."""
    rng_codes = np.random.default_rng(1)
    a = rng_codes.standard_normal((4, 32))
    b = a.copy()
    b[3] = rng_codes.standard_normal(32)          # another "unseen" class
    ref = np.random.default_rng(2).standard_normal((len(REFERENCE_VOCABULARY), 32))
    cfg = VisualEncoderConfig(kind="aligned")
    pa = RandomVisualEncoder(a, 32, np.random.default_rng(0), cfg, ref)(a)
    pb = RandomVisualEncoder(b, 32, np.random.default_rng(0), cfg, ref)(b)
    np.testing.assert_allclose(pa[:3], pb[:3])
    la = RandomVisualEncoder(a, 32, np.random.default_rng(0), cfg)(a)
    lb = RandomVisualEncoder(b, 32, np.random.default_rng(0), cfg)(b)
    assert not np.allclose(la[:3], lb[:3])


def test_perturbation_moves_each_code_by_its_share():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, 16))

    def embed_t(names, template):
        return base / np.linalg.norm(base, axis=1, keepdims=True)

    plain, _ = class_codes(NAMES, ClassCodeConfig(templates=["{}"]), embed_t, np.random.default_rng(3))
    moved, _ = class_codes(NAMES, ClassCodeConfig(templates=["{}"], perturbation=0.5), embed_t,
                           np.random.default_rng(3))
    scale = np.sqrt(((plain - plain.mean(0)) ** 2).sum(1).mean())
    np.testing.assert_allclose(np.linalg.norm(moved - plain, axis=1), 0.5 * scale, rtol=1e-9)


def test_code_config_validation():
    from stale.core.errors import StaleError

    for bad in (ClassCodeConfig(templates=["no slot"]), ClassCodeConfig(perturbation=-1),
                ClassCodeConfig(reference="classes2")):
        with pytest.raises(StaleError):
            bad.validate()
