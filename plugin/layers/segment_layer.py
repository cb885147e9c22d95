"""ATL08 query results as files and layers: the one implementation behind the dialog and Processing.

``write_query_output`` runs in a background task or a Processing algorithm: it
streams the query into a file (a GeoPackage for temporary layers), classifies
the colour variable on a sample and stores the style with the file.
``load_query_layer`` runs on the main thread and only opens the finished file.
"""

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

import numpy as np
from qgis.core import QgsLayerMetadata, QgsVectorLayer

from ..core.errors import QueryError
from ..core.lidar.config import DatabaseConfig
from ..core.lidar.database import BATCH_CELLS, Atl08Database
from ..core.lidar.open_databases import shared_database
from ..core.lidar.empty_result import explain_empty
from ..core.lidar.query import NearestRequest, SegmentQuery
from ..core.natural_breaks import BreaksSample
from ..core.segment_files import write_segments
from .profile_layer import set_segment_elevation
from .symbology import graduated_renderer
from .temporal import make_segments_temporal

BATCH_ROWS = BATCH_CELLS  # TileDB's own batches, whole
STYLE_NAME = "Canopy Explorer"


@dataclass(frozen=True)
class QueryRequest:
    """Everything one query-to-layer run needs, in plain values."""

    config: DatabaseConfig
    spec: SegmentQuery
    variables: tuple  # as the user typed them, for the name and metadata
    filters_text: str = ""
    output_path: Optional[str] = None  # None: a temporary GeoPackage
    colour_by: Optional[str] = None  # output column; defaults to the first requested column
    classes: int = 5
    max_rows: Optional[int] = None  # above this estimate, stop and ask (None: never ask)

    @property
    def layer_name(self) -> str:
        return query_layer_name(self.variables, self.spec)

    @property
    def colour_column(self) -> Optional[str]:
        names = [c.name for c in self.spec.columns]
        if self.colour_by:
            if self.colour_by not in names:
                raise QueryError(f"cannot colour by '{self.colour_by}': it is not among the query's columns ({', '.join(names)})")
            return self.colour_by
        return names[0] if names else None

    def description(self) -> Dict[str, str]:
        start, end = _dates(self.spec)
        return {
            "database": self.config.array_uri,
            "variables": ", ".join(self.variables),
            "start": start,
            "end": end,
            "filters": self.filters_text.strip(),
            "region": _region_text(self.spec),
        }


@dataclass
class QueryOutput:
    path: Optional[str]
    format: str
    layer_name: str
    rows: int
    colour_by: Optional[str]
    minimum: Optional[float]
    breaks: List[float]
    description: Dict[str, str] = field(default_factory=dict)
    estimated_rows: Optional[int] = None
    needs_confirmation: bool = False
    colour_variable: Optional[str] = None
    empty_reason: str = ""  # when nothing matched: why (core.empty_result), for the message the user sees
    searched: str = "the region, time range and filters"

    @property
    def nothing_matched(self) -> str:
        """The message for an empty result: what matched nothing, and why."""
        return f"no segments match {self.searched}, so nothing was written" + (f": {self.empty_reason}" if self.empty_reason else "")


def place_text(lat: float, lon: float, digits: int = 5) -> str:
    """``45.15000 N, 7.15000 E``: a point as names and messages give it."""
    return f"{abs(lat):.{digits}f} {'S' if lat < 0 else 'N'}, {abs(lon):.{digits}f} {'W' if lon < 0 else 'E'}"


def query_layer_name(variables, spec: SegmentQuery) -> str:
    start, end = _dates(spec)
    first = variables[0] if variables else "segments"
    more = f" and {len(variables) - 1} more" if len(variables) > 1 else ""
    if not start and not end:
        years = "all dates"
    elif start[:4] == end[:4]:
        years = start[:4]
    else:
        years = f"{start[:4] or '…'}-{end[:4] or '…'}"
    return f"ATL08 {first}{more}, {years}"


def _dates(spec: SegmentQuery):
    """Start and end as ISO text, empty for an open bound."""
    unit = "datetime64[s]" if spec.sub_day else "datetime64[D]"

    def as_text(ns: int) -> str:
        if ns in (np.iinfo(np.int64).min, np.iinfo(np.int64).max):
            return ""
        return str(np.datetime64(int(ns), "ns").astype(unit))

    return as_text(spec.start_ns), as_text(spec.end_ns)


def _region_text(spec: SegmentQuery) -> str:
    if spec.polygon is not None:
        return spec.polygon.wkt if len(spec.polygon.wkt) < 2000 else f"polygon within {spec.polygon.bounds}"
    return "; ".join(f"lon {b[0]:.5f}..{b[2]:.5f}, lat {b[1]:.5f}..{b[3]:.5f}" for b in spec.parts)


def temporary_output_path(layer_name: str) -> str:
    folder = Path(tempfile.gettempdir()) / "canopy_explorer"
    folder.mkdir(exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in layer_name)
    return str(Path(tempfile.mkdtemp(prefix=safe + "_", dir=folder)) / f"{safe}.gpkg")


def write_query_output(
    request: QueryRequest,
    progress: Optional[Callable[[float], None]] = None,
    check_cancel: Optional[Callable[[], None]] = None,
    database: Optional[Atl08Database] = None,
    batch_read: Optional[Callable[[object, int, int], None]] = None,
) -> QueryOutput:
    """Run the query into its output file, styled; nothing is left behind on error or cancel.
    ``batch_read(frame, rows so far, estimated rows)`` sees each batch as it arrives (the dialog
    draws a preview of it while the rest is read; Processing reports the rows so far)."""
    database = database or shared_database(request.config)
    colour_by = request.colour_column
    estimate = database.estimate(request.spec).rows
    name = request.layer_name
    if request.max_rows is not None and estimate > request.max_rows:
        return QueryOutput(None, "", name, 0, colour_by, None, [], request.description(), estimate, needs_confirmation=True)
    seen = [0]

    def frames():
        for frame in database.iter_batches(request.spec, rows=BATCH_ROWS):
            seen[0] += len(frame)
            if progress:
                progress(min(0.95, 0.05 + 0.9 * seen[0] / max(estimate, 1)))
            if batch_read:
                batch_read(frame, seen[0], estimate)
            yield frame

    output = write_styled_segments(
        frames(), request.output_path, name, request.description(), colour_by, _variable_of(request, colour_by), request.classes, check_cancel
    )
    output.estimated_rows = estimate
    if not output.rows:
        output.empty_reason = explain_empty(database, request.spec)
    if progress:
        progress(1.0)
    return output


def write_styled_segments(
    frames: Iterable, path: Optional[str], name: str, description: Dict[str, str], colour_by: Optional[str],
    colour_variable: Optional[str], classes: int = 5, check_cancel: Optional[Callable[[], None]] = None,
) -> QueryOutput:
    """Write segments to ``path`` (None: a new temporary GeoPackage) with natural-breaks classes on
    ``colour_by`` stored as the default style."""
    temporary_folder = None
    if not path:
        path = temporary_output_path(name)
        temporary_folder = Path(path).parent
    sample = BreaksSample()
    breaks: List[float] = []

    def sampled():
        for frame in frames:
            if colour_by:
                sample.add(frame[colour_by].to_numpy())
            yield frame

    def store_style(temporary: Path, output_format: str) -> None:
        breaks[:] = sample.breaks(classes)
        if colour_by and breaks:
            renderer = graduated_renderer(colour_by, colour_variable, sample.minimum, breaks)
            save_default_style(temporary, output_format, renderer, f"Natural breaks on {colour_by}")

    try:
        written = write_segments(
            sampled(), path, name, description=json.dumps(description), before_publish=store_style, check_cancel=check_cancel
        )
    finally:
        if temporary_folder is not None and not any(temporary_folder.iterdir()):
            temporary_folder.rmdir()  # cancelled, failed or empty: leave nothing behind
    return QueryOutput(
        str(written.path) if written.rows else None, written.format, name, written.rows, colour_by,
        sample.minimum, breaks, description, colour_variable=colour_variable,
    )


def _variable_of(request: QueryRequest, column_name: str) -> Optional[str]:
    for column in request.spec.columns:
        if column.name == column_name:
            return column.variable
    return None


def layer_uri(path: str, output_format: str, layer_name: str) -> tuple:
    """(uri, provider) to open a written file."""
    if output_format == "CSV":
        from qgis.PyQt.QtCore import QUrl

        url = QUrl.fromLocalFile(path).toString()
        return f"{url}?type=csv&xField=longitude&yField=latitude&crs=EPSG:4326&detectTypes=yes&spatialIndex=yes", "delimitedtext"
    if output_format == "GPKG":
        return f"{path}|layername={layer_name}", "ogr"
    return path, "ogr"


def save_default_style(path: Path, output_format: str, renderer, description: str, layer_name: Optional[str] = None) -> None:
    """Store the graduated style where QGIS finds it when the file is opened anywhere.

    GeoPackages get it in their ``layer_styles`` table (for ``layer_name``, by
    default the first layer); other formats get a ``.qml`` next to the file,
    which QGIS loads as the default style.
    """
    uri, provider = layer_uri(str(path), output_format, layer_name or layer_name_in(path, output_format))
    layer = QgsVectorLayer(uri, "style", provider)
    if not layer.isValid():
        raise QueryError(f"the written file {path.name} cannot be opened to store its style")
    layer.setRenderer(renderer)
    # time and height travel with the style, so the file animates and profiles wherever QGIS opens it
    make_segments_temporal(layer)
    set_segment_elevation(layer)
    if output_format == "GPKG":
        error = layer.saveStyleToDatabase(STYLE_NAME, description, True, "")
        if error:
            raise QueryError(f"cannot store the layer style in {path.name}: {error}")
    else:
        message, ok = layer.saveNamedStyle(str(path.with_suffix(".qml")))
        if not ok:
            raise QueryError(f"cannot write the style file next to {path.name}: {message}")
    del layer


def layer_name_in(path: Path, output_format: str) -> str:
    """The layer a written file holds: its GeoPackage table, or the file's stem."""
    if output_format != "GPKG":
        return path.stem
    from osgeo import ogr

    dataset = ogr.Open(str(path))
    return dataset.GetLayer(0).GetName()


def load_query_layer(output: QueryOutput) -> QgsVectorLayer:
    """Open the finished file as a layer (main thread): styled from the file, metadata from the query."""
    uri, provider = layer_uri(output.path, output.format, output.layer_name)
    layer = QgsVectorLayer(uri, output.layer_name, provider)
    if not layer.isValid():
        raise QueryError(f"QGIS cannot open the result file {output.path}")
    if output.colour_by and output.breaks and layer.renderer().type() != "graduatedSymbol":
        # providers that skip side-car styles get the same classes directly
        layer.setRenderer(graduated_renderer(output.colour_by, output.colour_variable, output.minimum, output.breaks))
    make_segments_temporal(layer)  # whatever the file's style holds: the layer in the project has them
    set_segment_elevation(layer)
    layer.setMetadata(query_metadata(output))
    return layer


def query_metadata(output: QueryOutput) -> QgsLayerMetadata:
    metadata = QgsLayerMetadata()
    metadata.setTitle(output.layer_name)
    metadata.setType("dataset")
    metadata.setAbstract(
        "ICESat-2 ATL08 land and vegetation segments queried with Canopy Explorer.\n"
        + "\n".join(f"{key}: {value}" for key, value in output.description.items() if value)
    )
    metadata.setKeywords({"Canopy Explorer query": [f"{k}={v}" for k, v in output.description.items() if v]})
    metadata.setCrs(layer_crs())
    return metadata


def layer_crs():
    from qgis.core import QgsCoordinateReferenceSystem

    return QgsCoordinateReferenceSystem("EPSG:4326")


def write_nearest_output(
    config: DatabaseConfig,
    request: NearestRequest,
    output_path: Optional[str] = None,
    classes: int = 5,
    check_cancel: Optional[Callable[[], None]] = None,
    database: Optional[Atl08Database] = None,
) -> QueryOutput:
    """The nearest segments to ``request.point`` (lon, lat) as a styled file with ``distance_m``."""
    database = database or shared_database(config)
    columns = request.spec.columns
    frame = database.nearest(request)
    if check_cancel:
        check_cancel()
    lon, lat = request.point
    found = len(frame)
    name = f"ATL08: the {found} segment{'s' if found != 1 else ''} nearest to {place_text(lat, lon)}"
    description = {
        "database": config.array_uri, "variables": ", ".join(request.variables), "point": f"lon {lon:.6f}, lat {lat:.6f}",
        "num_shots": str(request.num_shots), "radius_m": f"{request.radius_m:g}", "filters": request.filters_text.strip(),
        "start": str(request.start or ""), "end": str(request.end or ""),
    }
    colour_by = columns[0].name if columns else None
    output = write_styled_segments(
        [frame], output_path, name, description, colour_by,
        columns[0].variable if columns else None, classes, check_cancel,
    )
    if not output.rows:
        radius = f"{request.radius_m:g}"
        output.empty_reason = explain_empty(database, request.spec, request.within, region=f"the circle of {radius} m round the point")
        output.searched = f"the time range and filters within {radius} m of the point"
    return output


def layer_file(layer: QgsVectorLayer) -> str:
    """The file behind a layer written by Canopy Explorer (any of the output formats)."""
    source = layer.dataProvider().dataSourceUri().split("|", 1)[0]
    if layer.providerType() == "delimitedtext":
        from qgis.PyQt.QtCore import QUrl

        source = QUrl(source.split("?", 1)[0]).toLocalFile()
    if layer.providerType() not in ("ogr", "delimitedtext") or not Path(source).is_file():
        raise QueryError(f"layer '{layer.name()}' is not stored in a file that can be exported")
    return source


def export_file(source: str, target: str, renderer=None, name: str = "") -> Path:
    """Copy a result file to GeoPackage, FlatGeobuf, GeoJSON or CSV (by the target's extension),
    storing ``renderer`` as its default style like query outputs. Safe to run in a task."""
    from ..core.segment_files import copy_to_format

    def store_style(temporary: Path, output_format: str) -> None:
        if renderer is not None and output_format != "CSV":
            save_default_style(temporary, output_format, renderer.clone(), f"Exported from {name}")

    return copy_to_format(source, target, before_publish=store_style)
