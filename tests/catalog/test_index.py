"""The item index (catalog/index.py): nested fields of chosen rows, from the file or from memory."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

from orbitcube.catalog.index import ItemIndex
from orbitcube.catalog.store import open_catalog


def test_take_fields_reads_nested_leaves_of_chosen_rows(indexed_catalog) -> None:
    cat = open_catalog(indexed_catalog)  # items.parquet in row groups of 4 rows
    rows = np.array([5, 0, 3, 3])
    paths = ["id", "assets.B04.href", "assets.B04.proj:transform", "bbox.xmin"]
    got = cat.take_fields(rows, paths)
    whole = cat.take(rows)
    assert got["id"].to_pylist() == whole.column("id").to_pylist()
    b04 = pc.struct_field(whole.column("assets").combine_chunks(), "B04")
    assert got["assets.B04.href"].to_pylist() == pc.struct_field(b04, "href").to_pylist()
    assert got["assets.B04.proj:transform"].to_pylist() == pc.struct_field(b04, "proj:transform").to_pylist()
    assert (
        got["bbox.xmin"].to_pylist()
        == pc.struct_field(whole.column("bbox").combine_chunks(), "xmin").to_pylist()
    )
    in_memory = ItemIndex(table=cat.table)
    again = in_memory.take_fields(rows, paths)
    assert all(again[p].to_pylist() == got[p].to_pylist() for p in paths)
    assert cat.take_fields(np.zeros(0, np.int64), paths)["assets.B04.href"].to_pylist() == []
