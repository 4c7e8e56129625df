"""Scores of a detected map against a reference: counts known by construction (two overlapping squares)."""

from __future__ import annotations

import numpy as np
import pytest

from orbitcube.pipeline.analytics.score import edge_band, score_events, score_map


def _square(y0: int, x0: int, n: int, shape=(40, 40)) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[y0 : y0 + n, x0 : x0 + n] = True
    return m


def test_overlapping_squares_score_as_counted_by_hand() -> None:
    truth = _square(5, 5, 10)  # 100 px
    pred = _square(10, 5, 10)  # shifted 5 rows: 50 px overlap
    s = score_map(pred, truth)
    assert (s["tp"], s["fp"], s["fn"]) == (50, 50, 50)
    assert s["precision"] == s["recall"] == s["f1"] == 0.5
    assert s["iou"] == pytest.approx(50 / 150)
    nothing = score_map(np.zeros_like(truth), truth)
    assert nothing["precision"] == 0.0 and nothing["recall"] == 0.0 and nothing["fn"] == 100
    only_top = score_map(pred, truth, scored=np.arange(40)[:, None] < 15)  # rows 0..14 count
    assert (only_top["tp"], only_top["fp"], only_top["fn"]) == (50, 0, 50)
    with pytest.raises(ValueError, match="differ in shape"):
        score_map(pred[:5], truth)


def test_edge_band_is_one_pixel_each_side_of_the_edge() -> None:
    sq = _square(10, 10, 10)
    band = edge_band(sq, 1)
    assert band.sum() == (10 * 10 - 8 * 8) + (4 * 10)  # the inner ring + the 4-connected outer ring
    assert not band[14, 14] and band[10, 14] and band[9, 14] and not band[8, 14] and not band[9, 9]
    assert edge_band(sq, 0).sum() == 0 and edge_band(np.zeros_like(sq)).sum() == 0
    # a mask touching the grid border has no band along the border
    assert not edge_band(_square(0, 0, 10), 1)[0, :5].any()


def test_score_events_per_type_and_any_leave_edges_out() -> None:
    truth = {"burn": _square(5, 5, 10), "flood": _square(25, 25, 10)}
    detected = {"burn": _square(5, 5, 10) | _square(30, 0, 4)}  # burn exact plus a false alarm, flood missed
    s = score_events(detected, truth, edge_px=1)
    assert s["burn"]["recall"] == 1.0 and s["burn"]["fp"] == 16 and s["burn"]["tp"] == 64  # 8 x 8 inside
    assert s["flood"]["tp"] == 0 and s["flood"]["fn"] == 64 and s["flood"]["precision"] == 0.0
    assert s["any"]["tp"] == 64 and s["any"]["fn"] == 64 and s["any"]["fp"] == 16
    assert score_events(detected, truth, edge_px=0)["burn"]["tp"] == 100
