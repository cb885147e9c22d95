"""District statistics with bad input: clear errors, repairs reported, nothing half-written, names never run as SQL."""

import numpy as np
import pytest
import shapely

from postgis_fixtures import *  # noqa: F401,F403
from zonal_fixtures import (CRS, ID_FIELD, composite_values, district_shapes, districts, expected_stats, read_table, write_composite,
                            write_composites)

from canopy_explorer.plugin.core.districts.statistics import Districts, DistrictStatsRequest, rasters_by_year, year_of
from canopy_explorer.plugin.core.errors import Cancelled, ConfigurationError, OutputError, QueryError, StorageError
from canopy_explorer.plugin.core.districts.postgis import district_stats_postgis
from canopy_explorer.plugin.core.districts.geopackage import export_geojson
from canopy_explorer.plugin.core.districts.embedded import district_stats_embedded


@pytest.fixture(scope="module")
def composites(tmp_path_factory):
    return write_composites(tmp_path_factory.mktemp("composites"), years=(2019, 2020))


def cancel_after(calls):
    state = {"left": calls}

    def check():
        state["left"] -= 1
        if state["left"] < 0:
            raise Cancelled("cancelled")
    return check


# --------------------------------------------------------------------------- geometries and ids


def test_invalid_geometries_are_repaired_and_reported(composites, tmp_path):
    messages = []
    result = district_stats_embedded(DistrictStatsRequest.create(districts(), composites, tmp_path / "out.gpkg"),
                                     log=messages.append)
    assert [identifier for identifier, _ in result.repairs] == ["J bowtie"]
    assert "Self-intersection" in result.repairs[0][1]
    assert any("J bowtie" in m and "repaired" in m for m in messages)
    row = read_table(tmp_path / "out.gpkg", "ndvi_stats_2019")["J bowtie"]
    assert row["pixel_count"] == expected_stats(composites[2019], dict(district_shapes())["J bowtie"])[0] > 0
    assert row["geom"].is_valid


def test_empty_and_missing_geometries_get_no_statistics(composites, tmp_path):
    given = Districts.create([1, 2, 3], [None, shapely.Polygon(), dict(district_shapes())["D hole"]], CRS)
    result = district_stats_embedded(DistrictStatsRequest.create(given, composites, tmp_path / "out.gpkg"))
    table = read_table(tmp_path / "out.gpkg", "ndvi_stats_2019", "id")
    assert table[1]["pixel_count"] == table[2]["pixel_count"] == 0 and table[1]["mean_ndvi"] is None
    assert table[3]["pixel_count"] > 0
    assert {identifier for identifier, _ in result.repairs} == {1, 2}


def _folded(polygon):
    """An invalid ring with no area: it runs along the polygon's southern edge and back."""
    x0, y0, x1, _ = polygon.bounds
    return shapely.Polygon([(x0, y0), (x1, y0), ((x0 + x1) / 2, y0)])


def test_a_district_with_no_area_is_reported_and_the_others_computed(composites, tmp_path):
    shapes = dict(district_shapes())
    given = Districts.create([1, 2], [_folded(shapes["D hole"]), shapes["D hole"]], CRS)
    result = district_stats_embedded(DistrictStatsRequest.create(given, composites, tmp_path / "out.gpkg"))
    table = read_table(tmp_path / "out.gpkg", "ndvi_stats_2019", "id")
    assert table[1]["pixel_count"] == 0 and table[2]["pixel_count"] > 0
    assert [identifier for identifier, _ in result.repairs] == [1]
    assert "no statistics: the geometry is an invalid polygon (Self-intersection" in result.repairs[0][1]


def test_when_no_district_has_an_area_it_is_an_error_and_no_file(composites, tmp_path):
    shapes = [_folded(geometry) for _, geometry in district_shapes()]
    with pytest.raises(QueryError, match=rf"no district has an area \(district 0 is .*collapses to lines when repaired; {len(shapes) - 1} more like it\)"):
        district_stats_embedded(DistrictStatsRequest.create(Districts.create(list(range(len(shapes))), shapes, CRS), composites,
                                                            tmp_path / "out.gpkg"))
    assert list(tmp_path.iterdir()) == []


def test_districts_in_another_crs_are_reprojected_to_the_raster_crs(composites, tmp_path):
    from pyproj import Transformer

    to_wgs84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    shapes = dict(district_shapes())
    names = ['A "simple"', "D hole", "F nan"]
    in_degrees = [shapely.transform(shapes[n], lambda xy: np.column_stack(to_wgs84.transform(xy[:, 0], xy[:, 1])))
                  for n in names]
    result = district_stats_embedded(DistrictStatsRequest.create(Districts.create(names, in_degrees, "EPSG:4326"), composites,
                                                                 tmp_path / "out.gpkg"))
    assert result.crs == CRS
    table = read_table(tmp_path / "out.gpkg", "ndvi_stats_2019", "id")
    for name in names:  # small districts: the round trip moves vertices by far less than a pixel
        assert table[name]["pixel_count"] == expected_stats(composites[2019], shapes[name])[0]
        assert table[name]["geom"].hausdorff_distance(shapes[name]) < 0.05


@pytest.mark.parametrize("ids, message", [
    ([1, 1, 2], "not unique"),
    ([1, None, 2], "no value in the id field"),
])
def test_district_ids_must_be_present_and_unique(ids, message):
    with pytest.raises(ConfigurationError, match=message):
        Districts.create(ids, [shapely.box(0, 0, 1, 1)] * 3, CRS)


def test_districts_must_be_polygons_with_a_crs():
    with pytest.raises(ConfigurationError, match="must be polygons"):
        Districts.create(["a"], [shapely.Point(1, 2)], CRS)
    with pytest.raises(ConfigurationError, match="no coordinate reference system"):
        Districts.create(["a"], [shapely.box(0, 0, 1, 1)], "")


def test_id_field_names_with_quotes_and_spaces_are_read_from_a_file(tmp_path):
    from osgeo import ogr, osr

    path = tmp_path / "districts.gpkg"
    field = 'district "code"; DROP TABLE x; --'
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    layer = dataset.CreateLayer("my districts", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn(field, ogr.OFTString))
    for identifier, geometry in district_shapes()[:3]:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField(field, identifier)
        feature.SetGeometry(ogr.CreateGeometryFromWkb(shapely.to_wkb(geometry)))
        layer.CreateFeature(feature)
    dataset = None
    loaded = Districts.from_file(path, field)
    assert loaded.ids == tuple(i for i, _ in district_shapes()[:3])
    assert loaded.crs == CRS
    assert loaded.geometries[0].equals(district_shapes()[0][1])
    with pytest.raises(ConfigurationError, match="has no field 'code'"):
        Districts.from_file(path, "code")


# --------------------------------------------------------------------------- rasters


def test_the_year_comes_from_four_digits_in_the_raster_name():
    assert year_of("/data/ndvi_composite_2019.tif") == 2019
    assert year_of("S2_2024-summer.tif") == 2024
    with pytest.raises(ConfigurationError, match="no year in the raster name"):
        year_of("ndvi_composite.tif")
    with pytest.raises(ConfigurationError, match="several years"):
        year_of("ndvi_2019_2020.tif")
    with pytest.raises(ConfigurationError, match="two rasters for 2019"):
        rasters_by_year(["a/ndvi_2019.tif", "b/ndvi_2019.tif"])


@pytest.mark.parametrize("mode", ["embedded", "postgis"])
def test_a_raster_without_crs_is_refused(mode, request, tmp_path):
    path = write_composite(tmp_path / "ndvi_composite_2019.tif", composite_values(2019), crs=None)
    with pytest.raises(ConfigurationError, match="has no coordinate reference system"):
        if mode == "embedded":
            district_stats_embedded(DistrictStatsRequest.create(districts(), [path], tmp_path / "out.gpkg"))
        else:
            district_stats_postgis(DistrictStatsRequest.create(districts(), [path],
                                                               connection=request.getfixturevalue("postgis_server").conninfo))
    assert not (tmp_path / "out.gpkg").exists()


def test_composites_in_different_crs_are_refused(tmp_path):
    a = write_composite(tmp_path / "ndvi_composite_2019.tif", composite_values(2019))
    b = write_composite(tmp_path / "ndvi_composite_2020.tif", composite_values(2020), crs="EPSG:32633")
    with pytest.raises(ConfigurationError, match="different coordinate reference systems"):
        district_stats_embedded(DistrictStatsRequest.create(districts(), [a, b], tmp_path / "out.gpkg"))


# --------------------------------------------------------------------------- outputs


def test_the_output_must_be_a_geopackage_in_an_existing_folder(composites, tmp_path):
    with pytest.raises(OutputError, match="must be a GeoPackage"):
        district_stats_embedded(DistrictStatsRequest.create(districts(), composites, tmp_path / "out.shp"))
    with pytest.raises(OutputError, match="does not exist"):
        district_stats_embedded(DistrictStatsRequest.create(districts(), composites, tmp_path / "missing" / "out.gpkg"))
    (tmp_path / "text.gpkg").write_text("not a database")
    with pytest.raises(OutputError, match="not a GeoPackage"):
        district_stats_embedded(DistrictStatsRequest.create(districts(), composites, tmp_path / "text.gpkg"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.gpkg"]


def test_an_output_holding_other_id_types_is_refused(composites, tmp_path):
    output = tmp_path / "out.gpkg"
    district_stats_embedded(DistrictStatsRequest.create(districts(), composites, output))
    numbered = Districts.create([1], [dict(district_shapes())["D hole"]], CRS, id_field=ID_FIELD)
    before = output.read_bytes()
    for replace_latest in (False, True):  # the year tables would still mix the two kinds of ids
        with pytest.raises(ConfigurationError, match="text district ids"):
            district_stats_embedded(DistrictStatsRequest.create(numbered, composites, output, replace_latest=replace_latest))
    assert output.read_bytes() == before
    district_stats_embedded(DistrictStatsRequest.create(numbered, composites, tmp_path / "new.gpkg"))


def test_cancel_leaves_the_previous_output_untouched(composites, tmp_path):
    output = tmp_path / "out.gpkg"
    district_stats_embedded(DistrictStatsRequest.create(districts(), {2019: composites[2019]}, output))
    before = output.read_bytes()
    with pytest.raises(Cancelled):
        district_stats_embedded(DistrictStatsRequest.create(districts(), composites, output), check_cancel=cancel_after(1))
    assert output.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.gpkg"]


def test_geojson_export_is_in_epsg_4326(composites, tmp_path):
    from osgeo import ogr
    from pyproj import Transformer

    district_stats_embedded(DistrictStatsRequest.create(districts(), composites, tmp_path / "out.gpkg"))
    target = export_geojson(tmp_path / "out.gpkg", "ndvi_stats_latest", tmp_path / "ndvi_stats_latest.geojson")
    dataset = ogr.Open(str(target))
    layer = dataset.GetLayer(0)
    assert layer.GetFeatureCount() == len(district_shapes())
    assert layer.GetSpatialRef().GetAuthorityCode(None) == "4326"
    feature = next(f for f in layer if f.GetField(ID_FIELD) == "D hole")
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(
        *dict(district_shapes())["D hole"].exterior.coords[0])
    x, y = shapely.from_wkb(bytes(feature.GetGeometryRef().ExportToIsoWkb())).geoms[0].exterior.coords[0]
    assert abs(x - lon) < 1e-6 and abs(y - lat) < 1e-6
    assert 9.0 < x < 9.1 and 51.4 < y < 51.5
    with pytest.raises(OutputError, match="has no layer"):
        export_geojson(tmp_path / "out.gpkg", "nothing", tmp_path / "x.geojson")


# --------------------------------------------------------------------------- PostGIS


def test_an_unreachable_server_gives_a_clear_error(postgis_server, composites):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(StorageError, match=rf"cannot connect to PostgreSQL at canopy_tester@127.0.0.1:{closed_port}/canopy"):
        district_stats_postgis(DistrictStatsRequest.create(districts(), composites,
                                                           connection=postgis_server.conninfo_with(port=closed_port)))


def test_a_wrong_password_is_refused_without_showing_any_password(postgis_server, composites):
    with pytest.raises(StorageError, match="refused the user name or password") as error:
        district_stats_postgis(DistrictStatsRequest.create(districts(), composites,
                                                           connection=postgis_server.conninfo_with(password="not-the-password")))
    assert "not-the-password" not in str(error.value) and postgis_server.password not in str(error.value)


def test_a_database_without_postgis_raster_is_named(postgis_server, composites):
    with postgis_server.admin_connect("postgres") as admin:
        admin.execute("DROP DATABASE IF EXISTS plain")
        admin.execute(f"CREATE DATABASE plain OWNER {postgis_server.user}")
    with pytest.raises(StorageError, match="CREATE EXTENSION postgis_raster"):
        district_stats_postgis(DistrictStatsRequest.create(districts(), composites,
                                                           connection=postgis_server.conninfo_with(dbname="plain")))


def test_schema_prefix_and_ids_with_quotes_spaces_and_sql_are_only_names(postgis_server, composites, tmp_path):
    schema, prefix = 'my "schema"; DROP TABLE canary; --', 'x"; drop table canary; --'
    with postgis_server.admin_connect() as admin:
        admin.execute("CREATE TABLE IF NOT EXISTS public.canary (n integer)")
        admin.execute(f"GRANT ALL ON public.canary TO {postgis_server.user}")
    result = district_stats_postgis(DistrictStatsRequest.create(districts(), composites, connection=postgis_server.conninfo,
                                                                schema=schema, prefix=prefix, output_gpkg=tmp_path / "out.gpkg"))
    with postgis_server.admin_connect() as admin:
        assert admin.execute("SELECT to_regclass('public.canary')").fetchone()[0] is not None
        tables = {r[0] for r in admin.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))}
        ids = {r[0] for r in admin.execute(f'SELECT "district code" FROM "{schema.replace(chr(34), chr(34) * 2)}".'
                                           f'"{(prefix + "ndvi_stats_latest").replace(chr(34), chr(34) * 2)}"')}
    assert tables == {prefix + name for name in ["districts", "ndvi_2019", "ndvi_2020", "ndvi_stats_2019",
                                                 "ndvi_stats_2020", "ndvi_stats_latest", "ndvi_stats_change"]}
    assert ids == {i for i, _ in district_shapes()}
    assert dict(result.database_tables)["ndvi_stats_latest"] == \
        '"my ""schema""; DROP TABLE canary; --"."x""; drop table canary; --ndvi_stats_latest"'


def test_names_longer_than_postgresql_allows_are_refused(postgis_server, composites):
    with pytest.raises(ConfigurationError, match="longer than 63 bytes"):
        district_stats_postgis(DistrictStatsRequest.create(districts(), composites, connection=postgis_server.conninfo,
                                                           prefix="p" * 50))


def test_cancel_in_postgis_leaves_no_half_loaded_table(postgis_server, composites, tmp_path):
    # cancelled while loading the second raster: the whole run rolls back, the first year's tables with it
    second_year = {"started": False}

    def check():
        if second_year["started"]:
            raise Cancelled("cancelled")

    def log(message):
        if message.startswith("2019: statistics"):
            second_year["started"] = True

    with pytest.raises(Cancelled):
        district_stats_postgis(DistrictStatsRequest.create(districts(), composites, connection=postgis_server.conninfo,
                                                           schema="cancelled", output_gpkg=tmp_path / "out.gpkg", loader="python"), check_cancel=check, log=log)
    with postgis_server.admin_connect() as admin:
        tables = {r[0] for r in admin.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'cancelled'")}
    assert tables == set()
    assert not (tmp_path / "out.gpkg").exists()
