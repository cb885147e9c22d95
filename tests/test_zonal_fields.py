"""District statistics keep the districts' id field (name and type) and carry their other attributes into every table,
in both modes; names that clash with a statistics column are refused; hostile names are only names."""

import datetime

import pytest

from postgis_fixtures import *  # noqa: F401,F403
from zonal_fixtures import CRS, district_shapes, read_table, write_composites

from canopy_explorer.plugin.core.districts.postgis import district_stats_postgis
from canopy_explorer.plugin.core.districts.embedded import district_stats_embedded
from canopy_explorer.plugin.core.districts.statistics import NDVI_LAYOUT, Districts, DistrictStatsRequest
from canopy_explorer.plugin.core.errors import ConfigurationError

YEARS = (2019, 2020)
ATTRIBUTES = [("population", "integer"), ("area_km2", "real"), ("name", "text")]
TABLES = ["ndvi_stats_2019", "ndvi_stats_2020", "ndvi_stats_latest", "ndvi_stats_change"]


def district_values():
    """{district_code: {population, area_km2, name}} for the fixture's ten districts (one NULL of each)."""
    values = {}
    for number, (identifier, geometry) in enumerate(district_shapes()):
        code = f"K{number:02d}"
        values[code] = {"population": None if number == 3 else 1000 * number + 7,
                        "area_km2": None if number == 4 else round(geometry.area / 1e6, 6),
                        "name": None if number == 5 else identifier}
    return values


def write_districts(path, id_field="district_code", id_type="text", extra=(), id_of=None):
    """A GeoPackage of the fixture's districts: the id field, population (integer), area_km2 (real), name (text)
    and the ``extra`` (name, OGR type, value per number) fields."""
    from osgeo import ogr, osr

    ogr.UseExceptions()
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    layer = dataset.CreateLayer("districts", srs, ogr.wkbMultiPolygon)
    layer.CreateField(ogr.FieldDefn(id_field, ogr.OFTString if id_type == "text" else ogr.OFTInteger64))
    layer.CreateField(ogr.FieldDefn("population", ogr.OFTInteger64))
    layer.CreateField(ogr.FieldDefn("area_km2", ogr.OFTReal))
    layer.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    for name, kind, _ in extra:
        layer.CreateField(ogr.FieldDefn(name, kind))
    values = district_values()
    for number, ((_, geometry), (code, row)) in enumerate(zip(district_shapes(), values.items())):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField(0, code if id_of is None else id_of(number))
        for index, name in enumerate(["population", "area_km2", "name"], start=1):
            if row[name] is None:
                feature.SetFieldNull(index)
            else:
                feature.SetField(index, row[name])
        for index, (_, _, value_of) in enumerate(extra, start=4):
            value = value_of(number)
            if isinstance(value, datetime.date):
                feature.SetField(index, value.year, value.month, value.day, 0, 0, 0, 0)
            else:
                feature.SetField(index, value)
        feature.SetGeometry(ogr.CreateGeometryFromWkb(geometry.wkb if geometry.geom_type == "MultiPolygon" else
                                                      ogr.ForceToMultiPolygon(ogr.CreateGeometryFromWkb(geometry.wkb)).ExportToIsoWkb()))
        layer.CreateFeature(feature)
    dataset = None
    return path


def fields_of(gpkg, table):
    """[(name, OGR type name)] of a GeoPackage table, and its FID column."""
    from osgeo import ogr

    dataset = ogr.Open(str(gpkg))
    layer = dataset.GetLayerByName(table)
    definition = layer.GetLayerDefn()
    fields = [(definition.GetFieldDefn(i).GetName(), ogr.GetFieldTypeName(definition.GetFieldDefn(i).GetType()))
              for i in range(definition.GetFieldCount())]
    return fields, layer.GetFIDColumn()


def expected_fields(table, id_field="district_code", id_type="Integer64"):
    stats = [(name, "Real") for name in NDVI_LAYOUT.stat_fields]
    districts = [(id_field, id_type), ("population", "Integer64"), ("area_km2", "Real"), ("name", "String")]
    if table.endswith("_change"):
        return districts + [("first_year", "Integer"), ("last_year", "Integer")] + [
            (name, "Real") for name in NDVI_LAYOUT.change_fields[2:]]
    return districts + [("year", "Integer"), ("pixel_count", "Integer64")] + stats


@pytest.fixture(scope="module")
def composites(tmp_path_factory):
    return write_composites(tmp_path_factory.mktemp("fields") / "composites", YEARS)


def run(mode, districts, composites, folder, server=None, **options):
    output = folder / f"{mode}.gpkg"
    if mode == "embedded":
        district_stats_embedded(DistrictStatsRequest.create(districts, composites, output, **options))
    else:
        district_stats_postgis(DistrictStatsRequest.create(districts, composites, output_gpkg=output, connection=server.conninfo,
                                                           schema="fields test", prefix=options.pop("prefix", "f_"), **options))
    return output


def postgis_columns(server, table, schema="fields test"):
    with server.admin_connect() as admin:
        return admin.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "ORDER BY ordinal_position", (schema, table)).fetchall()


@pytest.fixture(params=["embedded", "postgis"])
def mode(request):
    return request.param


@pytest.fixture
def server(mode, request):
    return request.getfixturevalue("postgis_server") if mode == "postgis" else None


def test_the_id_field_and_the_other_attributes_are_in_every_table_under_their_names_and_types(
        mode, server, composites, tmp_path):
    districts = Districts.from_file(write_districts(tmp_path / "districts.gpkg"), "district_code")
    assert [(a.name, a.type) for a in districts.attributes] == ATTRIBUTES
    output = run(mode, districts, composites, tmp_path, server)
    values = district_values()
    for table in TABLES:
        fields, fid = fields_of(output, table)
        assert fields == expected_fields(table, id_type="String"), table
        assert fid == "fid"
        rows = read_table(output, table, "district_code")
        assert set(rows) == set(values), table
        for code, expected in values.items():
            assert {name: rows[code][name] for name in expected} == pytest.approx(expected), (table, code)
    latest = read_table(output, "ndvi_stats_latest", "district_code")
    assert latest["K00"]["year"] == 2020 and latest["K00"]["pixel_count"] > 0
    if mode == "postgis":
        assert postgis_columns(server, "f_ndvi_stats_latest")[:4] == [
            ("district_code", "text"), ("population", "bigint"), ("area_km2", "double precision"), ("name", "text")]
        assert postgis_columns(server, "f_districts")[:4] == [
            ("district_code", "text"), ("population", "bigint"), ("area_km2", "double precision"), ("name", "text")]


def test_the_geojson_of_the_latest_table_carries_the_same_fields(composites, tmp_path):
    import json

    districts = Districts.from_file(write_districts(tmp_path / "districts.gpkg"), "district_code")
    district_stats_embedded(DistrictStatsRequest.create(districts, composites, tmp_path / "out.gpkg",
                                                        geojson=tmp_path / "latest.geojson"))
    features = json.loads((tmp_path / "latest.geojson").read_text())["features"]
    wanted = [name for name, _ in expected_fields("ndvi_stats_latest")]
    assert all(list(f["properties"]) == wanted for f in features)
    by_code = {f["properties"]["district_code"]: f["properties"] for f in features}
    assert by_code["K01"]["population"] == 1007 and by_code["K01"]["name"] == "B partial's"


def test_an_integer_id_stays_an_integer_and_a_date_stays_a_date(mode, server, composites, tmp_path):
    extra = [("surveyed", 9, lambda n: datetime.date(2000 + n, 1 + n, 10 + n))]  # 9: OFTDate
    path = write_districts(tmp_path / "districts.gpkg", id_field="zone", id_type="integer", extra=extra,
                           id_of=lambda n: 100 + n)
    districts = Districts.from_file(path, "zone")
    assert districts.ids[0] == 100 and districts.attributes[-1].type == "date"
    output = run(mode, districts, composites, tmp_path, server, prefix="int_")
    for table in TABLES:
        fields, _ = fields_of(output, table)
        assert fields[:5] == [("zone", "Integer64"), ("population", "Integer64"), ("area_km2", "Real"), ("name", "String"),
                              ("surveyed", "Date")], table
        rows = read_table(output, table, "zone")
        assert sorted(rows) == list(range(100, 110))
        assert rows[103]["surveyed"] == "2003/04/13" and rows[103]["population"] is None
    if mode == "postgis":
        columns = dict(postgis_columns(server, "int_ndvi_stats_change"))
        assert columns["zone"] == "bigint" and columns["surveyed"] == "date"


@pytest.mark.parametrize("name, clash", [("year", "the year of the statistics"), ("Mean_NDVI", "a statistic"),
                                         ("pixel_count", "the count"), ("geom", "the geometry"),
                                         ("first_year", "a field of the change table")])
def test_a_field_named_like_a_statistics_column_is_refused_naming_both(composites, tmp_path, name, clash):
    shapes = district_shapes()[:2]
    given = Districts.create(["a", "b"], [g for _, g in shapes], CRS, attributes={name: [1, 2]})
    with pytest.raises(ConfigurationError, match=rf"districts field '{name}' has the name of a column .*\({clash}"):
        DistrictStatsRequest.create(given, composites, tmp_path / "out.gpkg")
    as_id = Districts.create([1, 2], [g for _, g in shapes], CRS, id_field=name)
    with pytest.raises(ConfigurationError, match=rf"districts id field '{name}' has the name"):
        DistrictStatsRequest.create(as_id, composites, connection="host=nowhere", output_gpkg=tmp_path / "out.gpkg")
    assert not (tmp_path / "out.gpkg").exists()


def test_a_field_named_fid_is_kept_and_the_tables_take_another_feature_id_column(composites, tmp_path):
    shapes = district_shapes()[:2]
    given = Districts.create([7, 8], [g for _, g in shapes], CRS, id_field="fid", attributes={"FID_1": ["x", "y"]})
    district_stats_embedded(DistrictStatsRequest.create(given, composites, tmp_path / "out.gpkg"))
    fields, fid = fields_of(tmp_path / "out.gpkg", "ndvi_stats_latest")
    assert fid == "fid_2" and fields[:2] == [("fid", "Integer64"), ("FID_1", "String")]
    assert read_table(tmp_path / "out.gpkg", "ndvi_stats_latest", "fid")[8]["FID_1"] == "y"


def test_hostile_field_names_are_only_names(mode, server, composites, tmp_path):
    shapes = district_shapes()[:3]
    hostile_id = 'code "x"; drop table canary; --'
    attributes = {'";drop table canary': [1, 2, 3], "with space's": ["a", None, "c"], "ünï çødé": [0.5, 1.5, None]}
    given = Districts.create(["a", "b", "c"], [g for _, g in shapes], CRS, id_field=hostile_id, attributes=attributes)
    if server is not None:
        with server.admin_connect() as admin:
            admin.execute("CREATE TABLE IF NOT EXISTS public.canary (n integer)")
            admin.execute(f"GRANT ALL ON public.canary TO {server.user}")
    output = run(mode, given, composites, tmp_path, server, prefix="hostile_")
    for table in TABLES:
        fields, _ = fields_of(output, table)
        assert [name for name, _ in fields[:4]] == [hostile_id, *attributes], table
        rows = read_table(output, table, hostile_id)
        assert [rows[k]['";drop table canary'] for k in "abc"] == [1, 2, 3]
        assert [rows[k]["with space's"] for k in "abc"] == ["a", None, "c"]
    if server is not None:
        with server.admin_connect() as admin:
            assert admin.execute("SELECT to_regclass('public.canary')").fetchone()[0] is not None


def test_a_file_written_with_another_id_field_is_refused(composites, tmp_path):
    districts = Districts.from_file(write_districts(tmp_path / "districts.gpkg"), "district_code")
    district_stats_embedded(DistrictStatsRequest.create(districts, composites, tmp_path / "out.gpkg"))
    other = Districts.create(["K00"], [district_shapes()[0][1]], CRS, id_field="code")
    with pytest.raises(ConfigurationError, match="without the id field 'code'"):
        district_stats_embedded(DistrictStatsRequest.create(other, composites, tmp_path / "out.gpkg"))


def test_a_rerun_with_other_attributes_updates_them_in_the_latest_table(mode, server, composites, tmp_path):
    districts = Districts.from_file(write_districts(tmp_path / "districts.gpkg"), "district_code")
    run(mode, districts, composites, tmp_path, server, prefix="rerun_")
    renamed = Districts.create(districts.ids, districts.geometries, districts.crs, "district_code",
                               {"label": [f"L{i}" for i in range(len(districts.ids))]})
    output = run(mode, renamed, {2019: composites[2019]}, tmp_path, server, prefix="rerun_")
    latest = read_table(output, "ndvi_stats_latest", "district_code")
    fields, _ = fields_of(output, "ndvi_stats_latest")
    assert [name for name, _ in fields[:2]] == ["district_code", "label"]
    assert latest["K00"]["label"] == "L0" and latest["K00"]["year"] == 2020  # 2020 from the first run stays


def test_districts_keep_working_without_attributes():
    given = Districts.create(["a"], [district_shapes()[0][1]], CRS)
    assert given.id_field == "id" and given.attributes == () and given.field_names == ("id",)
