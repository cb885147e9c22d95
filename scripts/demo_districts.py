"""`make demo`, the district workflow: NDVI statistics per district and year computed here (embedded) and in
PostGIS, checked against each other, the latest table, and ATL08 canopy statistics of the same districts.

Every number comes from the engine's own requests (``DistrictStatsRequest``, ``CanopyStatsRequest``) through
the functions the dialog and Processing run (``write_district_stats``, ``write_atl08_district_stats``, which
also store each table's natural-breaks style); this module only chooses the inputs and compares the results.
PostGIS is a throw-away cluster of the distribution's PostgreSQL (installed by `make setup`) on 127.0.0.1,
removed when the step ends (``samples.postgis_server``).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

DISTRICTS_NAME = "districts.gpkg"
NDVI_STATS_NAME = "ndvi_stats.gpkg"  # embedded
NDVI_STATS_POSTGIS_NAME = "ndvi_stats_postgis.gpkg"  # computed in PostGIS, copied to a GeoPackage
LATEST_GEOJSON_NAME = "ndvi_stats_latest.geojson"
CANOPY_STATS_NAME = "canopy_stats.gpkg"
CANOPY_VARIABLE = "h_canopy"
AGREEMENT_TOLERANCE = 1e-5  # NDVI units: float32 pixels summed in float64 here and in PostGIS


@dataclass
class DistrictOutputs:
    districts: object  # Districts
    ndvi: object  # StatsResult, embedded
    ndvi_postgis: object  # StatsResult, PostGIS
    canopy: object  # StatsResult, ATL08
    max_difference: float  # largest |embedded - PostGIS| over every statistic, district and year
    compared: int  # values compared

    @property
    def files(self) -> List[str]:
        return [DISTRICTS_NAME, NDVI_STATS_NAME, LATEST_GEOJSON_NAME, NDVI_STATS_POSTGIS_NAME, CANOPY_STATS_NAME]


def run_district_workflow(folder: Path, city, composites, config, start: str, end: str, filters) -> DistrictOutputs:
    """Sample districts tiling ``city`` (a polygon in EPSG:32632, the composites' area), their NDVI statistics both
    ways, and their ATL08 canopy statistics, written into ``folder``."""
    from canopy_explorer.plugin.core.districts.canopy import CanopyStatsRequest
    from canopy_explorer.plugin.core.districts.statistics import Districts, DistrictStatsRequest
    from canopy_explorer.plugin.core.samples.districts import ID_FIELD, LAYER_NAME, sample_districts, write_sample_districts
    from canopy_explorer.plugin.core.samples.postgis_server import running_postgis
    from canopy_explorer.plugin.layers.district_layer import write_atl08_district_stats, write_district_stats

    _, count = write_sample_districts(folder / DISTRICTS_NAME, sample_districts(boundary=city))
    districts = Districts.from_file(folder / DISTRICTS_NAME, id_field=ID_FIELD, layer=LAYER_NAME)
    rasters = {composite.report.year: composite.report.path for composite in composites}
    print(f"    {count} sample districts over the sample city in {DISTRICTS_NAME} (id field {ID_FIELD}, "
          f"with {', '.join(a.name for a in districts.attributes)})")

    ndvi = write_district_stats(DistrictStatsRequest.create(districts, rasters, folder / NDVI_STATS_NAME,
                                                            geojson=folder / LATEST_GEOJSON_NAME))
    print(f"    embedded: {ndvi.summary()}; latest table also as {LATEST_GEOJSON_NAME}")
    with running_postgis() as server:
        ndvi_postgis = write_district_stats(DistrictStatsRequest.create(
            districts, rasters, folder / NDVI_STATS_POSTGIS_NAME, connection=server.conninfo, schema="public",
            prefix="demo_"))
    print(f"    PostGIS (a throw-away PostgreSQL on 127.0.0.1:{server.port}): {ndvi_postgis.summary()}")
    difference, compared = compare_statistics(folder / NDVI_STATS_NAME, folder / NDVI_STATS_POSTGIS_NAME, ndvi, ID_FIELD)
    print(f"    embedded and PostGIS agree: largest difference {difference:.2g} over {compared} values "
          f"(tolerance {AGREEMENT_TOLERANCE:g})")
    if not difference <= AGREEMENT_TOLERANCE:
        raise RuntimeError(f"embedded and PostGIS district statistics differ by {difference:g}")
    print_latest(folder / NDVI_STATS_NAME, ndvi, ID_FIELD)

    canopy = write_atl08_district_stats(CanopyStatsRequest.create(
        districts, config, folder / CANOPY_STATS_NAME, variable=CANOPY_VARIABLE, filters=filters, start=start, end=end))
    latest = next(layer for layer in canopy.layers if layer.kind == "latest")
    rows = read_rows(folder / CANOPY_STATS_NAME, latest.name, ID_FIELD)
    with_data = [row for row in rows.values() if row["segment_count"]]
    print(f"    ATL08: {canopy.summary()}; {len(with_data)} of {len(rows)} districts have good canopy segments "
          f"({sum(row['segment_count'] for row in with_data)} in the latest year of each)")
    return DistrictOutputs(districts, ndvi, ndvi_postgis, canopy, difference, compared)


def read_rows(gpkg: Path, layer: str, id_field: str) -> Dict[object, Dict[str, object]]:
    """{id: {field: value}} of a GeoPackage table (no geometry)."""
    from osgeo import ogr

    dataset = ogr.Open(str(gpkg))
    source = dataset.GetLayerByName(layer)
    if source is None:
        raise RuntimeError(f"no table {layer} in {gpkg.name}")
    definition = source.GetLayerDefn()
    names = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
    rows = {}
    for feature in source:
        rows[feature.GetField(id_field)] = {n: feature.GetField(n) if feature.IsFieldSetAndNotNull(n) else None for n in names}
    return rows


def compare_statistics(embedded: Path, postgis: Path, result, id_field: str) -> Tuple[float, int]:
    """(largest absolute difference, number of values compared) between the two GeoPackages' year and latest tables;
    infinity when a table, a district or a NULL differs."""
    from canopy_explorer.plugin.core.districts.statistics import NDVI_LAYOUT

    largest, compared = 0.0, 0
    for layer in result.layers:
        if layer.kind == "change":
            continue  # derived from the year tables, compared through them
        a, b = read_rows(embedded, layer.name, id_field), read_rows(postgis, layer.name, id_field)
        if a.keys() != b.keys():
            return float("inf"), compared
        for key in a:
            for name in (NDVI_LAYOUT.count_field, "year", *NDVI_LAYOUT.stat_fields):
                x, y = a[key][name], b[key][name]
                if (x is None) != (y is None):
                    return float("inf"), compared
                if x is not None:
                    largest = max(largest, abs(float(x) - float(y)))
                    compared += 1
    return largest, compared


def print_latest(gpkg: Path, result, id_field: str) -> None:
    latest = next(layer for layer in result.layers if layer.kind == "latest")
    rows = read_rows(gpkg, latest.name, id_field)
    print(f"    {latest.name}: {id_field}, name, year, pixel_count, mean_ndvi")
    for key in sorted(rows):
        row = rows[key]
        mean = "-" if row["mean_ndvi"] is None else f"{row['mean_ndvi']:.3f}"
        print(f"      {key}  {row['name']:<10} {row['year']}  {row['pixel_count']:>6}  {mean}")
