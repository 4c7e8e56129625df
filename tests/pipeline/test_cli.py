"""The CLI wires recipes, runs and exports to the library: the same recipe through every entry point."""

from __future__ import annotations

import yaml

from orbitcube.pipeline.cli import main


def test_cli_recipe_run_and_export(s2_mission, tmp_path, capsys) -> None:
    """The same recipe through the CLI: example -> validate -> dry run -> run -> export."""
    import rasterio

    assert main(["recipe", "example"]) == 0
    text = capsys.readouterr().out
    w, s, e, n = s2_mission.config.aoi_bbox
    recipe = yaml.safe_load(text)
    recipe["catalog"]["source"] = str(s2_mission.catalog_path)
    recipe["search"].update(aoi=[w, s, e, n], datetime="2023-06-01/2023-06-30")
    recipe["grid"]["tile_shape"] = [32, 32]
    recipe["output"]["path"] = str(tmp_path / "cube.zarr")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["-q", "recipe", "validate", str(path)]) == 0
    assert main(["-q", "run", str(path), "--dry-run"]) == 0
    assert "tile" in capsys.readouterr().out.lower()
    assert not (tmp_path / "cube.zarr").exists()  # a dry run reads and writes no pixels
    assert main(["-q", "run", str(path)]) == 0
    assert (tmp_path / "cube.zarr").exists()
    out = tmp_path / "ndvi.tif"
    assert main(["-q", "export", str(tmp_path / "cube.zarr"), "--variable", "ndvi_median", "--time", "0",
                 "--to-cog", str(out)]) == 0  # fmt: skip
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 32632 and src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    path.write_text(text.replace("resolution: 20", "resolution: -5"))
    assert main(["-q", "recipe", "validate", str(path)]) == 2
    assert "resolution" in capsys.readouterr().err
