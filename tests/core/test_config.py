from dataclasses import dataclass, field

import pytest

from stale.core.config import apply_overrides, from_dict, load_config, to_dict
from stale.core.errors import StaleError


@dataclass
class Inner:
    width: int = 8
    rates: list[float] = field(default_factory=lambda: [0.1, 0.2])


@dataclass
class Outer:
    name: str = "x"
    lr: float = 1e-4
    inner: Inner = field(default_factory=Inner)
    tag: str | None = None


def test_from_dict_types_and_nesting():
    cfg = from_dict(Outer, {"lr": 1, "inner": {"width": 3}})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.inner.width == 3 and cfg.inner.rates == [0.1, 0.2]
    assert to_dict(cfg) == {"name": "x", "lr": 1.0, "inner": {"width": 3, "rates": [0.1, 0.2]}, "tag": None}


def test_unknown_keys_and_bad_types_name_the_key():
    with pytest.raises(StaleError, match="inner.*widht"):
        from_dict(Outer, {"inner": {"widht": 3}})
    with pytest.raises(StaleError, match="inner.width"):
        from_dict(Outer, {"inner": {"width": "wide"}})
    with pytest.raises(StaleError, match="lr"):
        from_dict(Outer, {"lr": True})


def test_overrides_parse_yaml_values(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: base\ninner:\n  width: 4\n")
    cfg = load_config(Outer, p, ["inner.width=16", "lr=3e-5", "inner.rates=[1, 2]", "tag=null"])
    assert cfg.inner.width == 16 and cfg.lr == 3e-5 and cfg.inner.rates == [1.0, 2.0] and cfg.tag is None
    assert apply_overrides({}, ["a.b.c=1"]) == {"a": {"b": {"c": 1}}}
    with pytest.raises(StaleError, match="key.sub=value"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(StaleError, match="not found"):
        load_config(Outer, tmp_path / "missing.yaml")
