"""Recipes: one validated model (catalog, search, grid, load, analytics steps, output, cluster) shared by the CLI,
the notebooks and the Python API.

A recipe is YAML read with ``yaml.safe_load`` (or a dict) and validated by pydantic; every problem becomes one
:class:`~orbitcube.pipeline.errors.RecipeError` naming the key path (``search.max_cloud_cover``), the bad value and the
allowed values. Unknown keys are errors too, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orbitcube.pipeline.errors import RecipeError
from orbitcube.pipeline.load import Resampling
from orbitcube.pipeline.masks import DEFAULT_MASK, MASK_NAMES
from orbitcube.pipeline.safeyaml import safe_yaml
from orbitcube.pipeline.sink import COMPRESSION, COMPRESSION_LEVEL

__all__ = [
    "BandMathStep",
    "COMPOSITE_STATS",
    "CatalogSpec",
    "ClusterSpec",
    "CompositeStep",
    "GatewaySpec",
    "GridSpec",
    "IndexStep",
    "LoadSpec",
    "NOT_IN_FINGERPRINT",
    "OutputSpec",
    "RESERVED_NAMES",
    "Recipe",
    "STEP_OPS",
    "STORAGE_OPTIONS",
    "STORAGE_SCHEMES",
    "SearchSpec",
    "Step",
    "TrendStep",
    "example_recipe",
    "load_recipe",
    "step_outputs",
]

COMPOSITE_STATS = ("median", "mean", "min", "max", "std", "count", "percentile")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CatalogSpec(_Model):
    """Where the items come from: a local catalog (folder or catalog.json), a static catalog URL (``https://``,
    ``az://``, ``s3://`` ... catalog.json), or a STAC API."""

    source: str = Field(description="catalog.json path or folder, static catalog URL, or STAC API root URL")
    kind: Literal["local", "static", "api"] = "local"
    allow: list[str] = Field(
        default_factory=list,
        description="folders, URL prefixes or URL schemes the catalog may reference besides its own tree (its "
        "folder, or its URL's origin) and the object stores of `storage`; see orbitcube.catalog.policy",
    )

    @model_validator(mode="after")
    def _urls_are_not_local(self) -> CatalogSpec:
        if self.kind == "local" and "://" in self.source and not self.source.startswith("file://"):
            raise ValueError(
                f"catalog.source {self.source!r} is a URL; set catalog.kind to 'static' (a catalog.json on a web "
                "server or in object storage) or 'api' (a STAC API)"
            )
        return self


class SearchSpec(_Model):
    """Which items: AOI (bbox in degrees WGS84, GeoJSON geometry, or tile id), dates, collections, cloud cover."""

    aoi: tuple[float, float, float, float] | dict[str, Any] | str | None = Field(
        None, description="(west, south, east, north) degrees WGS84, a GeoJSON geometry/Feature, or a tile id"
    )
    datetime: str | None = Field(None, description="STAC datetime interval, e.g. 2023-05-01/2023-06-30")
    collections: list[str] | None = None
    max_cloud_cover: float | None = Field(None, ge=0, le=100, description="percent (eo:cloud_cover)")
    filter: str | dict[str, Any] | None = Field(
        None,
        description="CQL2 filter on item properties, as text (\"platform = 'sentinel-2a' AND eo:cloud_cover < 20\") "
        "or CQL2 JSON; the same language for local catalogs, static catalogs and STAC APIs",
    )

    @field_validator("datetime")
    @classmethod
    def _interval(cls, v: str | None) -> str | None:
        from orbitcube.catalog.errors import CatalogError
        from orbitcube.catalog.query import parse_datetime

        try:
            parse_datetime(v)  # the same check as catalog search: ISO 8601, start before end
        except CatalogError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("filter")
    @classmethod
    def _cql2(cls, v: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        from orbitcube.catalog.errors import CatalogError
        from orbitcube.catalog.filters import parse_filter

        if isinstance(v, dict) and v and "op" not in v:
            example = " AND ".join(f"{k} = {val!r}" for k, val in list(v.items())[:2])
            raise ValueError(
                f"{v!r} is a map of property values; search.filter is CQL2, the language of catalog search and "
                f'STAC APIs: write it as text, e.g. filter: "{example}"'
            )
        try:
            parse_filter(v)  # the same check as catalog search
        except CatalogError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("aoi")
    @classmethod
    def _bbox_order(cls, v: Any) -> Any:
        if isinstance(v, tuple):
            from orbitcube.catalog.errors import CatalogError
            from orbitcube.catalog.query import parse_bbox

            try:
                w, s, e, n = parse_bbox(v)  # the same check as catalog search
            except CatalogError as exc:
                raise ValueError(str(exc)) from None
            if not (w < e and s < n and -180 <= w and e <= 180 and -90 <= s and n <= 90):
                raise ValueError(
                    "bbox must be (west, south, east, north) in degrees with west < east, south < north"
                )
        return v


class GridSpec(_Model):
    """The output grid: CRS (default: the items' most common), resolution in CRS units, tile (= chunk) shape."""

    crs: str | None = Field(None, description="e.g. EPSG:32632; default the items' most common CRS")
    resolution: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="pixel size in CRS units (metres for UTM)"
    )
    tile_shape: tuple[Annotated[int, Field(ge=16, le=8192)], Annotated[int, Field(ge=16, le=8192)]] = (
        512,
        512,
    )


class LoadSpec(_Model):
    """Bands (asset keys or common names), the quality classes to mask, and the time grouping."""

    bands: list[str] = Field(default_factory=lambda: ["red", "nir"], min_length=1)
    mask: list[str] | None = Field(default_factory=lambda: list(DEFAULT_MASK))
    dilate_m: float = Field(0.0, ge=0)
    groupby: Literal["solar_day", "time"] = "solar_day"
    resampling: Resampling | None = None
    #: ``{band: [scale, offset]}`` overriding the items' raster:bands and the product table for every item
    scale_offset: dict[str, tuple[float, float]] | None = None

    @field_validator("mask")
    @classmethod
    def _known_masks(cls, v: list[str] | None) -> list[str] | None:
        bad = [m for m in v or [] if m not in MASK_NAMES]
        if bad:
            raise ValueError(f"unknown mask name(s) {bad}; allowed: {list(MASK_NAMES)}")
        return v


class IndexStep(_Model):
    """A spectral index from spyndex (NDVI, EVI, NBR, NDWI, ...) -> variable ``name`` or the index in lower case."""

    op: Literal["index"]
    index: str
    name: str | None = None


class BandMathStep(_Model):
    """A whitelisted arithmetic expression over the variables, e.g. ``(nir - red) / (nir + red)``."""

    op: Literal["band_math"]
    expression: str
    name: str

    @field_validator("expression")
    @classmethod
    def _parses(cls, v: str) -> str:
        from orbitcube.pipeline.analytics.bandmath import parse_expression
        from orbitcube.pipeline.errors import ExpressionError

        try:
            parse_expression(v)  # syntax, whitelist, function arity: refused at validation, not mid-run
        except ExpressionError as exc:
            raise ValueError(str(exc)) from None
        return v


class CompositeStep(_Model):
    """Reduce ``input`` over time (per calendar period when ``freq`` is given) -> ``<input>_<stat>``, or
    ``<input>_p<q>`` for a percentile (q=2.5 -> ``_p2_5``); see :func:`orbitcube.pipeline.analytics.composite`.

    With ``freq`` the result has its own time dimension ``dim`` (default ``month`` for "1MS", else
    ``time_<freq>``)."""

    op: Literal["composite"]
    input: str
    stat: Literal["median", "mean", "min", "max", "std", "count", "percentile"] = "median"
    freq: str | None = Field(
        None,
        description="pandas offset: 1MS (monthly), QS-DEC (seasons), YS, or monthly, seasonal, annual; none = all",
    )
    q: float | None = Field(None, ge=0, le=100)
    dim: str | None = None

    @model_validator(mode="after")
    def _q_for_percentile(self) -> CompositeStep:
        if self.stat == "percentile" and self.q is None:
            raise ValueError("stat 'percentile' needs q between 0 and 100")
        return self


class TrendStep(_Model):
    """Per-pixel linear trend of ``input`` over time -> ``<input>_slope``, ``_intercept``, ``_pvalue``, ... (y, x)."""

    op: Literal["trend"]
    input: str
    min_obs: int = Field(3, ge=3)


Step = Annotated[IndexStep | BandMathStep | CompositeStep | TrendStep, Field(discriminator="op")]
STEP_OPS = ("index", "band_math", "composite", "trend")
_STEP_MODELS: dict[str, type[BaseModel]] = {
    "index": IndexStep,
    "band_math": BandMathStep,
    "composite": CompositeStep,
    "trend": TrendStep,
}


class OutputSpec(_Model):
    """The Zarr v3 store: path, variables to write (default: every analytics product), compression level."""

    path: str
    variables: list[str] | None = None
    compression: Literal["zstd", "blosc-zstd"] = COMPRESSION
    level: int = Field(COMPRESSION_LEVEL, ge=1, le=22)
    time_chunk: int | None = Field(None, ge=1, description="chunk length along time; default the whole axis")
    allow_large: bool = Field(
        False,
        description="run plans above the size that otherwise needs `orbitcube run --yes` (orbitcube.pipeline.limits)",
    )
    report_dir: str | None = Field(
        None,
        description="local folder for the HTML run report and log; default <path>-report beside a local store, "
        "./<store name>-report for an az:// or s3:// store",
    )


class GatewaySpec(_Model):
    """How to reach a Dask Gateway named by ``cluster.scheduler: gateway://HOST:PORT``: auth and cluster options.
    Secrets (``password``, ``api_token``) must be ``${ENV}`` references, expanded at run time and sent only to the
    gateway."""

    auth: Literal["basic", "jupyterhub", "kerberos"] | None = None
    username: str | None = None
    password: str | None = Field(None, pattern=r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
    api_token: str | None = Field(None, pattern=r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
    proxy_address: str | None = Field(None, pattern=r"^(tcp|tls|gateway)://.+$")
    cluster_options: dict[str, str | int | float | bool] = Field(default_factory=dict)


class ClusterSpec(_Model):
    """Where it runs: a new LocalCluster (workers, threads, memory), an existing scheduler, or a new cluster on a
    Dask Gateway (``scheduler: gateway://HOST:PORT``, see :class:`GatewaySpec`); tiles in flight."""

    scheduler: str | None = Field(None, pattern=r"^(tcp|tls|inproc|ucx|ws|wss|gateway|gateway\+https?)://.+$")
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    n_workers: int = Field(2, ge=1, le=256)
    threads_per_worker: int = Field(1, ge=1, le=64)
    memory_limit: str = Field(
        "2GiB",
        description="memory of each worker (a Dask size such as 4GiB, or auto: the machine's memory shared among "
        "the workers); read tasks are sized to stay within it",
    )
    time_chunk: int | Literal["auto"] = Field(
        "auto",
        description="time steps per read task: auto (from memory_limit), a number, or -1 for the whole time axis; "
        "changes memory and task count, never the values",
    )
    max_tiles_in_flight: int = Field(4, ge=1, le=1024)

    @field_validator("time_chunk")
    @classmethod
    def _time_chunk(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not (v == -1 or v >= 1):
            raise ValueError(
                f"{v} is not a number of time steps; use auto, -1 (whole axis) or a positive number"
            )
        return v

    gdal_env: dict[str, str] = Field(default_factory=dict)


STORAGE_SCHEMES = ("az", "azure", "abfs", "s3", "gs", "http", "https")
STORAGE_OPTIONS = (
    "connection_string",
    "account_name",
    "account_key",
    "sas_token",
    "account_host",
    "anon",
    "key",
    "secret",
    "token",
    "endpoint_url",
    "region",
    "client_kwargs",
    "config_kwargs",
)


class Recipe(_Model):
    """A whole batch run: catalog -> search -> grid -> load -> analytics steps -> Zarr, on a Dask cluster.

    ``storage`` maps a URL scheme (``az``, ``s3``, ...) or a URL prefix (``s3://my-bucket/``) to the storage
    options of :mod:`orbitcube.catalog.storage` for the URLs it matches (the longest prefix wins): scenes, static catalogs
    and the output store. Write secrets as ``${ENV_VAR}`` references; they are expanded when used and never
    stored in the output's provenance."""

    name: str = "orbitcube-run"
    catalog: CatalogSpec
    search: SearchSpec = SearchSpec()
    grid: GridSpec = GridSpec()
    load: LoadSpec = LoadSpec()
    analytics: list[Step] = Field(default_factory=list)
    output: OutputSpec
    cluster: ClusterSpec = ClusterSpec()
    storage: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="{scheme or URL prefix: storage options}, e.g. {s3: {endpoint_url: ..., secret: ${AWS_SECRET}}}",
    )

    @field_validator("storage")
    @classmethod
    def _storage_keys(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for prefix, opts in v.items():
            sch = prefix.split("://", 1)[0] if "://" in prefix else prefix
            if sch not in STORAGE_SCHEMES:
                raise ValueError(
                    f"key {prefix!r} is not a URL scheme or URL prefix; use one of {list(STORAGE_SCHEMES)} or a "
                    "prefix such as s3://my-bucket/"
                )
            bad = sorted(k for k in opts if k not in STORAGE_OPTIONS)
            if bad:
                raise ValueError(
                    f"storage.{prefix}: unknown option(s) {bad}; allowed: {list(STORAGE_OPTIONS)}"
                )
        return v

    def storage_options(self, url: str | Path) -> dict[str, Any]:
        """The storage options for ``url`` from ``storage`` (longest matching prefix; a bare scheme matches every
        URL of that scheme); {} for local paths or when nothing matches. ``${ENV}`` references are left as they
        are (:mod:`orbitcube.catalog.storage` expands them when it uses the options)."""
        url = str(url)
        if "://" not in url or url.startswith("file://"):
            return {}
        best, length = {}, -1
        for prefix, opts in self.storage.items():
            p = prefix if "://" in prefix else f"{prefix}://"
            if url.startswith(p) and len(p) > length:
                best, length = opts, len(p)
        return dict(best)

    @model_validator(mode="after")
    def _names_resolve(self) -> Recipe:
        known = list(self.load.bands)
        for i, step in enumerate(self.analytics):
            if isinstance(step, CompositeStep | TrendStep) and step.input not in known:
                raise ValueError(
                    f"analytics.{i}.input {step.input!r} is not defined before this step; known: {known}"
                )
            _check_new_names(i, step, known)
            known.extend(step_outputs(step))
        for v in self.output.variables or []:
            if v not in known:
                raise ValueError(f"output.variables: {v!r} is not produced; known variables: {known}")
        return self

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of everything that shapes the output (not the cluster settings nor where
        the output goes, so the same recipe writes identical stores anywhere)."""
        doc = self.model_dump(mode="json", exclude=NOT_IN_FINGERPRINT)
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def to_yaml(self) -> str:
        """The recipe as YAML (round-trips through :func:`load_recipe`)."""
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)


#: recipe parts that do not shape the output: where it runs, where it goes, how storage is reached, what the
#: catalog may reference (a run either reads the same items or is refused)
NOT_IN_FINGERPRINT: dict[str, Any] = {
    "cluster": True,
    "storage": True,
    "output": {"path", "report_dir", "allow_large"},
    "catalog": {"allow"},
}


#: names a step may not give its output: the cube's dimensions and coordinates
RESERVED_NAMES = ("time", "y", "x", "spatial_ref", "band", "month", "period", "latitude", "longitude")


def _check_new_names(i: int, step: Any, known: list[str]) -> None:
    """ValueError when step ``i`` would name its output (or its time dimension) like a coordinate, a dimension or
    a variable that exists already (it would silently replace it)."""
    names = step_outputs(step)
    dim = step.dim if isinstance(step, CompositeStep) else None
    for name in names:
        if name in RESERVED_NAMES or name in known:
            what = "a dimension/coordinate of the cube" if name in RESERVED_NAMES else "an existing variable"
            raise ValueError(
                f"analytics.{i}: output name {name!r} is {what} and would replace it; choose another name "
                f"(taken: {sorted({*RESERVED_NAMES, *known})})"
            )
    if dim is not None and (dim in ("y", "x", "spatial_ref") or dim in known):
        raise ValueError(f"analytics.{i}.dim {dim!r} is taken; name the period dimension e.g. 'month'")


def step_outputs(step: IndexStep | BandMathStep | CompositeStep | TrendStep) -> list[str]:
    """Names of the variables a step adds."""
    if isinstance(step, IndexStep):
        return [step.name or step.index.lower()]
    if isinstance(step, BandMathStep):
        return [step.name]
    if isinstance(step, CompositeStep):
        from orbitcube.pipeline.analytics.periods import (
            stat_suffix,  # the one naming rule (imported when needed)
        )

        return [f"{step.input}_{stat_suffix(step.stat, step.q)}"]
    return [f"{step.input}_{k}" for k in ("slope", "intercept", "pvalue", "nobs")]


def _fields_at(loc: tuple) -> list[str]:
    """The keys allowed by the model at ``loc`` (for 'unknown key' errors)."""
    model: Any = Recipe
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        if part in STEP_OPS:
            model = _STEP_MODELS[part]
            continue
        field = model.model_fields.get(part)
        ann = field.annotation if field else None
        model = next((c for c in _model_classes(ann) if issubclass(c, BaseModel)), None)
    return sorted(model.model_fields) if model else []


def _model_classes(ann: Any) -> list[type]:
    import typing

    out, stack = [], [ann]
    while stack:
        a = stack.pop()
        if isinstance(a, type):
            out.append(a)
        stack.extend(typing.get_args(a))
    return out


#: recipe keys whose values are never echoed in messages (credentials live there)
_SECRET_PARTS = {"storage", "gdal_env", "gateway"}


def _format(exc: ValidationError, source: str) -> str:
    from orbitcube.catalog.storage import redact

    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # drop the discriminator tag pydantic inserts after a step index (analytics.0.composite.stat)
        shown = [
            str(p) for i, p in enumerate(loc) if not (p in STEP_OPS and i and isinstance(loc[i - 1], int))
        ]
        where = ".".join(shown) or "<recipe>"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key; allowed keys here: {_fields_at(loc)}")
        elif err["type"] == "missing":
            lines.append(f"  {where}: required key is missing")
        elif not shown:  # model-level check: the message names the key itself
            lines.append("  " + err["msg"].removeprefix("Value error, "))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            # values under storage and gdal_env may be credentials (a literal secret, an unquoted number):
            # name the key, never echo the value
            got = "" if _SECRET_PARTS & {str(p) for p in loc} else f" (got {err.get('input')!r})"
            lines.append(f"  {where}: {msg}{got}")
    body = f" {lines[0].strip()}" if len(lines) == 1 else "\n" + "\n".join(lines)  # one problem: one line
    return redact(f"invalid recipe {source}:{body}")  # a literal secret never reaches a message


def load_recipe(source: str | Path | Mapping[str, Any] | Recipe) -> Recipe:
    """Read and validate a recipe from a YAML file path, a YAML string or a dict; raise RecipeError naming the key.

    Relative ``catalog.source`` and ``output.path`` in a file are resolved against the file's folder.
    """
    if isinstance(source, Recipe):
        return source
    where, base = "(dict)" if isinstance(source, Mapping) else "(YAML text)", None
    if isinstance(source, Mapping):
        doc: Any = dict(source)
    else:
        text = str(source)
        path = Path(text)
        if isinstance(source, Path) or ("\n" not in text and text.endswith((".yaml", ".yml", ".json"))):
            if not path.is_file():
                raise RecipeError(
                    f"recipe file {path} does not exist; write one with `orbitcube recipe example`"
                )
            try:
                where, base, text = str(path), path.resolve().parent, path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise RecipeError(
                    f"recipe file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 YAML"
                ) from None
        doc = safe_yaml(text, where)
    if not isinstance(doc, dict):
        raise RecipeError(
            f"recipe {where} must be a mapping with keys catalog, search, grid, load, analytics, output"
        )
    try:
        recipe = Recipe.model_validate(doc)
    except ValidationError as exc:
        raise RecipeError(_format(exc, where)) from None
    if base is not None:
        recipe = _resolve_paths(recipe, base)
    return recipe


def _resolve_paths(recipe: Recipe, base: Path) -> Recipe:
    cat, out = recipe.catalog, recipe.output
    if cat.kind == "local" and not Path(cat.source).is_absolute():
        cat = cat.model_copy(update={"source": str(base / cat.source)})
    if "://" not in out.path and not Path(out.path).is_absolute():
        out = out.model_copy(update={"path": str(base / out.path)})
    if out.report_dir and not Path(out.report_dir).is_absolute():
        out = out.model_copy(update={"report_dir": str(base / out.report_dir)})
    if cat.allow:  # relative folders of catalog.allow, like catalog.source, from the recipe's folder
        from orbitcube.catalog.policy import parse_allow

        cat = cat.model_copy(update={"allow": [str(parse_allow(e, base)) for e in cat.allow]})
    return recipe.model_copy(update={"catalog": cat, "output": out})


def example_recipe() -> str:
    """A commented example recipe (YAML text, ``pipeline/example_recipe.yaml``) that validates with
    :func:`load_recipe`."""
    from importlib import resources

    return resources.files("orbitcube.pipeline").joinpath("example_recipe.yaml").read_text()
