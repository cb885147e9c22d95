#!/usr/bin/env python3
"""`make demo`: the main job end to end on built-in sample data.

1. writes deterministic sample ATL08 granules under sample_data/atl08;
2. builds the sample TileDB database (configs/sample_local.yaml) from them;
3. queries it with a polygon region, canopy variables and the "good canopy
   retrievals" filters, and reports what came back;
4. in a headless QGIS, writes demo_output/: the styled GeoPackage of that query
   (with the region as a second layer), a shaded-relief base map of the sample
   landscape, Sentinel-2 NDVI median composites for 2019 and 2024 over a small
   city in the sample landscape (synthetic scenes served by a loopback STAC API),
   the canopy height baseline and change on 5 km Equal Earth hexagons,
   the district workflow over sample districts of the city (NDVI statistics per
   district and year computed embedded and in a throw-away PostGIS, checked to
   agree, the latest table, ATL08 canopy statistics per district: demo_districts.py),
   a QGIS project holding them all (with four print layouts), and PNGs of those
   layouts rendered by QGIS; the ATL08 map and the district maps are also copied to
   docs/img/ (demo_map.png, demo_districts.png) for the README.

Maps of the same quantity on one page share one set of classes (natural breaks of
all years together), and change maps are diverging and symmetric around 0
(plugin/core/map_classes.py); each page is sized to its maps.

Everything in demo_output/ is built in a hidden staging folder and renamed into
place only when complete, so an interrupted run leaves the previous outputs
intact; running it again replaces them.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import shapely

from canopy_explorer.plugin.core.lidar.config import load_config
from canopy_explorer.plugin.core.lidar.database import Atl08Database
from canopy_explorer.plugin.core.lidar.ingest import ingest_granules
from canopy_explorer.plugin.core.lidar.atl08.presets import GOOD_CANOPY
from canopy_explorer.plugin.core.lidar.query import SegmentQuery
from canopy_explorer.plugin.core.samples.database import SAMPLE_SEED  # the base map shows the granules' landscape
from canopy_explorer.plugin.core.samples.granules import SAMPLE_REGION, generate_granules
from canopy_explorer.plugin.qgis_compat import (
    DISTANCE_KILOMETERS,
    LAYOUT_MILLIMETERS,
    LEGEND_SUBGROUP,
    LEGEND_SYMBOL_LABEL,
    LEGEND_TITLE,
    set_label_font,
    set_legend_font,
)

ROOT = Path(__file__).resolve().parent.parent

# The query a user would make in the dialog: a polygon drawn over the sample forest.
DEMO_ROI = shapely.Polygon([(9.6, 50.6), (10.3, 50.65), (10.35, 51.2), (9.9, 51.4), (9.55, 51.1)])
DEMO_VARIABLES = ("h_canopy", "canopy_h_metrics:95", "h_te_best_fit")
DEMO_START, DEMO_END = "2019-01-01", "2023-12-31"

GEOPACKAGE_NAME = "atl08_canopy.gpkg"
ROI_LAYER_NAME = "region_of_interest"
BASEMAP_NAME = "basemap.tif"
PROJECT_NAME = "canopy_explorer_demo.qgz"
IMAGE_NAME = "canopy_explorer_demo.png"
NDVI_IMAGE_NAME = "canopy_explorer_ndvi.png"
CHANGE_NAME = "atl08_change.gpkg"
CHANGE_IMAGE_NAME = "canopy_explorer_change.png"
DISTRICT_IMAGE_NAME = "canopy_explorer_districts.png"
CHANGE_CELL_KM = 5.0  # hexagons small enough to show the sample's dieback patch
CHANGE_MIN_SHOTS = 20
NDVI_MAX_CLOUD = 30.0  # drops the one very cloudy sample scene per year
# The demo's city (NDVI composites and districts): a 6 km town in the south of the sample region with fields,
# built-up land, a lake and forest, where the sample ATL08 tracks cross every district (the scenes' default
# city, SAMPLE_CITY_CENTRE, is crossed by a few dozen segments, nearly none of them over forest).
DEMO_CITY_CENTRE, DEMO_CITY_KM = (50.6, 10.15), 6.0
IMAGE_SIZE = (1600, 1200)  # pixels; the other pages are 1600 pixels wide, as tall as their page's aspect
CLASSES = 5  # natural-breaks classes of the district and NDVI maps
PAGE_MM = (240.0, 180.0)  # the layout page, same aspect as the image
MAP_CRS = "EPSG:32632"  # UTM 32N: the sample region (9.5-10.5 E) without the 1.6:1 stretch of degrees
MAP_FRAME_MM = (6.0, 21.0, 168.0, 150.0)  # x, y, width, height on the page
DOCS_IMAGE = ROOT / "docs" / "img" / "demo_map.png"
DOCS_DISTRICT_IMAGE_NAME = "demo_districts.png"  # beside DOCS_IMAGE
DOCS_IMAGE_MAX_BYTES = 500_000


def demo_query() -> SegmentQuery:
    return SegmentQuery.create(roi=DEMO_ROI, start=DEMO_START, end=DEMO_END, variables=list(DEMO_VARIABLES), filters=GOOD_CANOPY)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "demo_output", help="folder for the GeoPackage, project and PNG")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder for the sample granules and database (default: sample_data/ as in configs/sample_local.yaml)")
    parser.add_argument("--docs-image", type=Path, default=DOCS_IMAGE, help="where to copy the PNG for the README")
    parser.add_argument("--no-docs-image", dest="docs_image", action="store_const", const=None, help="do not copy the PNG")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    config = load_config(ROOT / "configs" / "sample_local.yaml")
    granule_dir = ROOT / "sample_data" / "atl08"
    if args.data is not None:
        granule_dir = args.data / "atl08"
        config = config.with_changes(local_path=str(args.data / "atl08_db"))

    print(f"1/4 writing sample ATL08 granules over lat {SAMPLE_REGION[0]}..{SAMPLE_REGION[1]}, lon {SAMPLE_REGION[2]}..{SAMPLE_REGION[3]}")
    paths = generate_granules(granule_dir, seed=SAMPLE_SEED)
    print(f"    {len(paths)} granules in {granule_dir}")

    print(f"2/4 building the sample database {config.array_uri}")
    started = time.perf_counter()
    report = ingest_granules(config, granule_dir, log=lambda line: print(f"    {line}"))
    print(f"    {report.summary()} in {time.perf_counter() - started:.1f} s")

    print("3/4 querying canopy heights in a polygon drawn over the sample forest, 2019-2023, good canopy retrievals")
    spec = demo_query()
    database = Atl08Database(config)
    estimate = database.estimate(spec)
    started = time.perf_counter()
    frame = database.query(spec)
    elapsed = time.perf_counter() - started
    print(f"    estimate {estimate.rows} segments before reading; {len(frame)} segments returned in {elapsed:.2f} s")
    print(f"    h_canopy median {frame['h_canopy'].median():.1f} m (5-95%: {frame['h_canopy'].quantile(0.05):.1f}-{frame['h_canopy'].quantile(0.95):.1f} m)")
    print(f"    RH95 median {frame['canopy_h_metrics_p95'].median():.1f} m, terrain {frame['h_te_best_fit'].min():.0f}-{frame['h_te_best_fit'].max():.0f} m")
    print(f"    {frame['time'].min():%Y-%m-%d} to {frame['time'].max():%Y-%m-%d}, beams {', '.join(sorted(frame['beam_id'].unique()))}")

    print(f"4/4 writing the styled layer, a QGIS project and a map rendered by QGIS to {args.output}")
    started = time.perf_counter()
    written = write_map_outputs(config, spec, database, args.output, args.data or ROOT / "sample_data")
    for path in written:
        print(f"    wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    if args.docs_image is not None:
        how = write_docs_image(args.output / IMAGE_NAME, args.docs_image)
        print(f"    copied the map to {args.docs_image} ({how}, {args.docs_image.stat().st_size / 1e3:.0f} kB)")
        districts_image = args.docs_image.with_name(DOCS_DISTRICT_IMAGE_NAME)
        how = write_docs_image(args.output / DISTRICT_IMAGE_NAME, districts_image)
        print(f"    copied the district maps to {districts_image} ({how}, {districts_image.stat().st_size / 1e3:.0f} kB)")
    print(f"    in {time.perf_counter() - started:.1f} s; open {args.output / PROJECT_NAME} in QGIS")
    return 0


# --------------------------------------------------------------------------- files


def write_docs_image(source: Path, target: Path, max_bytes: int = DOCS_IMAGE_MAX_BYTES) -> str:
    """Copy the map for the README, atomically; scaled down if the rendered file is too big to commit."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.stem}.partial-{os.getpid()}{target.suffix}")
    try:
        if source.stat().st_size <= max_bytes:
            shutil.copyfile(source, temporary)
            how = "as rendered"
        else:
            # Shaded relief compresses badly in PNG; the README shows pictures at most ~900 px wide anyway,
            # so it gets a smaller one (a 256-colour palette was tried: dithering noise on the white page).
            from qgis.PyQt.QtCore import Qt
            from qgis.PyQt.QtGui import QImage

            full = QImage(str(source))
            width = full.width()
            while True:
                width = int(width * 0.85)
                image = full.scaledToWidth(width, Qt.TransformationMode.SmoothTransformation)
                if image.isNull() or not image.save(str(temporary), "PNG", 0):
                    raise RuntimeError(f"cannot write {temporary}")
                if temporary.stat().st_size <= max_bytes or width < 400:
                    break
            how = f"scaled to {image.width()}x{image.height()}"
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return how


def write_map_outputs(config, spec, database, output_dir: Path, data_dir: Path):
    """Build every output in a staging folder inside ``output_dir``, then rename each into place."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in output_dir.glob(".partial-*"):  # left by a run that was killed; an hour is far longer than a run
        if stale.is_dir() and time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=output_dir))
    try:
        names = build_in_qgis(config, spec, database, staging, data_dir)
        leftovers = sorted(p.name for p in staging.iterdir() if p.name not in names)
        if leftovers:  # e.g. a GeoPackage -wal file: moving the database without it would lose data
            raise RuntimeError(f"unexpected files left by QGIS in {staging}: {', '.join(leftovers)}")
        written = []
        for name in names:  # data first, the project and the picture that refer to it last
            os.replace(staging / name, output_dir / name)
            written.append(output_dir / name)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_roi_layer(path: Path, roi) -> None:
    """Add the query polygon to the GeoPackage as its own layer, so the project references no memory layer."""
    from osgeo import ogr, osr

    ogr.UseExceptions()
    dataset = ogr.Open(str(path), update=1)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    layer = dataset.CreateLayer(ROI_LAYER_NAME, srs, ogr.wkbPolygon, options=["GEOMETRY_NAME=geom"])
    layer.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetField("name", "demo polygon")
    feature.SetGeometry(ogr.CreateGeometryFromWkb(shapely.to_wkb(roi)))
    layer.CreateFeature(feature)
    feature = layer = dataset = None


# --------------------------------------------------------------------------- QGIS


def build_in_qgis(config, spec, database, folder: Path, data_dir: Path):
    """Write the GeoPackage, base map, project and PNG into ``folder``; returns their names in publish order."""
    from qgis.core import QgsApplication

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # QGIS caches raster statistics in a basemap.tif.aux.xml side-car; the demo needs none.
    os.environ["GDAL_PAM_ENABLED"] = "NO"
    QgsApplication.setPrefixPath("/usr", True)
    application = QgsApplication([], False)
    application.initQgis()
    try:
        return _build(config, spec, database, folder, data_dir)
    finally:
        application.exitQgis()


def _build(config, spec, database, folder: Path, data_dir: Path):
    from qgis.core import Qgis, QgsProject, QgsRasterLayer, QgsVectorLayer

    from canopy_explorer.plugin.core.grid.change import GridChangeRequest
    from canopy_explorer.plugin.core.samples.basemap import write_basemap
    from canopy_explorer.plugin.layers.grid_layer import load_grid_layers, write_grid_change
    from canopy_explorer.plugin.layers.ndvi_layer import load_composite_layer
    from canopy_explorer.plugin.layers.segment_layer import QueryRequest, load_query_layer, write_query_output

    request = QueryRequest(config, spec, DEMO_VARIABLES, GOOD_CANOPY, output_path=str(folder / GEOPACKAGE_NAME))
    output = write_query_output(request, database=database)
    if not output.rows:
        raise RuntimeError("the demo query returned no segments: nothing to map")
    print(f"    {output.rows} segments in {GEOPACKAGE_NAME}, layer '{output.layer_name}', "
          f"natural breaks on {output.colour_by}: {', '.join(f'{b:.1f}' for b in output.breaks)}")
    write_roi_layer(folder / GEOPACKAGE_NAME, DEMO_ROI)
    map_extent = _map_extent(_crs(MAP_CRS), MAP_FRAME_MM[2], MAP_FRAME_MM[3])
    # The landscape model is defined everywhere: draw it over the whole map frame, not just the granules' box.
    write_basemap(folder / BASEMAP_NAME, _degrees_around(map_extent), seed=SAMPLE_SEED, pixel_degrees=0.0006)
    composites, city = _ndvi_composites(folder, data_dir / "stac")
    change = write_grid_change(GridChangeRequest.create(config, folder / CHANGE_NAME, variable="h_canopy", cell_size_km=CHANGE_CELL_KM,
                                                        min_shots=CHANGE_MIN_SHOTS, filters=GOOD_CANOPY))
    (p1_start, p1_end), (p2_start, p2_end) = change.result.periods
    print(f"    {len(change.result)} hexagons of {CHANGE_CELL_KM:g} km with at least {CHANGE_MIN_SHOTS} good canopy segments in "
          f"{p1_start}..{p1_end} and {p2_start}..{p2_end}; change from {change.result.columns['change'].min():.1f} "
          f"to {change.result.columns['change'].max():.1f} m")
    ndvi_classes = _share_ndvi_classes(composites)
    from demo_districts import run_district_workflow

    districts = run_district_workflow(folder, city, composites, config, DEMO_START, DEMO_END, GOOD_CANOPY)

    project = QgsProject()
    project.setFilePathStorage(Qgis.FilePathType.Relative)
    project.setTitle("Canopy Explorer demo: ATL08 canopy heights over the sample forest")
    project.setCrs(_crs(MAP_CRS))

    basemap = QgsRasterLayer(str(folder / BASEMAP_NAME), "Sample landscape (shaded land cover)", "gdal")
    segments = load_query_layer(output)
    roi = QgsVectorLayer(f"{folder / GEOPACKAGE_NAME}|layername={ROI_LAYER_NAME}", "Region of interest", "ogr")
    for layer in (basemap, segments, roi):
        if not layer.isValid():
            raise RuntimeError(f"QGIS cannot open the demo layer '{layer.name()}' ({layer.source()})")
    _style_basemap(basemap)
    _style_roi(roi)
    ndvi_layers = [load_composite_layer(c) for c in composites]  # their .qml holds the shared classes
    district_layers = _district_layers(folder, districts)
    change_layers = load_grid_layers(change)
    for layer in (*district_layers.values(), *change_layers, basemap, *ndvi_layers, segments, roi):  # added last is drawn on top
        project.addMapLayer(layer)
    # Map themes (layer ids, not paths) give each layout map its layers: the ATL08 map shows the
    # latest composite under the segments, the NDVI page one year per map.
    themes = project.mapThemeCollection()
    themes.insert("ATL08", _theme(project, [basemap, ndvi_layers[-1], segments, roi]))
    for composite, layer in zip(composites, ndvi_layers):
        themes.insert(f"NDVI {composite.report.year}", _theme(project, [basemap, layer]))
    for layer in change_layers:
        themes.insert(layer.name(), _theme(project, [layer]))
    for key, layer in district_layers.items():
        if key != "outline":
            themes.insert(layer.name(), _theme(project, [district_layers["outline"], layer]))
    for layer in (*ndvi_layers[:-1], *change_layers, *district_layers.values()):  # the project opens showing the segments and the latest year
        project.layerTreeRoot().findLayer(layer.id()).setItemVisibilityChecked(False)

    layout = _layout(project, output, segments, roi, map_extent)
    ndvi_layout = _ndvi_layout(project, composites, ndvi_layers, ndvi_classes)
    change_layout = _change_layout(project, change, change_layers)
    district_layout = _district_layout(project, districts, district_layers)
    for item in (layout, ndvi_layout, change_layout, district_layout):
        project.layoutManager().addLayout(item)
    if not project.write(str(folder / PROJECT_NAME)):
        raise RuntimeError(f"cannot write the QGIS project: {project.error()}")
    _export_png(layout, folder / IMAGE_NAME)
    _export_png(ndvi_layout, folder / NDVI_IMAGE_NAME)
    _export_png(change_layout, folder / CHANGE_IMAGE_NAME)
    _export_png(district_layout, folder / DISTRICT_IMAGE_NAME)
    project.clear()  # releases the files before they are moved
    ndvi_files = [name for c in composites for name in (c.report.path.name, c.report.path.with_suffix(".qml").name)]
    return [GEOPACKAGE_NAME, BASEMAP_NAME, *ndvi_files, CHANGE_NAME, *districts.files, PROJECT_NAME, IMAGE_NAME, NDVI_IMAGE_NAME,
            CHANGE_IMAGE_NAME, DISTRICT_IMAGE_NAME]


def _ndvi_composites(folder: Path, catalogue_dir: Path):
    """NDVI composites for the sample catalogue's years, found through a loopback STAC API."""
    from canopy_explorer.plugin.core.samples.scenes import generate_sample_catalogue
    from canopy_explorer.plugin.core.samples.stac_server import SampleStacServer
    from canopy_explorer.plugin.core.sentinel2.composites import CompositeRequest
    from canopy_explorer.plugin.core.sentinel2.stac_search import default_stac_source
    from canopy_explorer.plugin.layers.ndvi_layer import write_ndvi_composites

    catalogue = generate_sample_catalogue(catalogue_dir, centre=DEMO_CITY_CENTRE, boundary_km=DEMO_CITY_KM)
    with SampleStacServer(catalogue.folder) as server:
        composites = write_ndvi_composites(CompositeRequest.create(
            default_stac_source(url=server.url, collection=catalogue.collection), catalogue.boundary,
            catalogue.boundary_crs, catalogue.years, NDVI_MAX_CLOUD, folder,
        ))
    for composite in composites:
        print(f"    {composite.report.summary()}; natural breaks {', '.join(f'{b:.2f}' for b in composite.breaks)}")
    return composites, catalogue.boundary


def _theme(project, layers):
    from qgis.core import QgsMapThemeCollection

    record = QgsMapThemeCollection.MapThemeRecord()
    record.setLayerRecords([QgsMapThemeCollection.MapThemeLayerRecord(layer) for layer in layers])
    return record


def _share_ndvi_classes(composites):
    """One set of natural breaks for every year's composite (of all years' pixels together), stored in each
    composite's .qml, so a colour means the same NDVI on every year's map; returns (minimum, breaks)."""
    from canopy_explorer.plugin.core.map_classes import shared_breaks
    from canopy_explorer.plugin.core.natural_breaks import raster_sample
    from canopy_explorer.plugin.layers.ndvi_layer import save_composite_style

    minimum, breaks = shared_breaks([raster_sample(c.report.path) for c in composites], CLASSES)
    for composite in composites:
        composite.minimum, composite.breaks = minimum, breaks
        save_composite_style(composite.report.path, minimum, breaks)
    print(f"    NDVI classes shared by {', '.join(str(c.report.year) for c in composites)} (natural breaks of all years): "
          f"{minimum:.2f}, {', '.join(f'{b:.2f}' for b in breaks)}")
    return minimum, breaks


def _ndvi_layout(project, composites, layers, classes):
    """One map per year side by side over the city, one legend for both (they share their classes), and a note;
    the page is as large as the maps need."""
    from qgis.core import QgsLayoutItemLegend, QgsLayoutItemMap, QgsMapLayerLegendUtils, QgsRectangle

    extent = QgsRectangle(layers[0].extent())
    extent.scale(1.03)
    width = 92.0
    height = width * extent.height() / extent.width()
    side = 56.0  # the legend and note column
    page = (6 + len(layers) * (width + 5) + side + 4, 27 + height + 6)
    layout = _new_layout(project, "NDVI composites", page)

    def add(item, x, y, w, h):
        _place(layout, item, x, y, w, h)

    years = " and ".join(str(c.report.year) for c in composites)
    add(_label(layout, "Sentinel-2 NDVI median composites over the sample city", 16, bold=True), 6, 4, page[0] - 12, 10)
    for index, (composite, layer) in enumerate(zip(composites, layers)):
        x = 6 + index * (width + 5)
        map_item = QgsLayoutItemMap(layout)
        add(map_item, x, 27, width, height)
        map_item.setCrs(layer.crs())
        map_item.setExtent(extent)
        map_item.setFollowVisibilityPreset(True)
        map_item.setFollowVisibilityPresetName(f"NDVI {composite.report.year}")
        map_item.setFrameEnabled(True)
        add(_label(layout, f"{composite.report.year}: median of {len(composite.report.scenes_used)} scenes", 11, bold=True),
            x, 19, width, 7)
    legend_x = 6 + len(layers) * (width + 5)
    legend = QgsLayoutItemLegend(layout)
    legend.setTitle("NDVI")
    legend.setAutoUpdateModel(False)
    root = legend.model().rootGroup()
    root.clear()
    node = root.addLayer(layers[-1])
    node.setCustomProperty("legend/title-label", f"both years: {years}")
    # the first legend entry of a pseudocolour layer names the band; the classes say more
    QgsMapLayerLegendUtils.setLegendNodeOrder(node, list(range(1, len(classes[1]) + 1)))
    legend.model().refreshLayerLegend(node)
    legend.setBackgroundEnabled(False)
    for part, size in ((LEGEND_TITLE, 11), (LEGEND_SUBGROUP, 9), (LEGEND_SYMBOL_LABEL, 9)):
        set_legend_font(legend, part, _font(size, bold=part != LEGEND_SYMBOL_LABEL))
    legend.setSymbolHeight(3.5)
    add(legend, legend_x, 25, side - 4, 45)
    legend.adjustBoxSize()
    add(_label(layout, f"One set of classes for both maps: natural breaks (Fisher-Jenks, {CLASSES} classes) of the "
                       f"pixels of {years} together, so a colour means the same NDVI on each. Synthetic Sentinel-2 "
                       "L2A scenes (sample_scenes) served by a loopback STAC API; clouds, shadows and cirrus masked "
                       "with SCL; scenes above 30 % cloud cover left out. "
                       f"{composites[0].report.crs}, 10 m. Made with Canopy Explorer and QGIS by `make demo`.", 7),
        legend_x, 27 + height - 34, side - 4, 34)
    return layout


def _change_layout(project, change, layers):
    """Baseline and change side by side on Equal Earth hexagons, as in the seed's figure."""
    from qgis.core import QgsLayoutItemLegend, QgsLayoutItemMap, QgsRectangle

    from canopy_explorer.plugin.core.samples.granules import DIEBACK_START

    result = change.result
    (p1_start, p1_end), (p2_start, p2_end) = result.periods
    extent = QgsRectangle(layers[0].extent())
    extent.scale(1.04)
    column = (PAGE_MM[0] - 12) / 2
    width = min(column - 40, 130.0 * extent.width() / extent.height())  # leaves 40 mm for the legend
    height = width * extent.height() / extent.width()
    layout = _new_layout(project, "Canopy height change", (PAGE_MM[0], 24 + height + 4 + 14 + 3))
    _place(layout, _label(layout, "ATL08 canopy height on equal-area hexagons: baseline and change", 15, bold=True), 6, 4, 228, 10)
    titles = (f"Median {result.variable}, {p1_start[:4]}-{p1_end[:4]}", f"Change, {p2_start[:4]}-{p2_end[:4]} minus {p1_start[:4]}-{p1_end[:4]}")
    for index, (layer, title) in enumerate(zip(layers, titles)):
        x = 6 + index * column
        map_item = QgsLayoutItemMap(layout)
        _place(layout, map_item, x, 24, width, height)
        map_item.setCrs(layer.crs())
        map_item.setExtent(extent)
        map_item.setFollowVisibilityPreset(True)
        map_item.setFollowVisibilityPresetName(layer.name())
        map_item.setFrameEnabled(True)
        _place(layout, _label(layout, title, 10, bold=True), x, 17, column - 4, 7)
        legend = QgsLayoutItemLegend(layout)
        legend.setTitle("metres")
        legend.setAutoUpdateModel(False)
        root = legend.model().rootGroup()
        root.clear()
        root.addLayer(layer).setCustomProperty("legend/title-label", " ")
        legend.setBackgroundEnabled(False)
        for part in (LEGEND_TITLE, LEGEND_SYMBOL_LABEL):
            set_legend_font(legend, part, _font(8, bold=part == LEGEND_TITLE))
        _place(layout, legend, x + width + 3, 24, column - width - 6, height)
        legend.adjustBoxSize()
    _place(layout, _label(layout, (
        f"{len(result)} hexagons of {result.grid.cell_size_km:g} km (Equal Earth, EPSG:8857) with at least {result.min_shots} good "
        f"canopy segments in both periods; segments streamed from the sample database in batches. The sample landscape "
        f"loses 60 % of its canopy in a disc in the north-east from {str(DIEBACK_START)[:4]} on. Change map classes are "
        f"symmetric around 0: equal steps to the 95th percentile of the absolute change ({change.change_limit:.1f} m), the outer ones reaching the largest change on either side. Made with Canopy Explorer "
        "and QGIS by `make demo`."), 7), 6, 24 + height + 4, PAGE_MM[0] - 12, 14)
    return layout


# --------------------------------------------------------------------------- district maps

DISTRICT_NDVI_TITLE = "District mean NDVI {year}"
NDVI_CHANGE_RAMP = ("#b2182b", "#ef8a62", "#f7f7f7", "#7fbf7b", "#1b7837")  # red (loss), white (none), green (gain)


def _district_layers(folder: Path, districts):
    """The district tables as layers, keyed by what they show: NDVI per year (classes shared by the years), the NDVI
    change (symmetric around 0), the ATL08 canopy height, and the districts' outlines (districts without data)."""
    from qgis.core import QgsFillSymbol, QgsSingleSymbolRenderer, QgsVectorLayer

    from canopy_explorer.plugin.core.map_classes import shared_breaks, symmetric_classes
    from canopy_explorer.plugin.layers.district_layer import stats_ramp
    from canopy_explorer.plugin.layers.symbology import gradient, graduated_renderer

    from demo_districts import DISTRICTS_NAME

    def open_layer(path, table, name):
        layer = QgsVectorLayer(f"{path}|layername={table}", name, "ogr")
        if not layer.isValid():
            raise RuntimeError(f"QGIS cannot open {table} in {path.name}")
        return layer

    def values(layer, field):
        return [feature[field] for feature in layer.getFeatures()]

    layers = {"outline": open_layer(folder / DISTRICTS_NAME, "districts", "Sample districts")}
    layers["outline"].setRenderer(QgsSingleSymbolRenderer(QgsFillSymbol.createSimple(
        {"color": "#e6e6e6", "outline_color": "#555555", "outline_width": "0.2"})))
    ndvi = districts.ndvi
    gpkg = ndvi.output
    years = [layer for layer in ndvi.layers if layer.kind == "year"]
    for table in years:
        layers[table.year] = open_layer(gpkg, table.name, DISTRICT_NDVI_TITLE.format(year=table.year))
    field = years[0].field
    minimum, breaks = shared_breaks([values(layers[t.year], field) for t in years], CLASSES)
    for table in years:
        layers[table.year].setRenderer(graduated_renderer(field, None, minimum, breaks, ramp=stats_ramp(table), geometry="polygon"))
    print(f"    district NDVI classes shared by {', '.join(str(t.year) for t in years)}: {minimum:.3f}, "
          f"{', '.join(f'{b:.3f}' for b in breaks)}")

    change = next(layer for layer in ndvi.layers if layer.kind == "change")
    layers["change"] = open_layer(gpkg, change.name, f"District NDVI change {years[-1].year} minus {years[0].year}")
    low, bounds = symmetric_classes(values(layers["change"], change.field), CLASSES)
    layers["change"].setRenderer(graduated_renderer(change.field, None, low, bounds, ramp=gradient(NDVI_CHANGE_RAMP),
                                                    geometry="polygon"))
    print(f"    district NDVI change classes, symmetric around 0: {low:+.3f}, {', '.join(f'{b:+.3f}' for b in bounds)}")

    canopy = next(layer for layer in districts.canopy.layers if layer.kind == "latest")
    layers["canopy"] = open_layer(districts.canopy.output, canopy.name, "District ATL08 canopy height, latest year")
    # its stored default style: natural breaks (k = 5) of the median h_canopy, Greens
    return layers


def _district_layout(project, districts, layers):
    """District NDVI of each year (one set of classes, one legend), its change (symmetric around 0) and the ATL08
    canopy height of the same districts, two by two, on a page sized to them."""
    from qgis.core import QgsLayoutItemLegend, QgsLayoutItemMap, QgsRectangle

    extent = QgsRectangle(layers["outline"].extent())
    extent.scale(1.04)
    width = 80.0
    height = width * extent.height() / extent.width()
    legend_width = 42.0
    column = width + 3 + legend_width + 4
    row = 9 + height + 4
    page = (6 + 2 * column + 2, 22 + 2 * row + 12)
    layout = _new_layout(project, "District NDVI and canopy", page)
    years = sorted(key for key in layers if isinstance(key, int))
    ndvi, canopy = districts.ndvi, districts.canopy
    _place(layout, _label(layout, "Sample city districts: NDVI per year, its change, and ATL08 canopy height", 15, bold=True),
           6, 4, page[0] - 12, 9)
    _place(layout, _label(layout, f"Mean NDVI per district computed embedded and in PostGIS (largest difference "
                                  f"{districts.max_difference:.1g} over {districts.compared} values); ATL08 h_canopy of "
                                  "the good canopy retrievals, median per district.", 8, colour="#444444"),
           6, 13, page[0] - 12, 6)

    def map_with_legend(x, y, key, title, legend_title, legend_label=None):
        layer = layers[key]
        map_item = QgsLayoutItemMap(layout)
        _place(layout, map_item, x, y + 8, width, height)
        map_item.setCrs(layer.crs())
        map_item.setExtent(extent)
        map_item.setFollowVisibilityPreset(True)
        map_item.setFollowVisibilityPresetName(layer.name())
        map_item.setFrameEnabled(True)
        _place(layout, _label(layout, title, 10, bold=True), x, y, width + legend_width, 7)
        if legend_title is None:
            return
        legend = QgsLayoutItemLegend(layout)
        legend.setTitle(legend_title)
        legend.setAutoUpdateModel(False)
        root = legend.model().rootGroup()
        root.clear()
        root.addLayer(layer).setCustomProperty("legend/title-label", legend_label or " ")
        outline = root.addLayer(layers["outline"])
        outline.setUseLayerName(False)
        outline.setName("no data")
        legend.setBackgroundEnabled(False)
        for part in (LEGEND_TITLE, LEGEND_SUBGROUP, LEGEND_SYMBOL_LABEL):
            set_legend_font(legend, part, _font(8, bold=part == LEGEND_TITLE))
        legend.setSymbolHeight(3.5)
        _place(layout, legend, x + width + 3, y + 8, legend_width, height)
        legend.adjustBoxSize()

    top, bottom = 22, 22 + row
    x0, x1 = 6, 6 + column
    # the two years share one legend, between them: the classes are the same
    map_with_legend(x0, top, years[0], f"Mean NDVI {years[0]}", f"Mean NDVI, {years[0]} and {years[-1]}",
                    "one set of classes")
    map_with_legend(x1, top, years[-1], f"Mean NDVI {years[-1]}", None)
    note = _label(layout, f"Both NDVI maps use one set of classes: natural breaks ({CLASSES} classes) of the districts' "
                          f"values of {years[0]} and {years[-1]} together, so a colour means the same NDVI on each.", 7,
                  colour="#555555")
    _place(layout, note, x1 + width + 3, top + 8, legend_width, height)
    change = next(layer for layer in ndvi.layers if layer.kind == "change")
    map_with_legend(x0, bottom, "change", f"Change in mean NDVI, {years[-1]} minus {years[0]}", "NDVI change",
                    "symmetric around 0")
    canopy_latest = next(layer for layer in canopy.layers if layer.kind == "latest")
    map_with_legend(x1, bottom, "canopy", "ATL08 canopy height (median h_canopy), latest year",
                    "Canopy height", f"natural breaks, {len(canopy_latest.breaks)} classes")
    _place(layout, _label(layout, (
        f"{len(districts.districts.ids)} synthetic districts (sample_districts) over the sample city; synthetic Sentinel-2 "
        f"composites and ICESat-2 ATL08 segments. Change classes: {CLASSES} equal steps from -max to +max of the "
        f"absolute change of {change.field}. UTM zone 32N. Made with Canopy Explorer and QGIS by `make demo`."), 7,
        colour="#555555"), 6, 22 + 2 * row, page[0] - 12, 10)
    return layout


def _crs(authid: str):
    from qgis.core import QgsCoordinateReferenceSystem

    crs = QgsCoordinateReferenceSystem(authid)
    if not crs.isValid():
        raise RuntimeError(f"QGIS does not know {authid}")
    return crs


def _style_basemap(layer) -> None:
    """The bands are final colours: show them as they are, without QGIS's default min/max stretch."""
    from qgis.core import QgsMultiBandColorRenderer

    layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), 1, 2, 3))


def _style_roi(layer) -> None:
    from qgis.core import QgsFillSymbol, QgsSingleSymbolRenderer

    symbol = QgsFillSymbol.createSimple(
        {"style": "no", "outline_color": "#b2182b", "outline_width": "0.7", "outline_style": "dash"}
    )
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))


def _map_extent(map_crs, width_mm: float, height_mm: float):
    """The region's bounding box plus a margin, in the map's CRS, widened to the map frame's aspect ratio."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject, QgsRectangle

    lon_min, lat_min, lon_max, lat_max = DEMO_ROI.buffer(0.04).bounds
    transform = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), map_crs, QgsProject.instance())
    box = transform.transformBoundingBox(QgsRectangle(lon_min, lat_min, lon_max, lat_max))
    scale = max(box.width() / width_mm, box.height() / height_mm)  # map units per millimetre
    centre = box.center()
    half_width, half_height = scale * width_mm / 2, scale * height_mm / 2
    return QgsRectangle(centre.x() - half_width, centre.y() - half_height, centre.x() + half_width, centre.y() + half_height)


def _degrees_around(extent, pad: float = 0.02, step: float = 0.05):
    """(lat_min, lat_max, lon_min, lon_max) covering a map extent, padded and rounded out to ``step`` degrees."""
    import math

    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject

    transform = QgsCoordinateTransform(_crs(MAP_CRS), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    box = transform.transformBoundingBox(extent)
    down = lambda value: math.floor((value - pad) / step) * step
    up = lambda value: math.ceil((value + pad) / step) * step
    return (round(down(box.yMinimum()), 6), round(up(box.yMaximum()), 6), round(down(box.xMinimum()), 6), round(up(box.xMaximum()), 6))


def _layout(project, output, segments, roi, map_extent):
    """A page with a title, the map, a legend of the query layer and region, a scale bar and a note."""
    from qgis.core import (
        QgsLayoutItemLegend,
        QgsLayoutItemMap,
        QgsLayoutItemPicture,
        QgsLayoutItemScaleBar,
        QgsTextFormat,
    )
    from qgis.PyQt.QtGui import QColor

    layout = _new_layout(project, "Canopy Explorer demo")

    def place(item, x, y, width=None, height=None):
        _place(layout, item, x, y, width, height)

    def label(text, size, bold=False, colour="#222222"):
        return _label(layout, text, size, bold, colour)

    place(label("ATL08 canopy height in a drawn region, 2019–2023", 17, bold=True), 6, 4, 228, 10)
    place(
        label(f"{output.rows:,} ICESat-2 land segments passing the “good canopy retrievals” preset "
              f"(forest land cover, h_canopy 5–60 m, photon counts)", 9, colour="#444444"),
        6, 13, 228, 6,
    )

    map_item = QgsLayoutItemMap(layout)
    place(map_item, *MAP_FRAME_MM)
    map_item.setCrs(_crs(MAP_CRS))
    # No explicit layer set: the map follows the project's layers. A kept layer set would be saved with
    # absolute paths (into the staging folder) in 3.22, where layer sources elsewhere are relative.
    # setExtent, not zoomToExtent: on a new map item 3.22's zoomToExtent divides by an empty extent
    map_item.setExtent(map_extent)
    map_item.setFollowVisibilityPreset(True)
    map_item.setFollowVisibilityPresetName("ATL08")
    map_item.setFrameEnabled(True)
    map_item.setFrameStrokeColor(QColor("#666666"))

    legend = QgsLayoutItemLegend(layout)
    legend.setTitle("Canopy height")
    legend.setLinkedMap(map_item)
    legend.setAutoUpdateModel(False)
    root = legend.model().rootGroup()
    root.clear()  # the base map's red/green/blue bands say nothing: the note below describes it
    root.addLayer(segments).setCustomProperty("legend/title-label", "ATL08 h_canopy")
    root.addLayer(roi)
    for style, size, bold in ((LEGEND_TITLE, 12, True), (LEGEND_SUBGROUP, 10, True), (LEGEND_SYMBOL_LABEL, 9, False)):
        set_legend_font(legend, style, _font(size, bold))
    legend.setSymbolHeight(3.5)
    legend.setBackgroundEnabled(False)
    place(legend, 178, 21)
    legend.adjustBoxSize()

    scale_bar = QgsLayoutItemScaleBar(layout)
    scale_bar.setStyle("Single Box")
    scale_bar.setLinkedMap(map_item)
    scale_bar.setUnits(DISTANCE_KILOMETERS)
    scale_bar.setUnitLabel("km")
    scale_bar.setUnitsPerSegment(10)
    scale_bar.setNumberOfSegments(2)
    scale_bar.setNumberOfSegmentsLeft(0)
    scale_bar.setBackgroundEnabled(True)
    scale_bar.setBackgroundColor(QColor(255, 255, 255, 200))
    text = QgsTextFormat()
    text.setFont(_font(8))
    text.setSize(8)
    scale_bar.setTextFormat(text)
    scale_bar.setHeight(2.5)
    place(scale_bar, 10, 158)
    scale_bar.update()

    arrow = Path("/usr/share/qgis/svg/arrows/NorthArrow_02.svg")
    if arrow.exists():  # grid north of UTM is within a degree of true north here
        picture = QgsLayoutItemPicture(layout)
        picture.setPicturePath(str(arrow))
        place(picture, 162, 24, 9, 12)

    place(
        label("Synthetic ICESat-2 ATL08 sample data (sample_granules, seed 42). Base: the same synthetic landscape, "
              "land cover over shaded relief (forest green, fields beige, built-up mauve, water blue). "
              "Classes: natural breaks (Fisher-Jenks). UTM zone 32N. Made with Canopy Explorer and QGIS by "
              "`make demo`.", 7, colour="#555555"),
        178, 120, 56, 50,
    )
    return layout


def _new_layout(project, name: str, page=PAGE_MM):
    """A print layout with one page of ``page`` (width, height) mm."""
    from qgis.core import QgsLayoutSize, QgsPrintLayout

    layout = QgsPrintLayout(project)
    layout.initializeDefaults()
    layout.setName(name)
    layout.pageCollection().page(0).setPageSize(QgsLayoutSize(page[0], page[1], LAYOUT_MILLIMETERS))
    return layout


def _place(layout, item, x, y, width=None, height=None) -> None:
    """Add ``item`` at (x, y) mm, sized when a width is given."""
    from qgis.core import QgsLayoutPoint, QgsLayoutSize

    mm = LAYOUT_MILLIMETERS
    layout.addLayoutItem(item)
    item.attemptMove(QgsLayoutPoint(x, y, mm))
    if width is not None:
        item.attemptResize(QgsLayoutSize(width, height, mm))


def _font(size, bold=False):
    from qgis.PyQt.QtGui import QFont

    font = QFont("DejaVu Sans")
    font.setPointSizeF(size)
    font.setBold(bold)
    return font


def _label(layout, text, size, bold=False, colour="#222222"):
    from qgis.core import QgsLayoutItemLabel
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QColor

    item = QgsLayoutItemLabel(layout)
    item.setText(text)
    set_label_font(item, _font(size, bold), QColor(colour))
    item.setHAlign(Qt.AlignmentFlag.AlignLeft)
    return item


def _export_png(layout, path: Path) -> None:
    """The layout's page as a PNG IMAGE_SIZE[0] pixels wide (as tall as the page's aspect), with no metadata
    (re-running gives the same file).

    Rendered to an image and saved by Qt rather than with QgsLayoutExporter.exportToImage, which
    georeferences the page of the layout's map by opening the file in GDAL for update: the PNG driver
    cannot, and QGIS 3.40 prints "ERROR 6: The PNG driver does not support update access" each time."""
    from qgis.core import QgsLayoutExporter
    from qgis.PyQt.QtCore import QSize

    page = layout.pageCollection().page(0).pageSize()
    size = QSize(IMAGE_SIZE[0], round(IMAGE_SIZE[0] * page.height() / page.width()))
    image = QgsLayoutExporter(layout).renderPageToImage(0, size, IMAGE_SIZE[0] / (page.width() / 25.4))
    if image.isNull() or not image.save(str(path), "PNG"):
        raise RuntimeError(f"QGIS could not render the map to {path.name}")


if __name__ == "__main__":
    sys.exit(main())
