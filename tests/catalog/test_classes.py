"""Built-in quality-layer knowledge: one source for the simulator and the loader, consistent with real metadata."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from orbitcube.catalog.classes import (
    BUILTIN_LAYERS,
    DEFAULT_MASK,
    MASK_ALIASES,
    MASK_NAMES,
    MASK_SYNONYMS,
    QA_CONFIDENCE_BITS,
    SCL,
    FmaskBit,
    QABit,
    builtin_layer,
    fmask_bitfields,
    normalise_name,
    qa_pixel_bitfields,
    scl_classes,
)

REAL_ITEMS = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-stac-items"


def test_catalog_classes_does_not_import_pipeline() -> None:
    code = "import sys, orbitcube.catalog.classes, orbitcube.catalog.simulator; print(any(m.startswith('orbitcube.pipeline') for m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


def test_the_simulator_uses_the_one_source() -> None:
    import orbitcube.catalog.simulator as sim
    from orbitcube.catalog.simulator import sensors

    assert sim.SCL is SCL and sim.QABit is QABit and sensors.QA_CONFIDENCE_BITS is QA_CONFIDENCE_BITS


def test_simulated_items_carry_the_built_in_classification(mixed_mission) -> None:
    """The simulator's STAC metadata is the built-in description, so items decode the same with or without it."""
    for it in mixed_mission.items:
        for key, asset in it.assets.items():
            builtin = builtin_layer(key)
            if builtin is not None:
                field, value = next(iter(builtin[1].items()))
                assert asset.extra_fields[field] == value, (it.id, key)


def test_simulated_qa_pixel_sets_the_documented_bits(mixed_mission) -> None:
    """QA_PIXEL written by the simulator follows the USGS layout: cloud (bit 3) comes with high cloud confidence
    (bits 8-9 = 3), shadow (bit 4) with high shadow confidence (bits 10-11 = 3), fill (bit 0) alone."""
    import rasterio

    it = next(i for i in mixed_mission.items if "QA_PIXEL" in i.assets)
    with rasterio.open(it.assets["QA_PIXEL"].get_absolute_href()) as src:
        q = src.read(1).astype(np.int64)
    conf = (q >> QA_CONFIDENCE_BITS["cloud"]) & 3
    cloud = (q >> QABit.CLOUD) & 1 == 1
    shadow = (q >> QABit.CLOUD_SHADOW) & 1 == 1
    assert cloud.any() and (conf[cloud] == 3).all()
    assert ((q[shadow] >> QA_CONFIDENCE_BITS["cloud_shadow"]) & 3 == 3).all()
    assert (q[(q & 1) == 1] == 1).all()


def test_scl_classes_follow_esa() -> None:
    classes = scl_classes()
    assert [c["value"] for c in classes] == list(range(12))
    by_value = {c["value"]: c["name"] for c in classes}
    assert (
        by_value[3] == "cloud_shadows"
        and by_value[9] == "cloud_high_probability"
        and by_value[10] == "thin_cirrus"
    )


def test_built_in_qa_pixel_matches_the_real_usgs_bitfields() -> None:
    """Every bit field of the real Landsat C2 item (Planetary Computer) sits at the built-in offset and length."""
    real = json.loads((REAL_ITEMS / "landsat-c2-l2-pc.json").read_text())[0]["assets"]["qa_pixel"]
    real_fields = {
        (f["offset"], f["length"]): normalise_name(f["name"]) for f in real["classification:bitfields"]
    }
    ours = {(f["offset"], f["length"]): f["name"] for f in qa_pixel_bitfields()}
    assert set(real_fields) == set(ours)
    renamed = {"snow_confidence": "snow_ice_confidence"}  # USGS calls the same field both ways
    assert all(renamed.get(n, n) == ours[k] for k, n in real_fields.items())


def test_built_in_fmask_follows_the_hls_v2_user_guide() -> None:
    fields = {(f["offset"], f["length"]): f["name"] for f in fmask_bitfields()}
    assert fields[(1, 1)] == "cloud" and fields[(3, 1)] == "cloud_shadow" and fields[(4, 1)] == "snow_ice"
    assert fields[(2, 1)] == "adjacent_to_cloud_or_shadow" and fields[(5, 1)] == "water"
    assert fields[(6, 2)] == "aerosol_level"
    assert FmaskBit.CLOUD_SHADOW == 3 and QABit.CLOUD == 3  # the trap of issue 13, defect 6


@pytest.mark.parametrize("key", ["SCL", "scl", "QA_PIXEL", "qa_pixel", "Fmask", "FMASK"])
def test_built_in_layers_by_asset_key_any_case(key: str) -> None:
    product, fields = builtin_layer(key)
    assert normalise_name(key) in BUILTIN_LAYERS and product and fields
    assert builtin_layer("B04") is None


def test_vocabulary() -> None:
    assert set(DEFAULT_MASK) <= set(MASK_NAMES)
    assert list(MASK_NAMES) == sorted(set(MASK_SYNONYMS) | set(MASK_ALIASES))  # MaskName lists them all
    assert all(v in MASK_SYNONYMS for v in MASK_ALIASES.values())
    # synonyms are normalised names, each mask name is its own synonym where products use it as is
    for name, syn in MASK_SYNONYMS.items():
        assert all(normalise_name(s) == s for s in syn), name
    assert normalise_name("Snow/ice") == "snow_ice" and normalise_name("No Data") == "no_data"
    assert normalise_name("Adjacent to cloud/shadow") in MASK_SYNONYMS["adjacent"]
