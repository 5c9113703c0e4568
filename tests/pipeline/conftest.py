"""Fixtures of the pipeline tests."""

from __future__ import annotations

import pytest

from media_util import clips_and_tower


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Five H.264 clips of shapes (media_util.CLIP_SCHEDULES) and a tiny vision-only CLIP."""
    pytest.importorskip("av")
    return clips_and_tower(tmp_path_factory.mktemp("media"))
