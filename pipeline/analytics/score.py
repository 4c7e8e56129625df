"""Scoring change maps against a reference: precision, recall, F1 and IoU per event type.

A detected map and a reference map are boolean arrays on the same grid, dims (y, x). Pixels within ``edge_px``
pixels of a reference polygon's edge can be left out: once a scene is resampled onto the grid they mix the surface
before and after the change, so neither answer is wrong there. The reference can be the simulator's planted truth
(:meth:`orbitcube.catalog.simulator.Truth.event_mask`) or any labelled map.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.ndimage import binary_dilation, binary_erosion

__all__ = ["edge_band", "score_events", "score_map"]


def edge_band(mask: np.ndarray, px: int = 1) -> np.ndarray:
    """True on the pixels within ``px`` pixels (4-connected steps) of the edge of ``mask``, on either side;
    dims (y, x) as ``mask``. ``px=0`` gives an all-False band."""
    mask = np.asarray(mask, dtype=bool)
    if px <= 0 or not mask.any():
        return np.zeros_like(mask)
    return binary_dilation(mask, iterations=px) & ~binary_erosion(mask, iterations=px, border_value=1)


def score_map(
    pred: np.ndarray, truth: np.ndarray, scored: np.ndarray | None = None
) -> dict[str, float | int]:
    """Pixel scores of the boolean map ``pred`` against ``truth`` over the pixels where ``scored`` is True (all
    pixels by default): counts ``tp``, ``fp``, ``fn`` and ``precision`` tp/(tp+fp), ``recall`` tp/(tp+fn),
    ``f1`` 2tp/(2tp+fp+fn) and ``iou`` tp/(tp+fp+fn), each 0 when its denominator is 0 (no detection, no truth)."""
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise ValueError(f"score_map: detected map {pred.shape} and reference {truth.shape} differ in shape")
    ok = np.ones_like(truth) if scored is None else np.asarray(scored, dtype=bool)
    tp = int((pred & truth & ok).sum())
    fp = int((pred & ~truth & ok).sum())
    fn = int((~pred & truth & ok).sum())

    def ratio(a: int, b: int) -> float:
        return a / b if b else 0.0

    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "iou": ratio(tp, tp + fp + fn),
    }


def score_events(
    detected: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray], *, edge_px: int = 1
) -> dict[str, dict[str, float | int]]:
    """Scores (see :func:`score_map`) of each event type's detected map against its reference map, keyed by event
    type (the keys of ``truth``; a type missing from ``detected`` scores as nothing found), plus ``"any"``: the
    union of the detections against the union of the references. Pixels within ``edge_px`` pixels of the edge
    of any reference event are left out of every score."""
    if not truth:
        raise ValueError("score_events: no reference maps given")
    union = np.logical_or.reduce([np.asarray(m, dtype=bool) for m in truth.values()])
    scored = ~edge_band(union, edge_px)
    nothing = np.zeros_like(union)
    out = {k: score_map(detected.get(k, nothing), m, scored) for k, m in truth.items()}
    found = np.logical_or.reduce([np.asarray(detected.get(k, nothing), dtype=bool) for k in truth])
    out["any"] = score_map(found, union, scored)
    return out
