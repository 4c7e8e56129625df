"""Quality masks by name."""

from __future__ import annotations

import numpy as np
import pytest

from catalog.simulator import SCL, QABit
from pipeline.errors import LoadError
from pipeline.masks import dilate, mask_from_qa_pixel, mask_from_scl


def test_scl_classes_by_name() -> None:
    scl = np.arange(12, dtype=np.uint8)
    got = mask_from_scl(scl, ["cloud", "shadow"])
    assert set(np.flatnonzero(got)) == {
        SCL.CLOUD_SHADOWS,
        SCL.CLOUD_MEDIUM_PROBABILITY,
        SCL.CLOUD_HIGH_PROBABILITY,
    }
    assert set(np.flatnonzero(mask_from_scl(scl, ["water", "snow"]))) == {SCL.WATER, SCL.SNOW}


def test_qa_pixel_bits_by_name() -> None:
    qa = np.array(
        [1 << QABit.CLOUD, 1 << QABit.CLOUD_SHADOW, 1 << QABit.CLEAR, 1 << QABit.FILL, 1 << QABit.CIRRUS]
    )
    assert mask_from_qa_pixel(qa, ["cloud", "shadow"]).tolist() == [True, True, False, False, False]
    assert mask_from_qa_pixel(qa, ["nodata", "cirrus"]).tolist() == [False, False, False, True, True]


def test_unknown_mask_name_lists_the_choices() -> None:
    with pytest.raises(LoadError, match="clouds.*choose from"):
        mask_from_scl(np.zeros(3, np.uint8), ["clouds"])


def test_dilation_in_metres() -> None:
    m = np.zeros((1, 21, 21), bool)
    m[0, 10, 10] = True
    grown = dilate(m, dilate_m=60, resolution=20)  # 3 pixels
    assert grown[0, 10, 13] and grown[0, 13, 10] and not grown[0, 10, 14]
    assert not grown[0, 13, 13]  # a disk, not a square
