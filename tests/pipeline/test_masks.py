"""Quality masks by name."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from orbitcube.catalog.classes import QA_CONFIDENCE_BITS, FmaskBit
from orbitcube.catalog.simulator import SCL, QABit
from orbitcube.pipeline.errors import LoadError
from orbitcube.pipeline.masks import DEFAULT_MASK, dilate, mask_from_fmask, mask_from_qa_pixel, mask_from_scl


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


def test_fmask_bits_are_not_qa_pixel_bits() -> None:
    """HLS Fmask bit 3 is cloud shadow (QA_PIXEL's bit 3 is cloud), bit 1 cloud, bit 4 snow/ice; bits 6-7 hold the
    aerosol level, set on clear pixels too."""
    aerosol_low = 1 << 6
    fm = (
        np.array([1 << FmaskBit.CLOUD, 1 << FmaskBit.CLOUD_SHADOW, 1 << FmaskBit.SNOW_ICE, 0, 1 << 2])
        | aerosol_low
    )
    fm = fm.astype(np.uint8)
    assert mask_from_fmask(fm, ["shadow"]).tolist() == [False, True, False, False, False]
    assert mask_from_fmask(fm, ["cloud"]).tolist() == [True, False, False, False, False]
    assert mask_from_fmask(fm, ["snow", "adjacent"]).tolist() == [False, False, True, False, True]
    assert mask_from_fmask(fm, DEFAULT_MASK).tolist() == [True, True, False, False, False]
    with pytest.raises(LoadError, match=r"\['dark'\].*cloud_shadow"):
        mask_from_fmask(fm, ["dark"])


def test_fill_is_nodata_and_optional_names_are_skipped() -> None:
    qa = np.array([1 << QABit.FILL, 1 << QABit.CLEAR], np.uint16)
    assert (
        mask_from_qa_pixel(qa, ["fill"]).tolist()
        == mask_from_qa_pixel(qa, ["nodata"]).tolist()
        == [True, False]
    )
    assert not mask_from_qa_pixel(qa, ["saturated"]).any()  # QA_PIXEL has no saturation flag: ignored
    scl = np.array([SCL.SATURATED_OR_DEFECTIVE, SCL.VEGETATION], np.uint8)
    assert mask_from_scl(scl, ["saturated"]).tolist() == [True, False]
    with pytest.raises(LoadError, match=r"QA_PIXEL.*\['dark'\]"):
        mask_from_qa_pixel(qa, ["dark"])  # a required name QA_PIXEL cannot decode
    conf = np.array([0, 1, 2, 3], np.uint16) << QA_CONFIDENCE_BITS["cloud"]
    assert mask_from_qa_pixel(conf, ["cloud_high"]).tolist() == [False, False, False, True]
    assert mask_from_qa_pixel(conf, ["cloud_medium", "cloud_high"]).tolist() == [False, False, True, True]


def test_masks_of_data_arrays_keep_dims_and_coords_and_stay_lazy() -> None:
    scl = xr.DataArray(np.arange(12, dtype=np.uint8).reshape(3, 4), dims=("y", "x"), coords={"y": [3, 2, 1]})
    got = mask_from_scl(scl.chunk({"y": 1}), ["cloud"])
    assert got.chunks is not None and got.dims == ("y", "x") and got["y"].values.tolist() == [3, 2, 1]
    assert np.flatnonzero(got.values).tolist() == [SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY]


def test_dilation_in_metres() -> None:
    m = np.zeros((1, 21, 21), bool)
    m[0, 10, 10] = True
    grown = dilate(m, dilate_m=60, resolution=20)  # 3 pixels
    assert grown[0, 10, 13] and grown[0, 13, 10] and not grown[0, 10, 14]
    assert not grown[0, 13, 13]  # a disk, not a square
