"""Run reports: quicklooks with colour bars, per-tile timings, scenes used/skipped, the Dask performance report."""

from __future__ import annotations

import re

import matplotlib.image as mpimg


def test_run_report_links_quicklooks_timings_scenes_and_dask_report(reference_run) -> None:
    res = reference_run
    page = res.report.read_text()
    rdir = res.report.parent
    for name in ("ndvi", "ndvi_median"):
        png = rdir / f"{name}.png"
        assert f'src="{name}.png"' in page
        img = mpimg.imread(png)
        assert img.shape[0] > 100 and img.shape[1] > 200 and img[..., :3].std() > 0.05  # not a blank canvas
    perf = rdir / "dask-performance.html"
    assert 'href="dask-performance.html"' in page and perf.stat().st_size > 10_000
    assert "bokeh" in perf.read_text()[:20_000].lower()
    assert 'href="run.log"' in page and "tile 1-1 written" in (rdir / "run.log").read_text()
    assert "Per-tile timings" in page and len(res.timings) == 9
    assert len(re.findall(r"<td>\d-\d</td>", page)) == 9
    assert "Scenes used" in page
    for it in res.plan.items:
        assert it.id in page


def test_quicklook_has_colour_bar_units_and_map_axes(reference_run, tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from unittest import mock

    import matplotlib.figure

    from orbitcube.pipeline.report import _quicklook_of
    from orbitcube.pipeline.sink import open_cube

    calls = {}
    real = matplotlib.figure.Figure.savefig

    def spy(fig, *a, **k):
        calls["labels"] = [ax.get_ylabel() for ax in fig.axes] + [ax.get_xlabel() for ax in fig.axes]
        return real(fig, *a, **k)

    da = open_cube(reference_run.store)["ndvi_median"]
    with mock.patch.object(matplotlib.figure.Figure, "savefig", spy):
        _quicklook_of(da, tmp_path / "q.png")
    assert "ndvi_median (unitless)" in calls["labels"]  # colour bar label with units
    assert any("easting (km, EPSG:32632)" in s for s in calls["labels"])
    assert any("northing (km)" in s for s in calls["labels"])
