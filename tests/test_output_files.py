"""Output files: a name that is a folder or too long is refused naming the user's file, the style
beside a file arrives only after the file, and nothing is left behind when either fails."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from canopy_explorer.plugin.core.errors import OutputError
from canopy_explorer.plugin.core.segment_files import temporary_sibling, write_segments


def _frame(rows=20):
    return pd.DataFrame({"longitude": np.linspace(7.0, 7.3, rows), "latitude": np.linspace(45.0, 45.3, rows),
                         "segment_id": np.arange(rows, dtype=np.int64), "h_canopy": np.linspace(1, 30, rows, dtype=np.float32)})


def _style(temporary: Path, output_format: str) -> None:
    """What the QGIS side's before_publish does for a GeoJSON: a .qml beside the complete file."""
    temporary.with_suffix(".qml").write_text("<qgis/>")


def _left(folder: Path, *keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_an_output_path_that_is_a_folder_is_refused_and_no_style_is_left_beside_it(tmp_path):
    (tmp_path / "out.geojson").mkdir()
    with pytest.raises(OutputError, match=r"out.geojson is a folder: choose a file name for the output"):
        write_segments([_frame()], tmp_path / "out.geojson", "segments", before_publish=_style)
    assert _left(tmp_path, "out.geojson") == []  # before: out.qml beside the folder


def test_a_folder_that_appears_while_writing_takes_the_style_with_it(tmp_path):
    target = tmp_path / "late.geojson"

    def style_then_folder(temporary, output_format):
        _style(temporary, output_format)
        target.mkdir()  # another program creates a folder of that name while the file is written

    with pytest.raises(OutputError, match="late.geojson is a folder"):
        write_segments([_frame()], target, "segments", before_publish=style_then_folder)
    assert _left(tmp_path, "late.geojson") == []


def test_a_legal_250_character_name_is_written_with_its_style(tmp_path):
    name = "n" * 242 + ".geojson"
    written = write_segments([_frame()], tmp_path / name, "segments", before_publish=_style)
    assert written.rows == 20 and written.path.name == name
    assert _left(tmp_path) == sorted([name, "n" * 242 + ".qml"])  # before: "File name too long" naming the hidden partial file


def test_a_name_longer_than_the_filesystem_allows_is_refused_naming_the_users_file(tmp_path):
    name = "n" * 300 + ".gpkg"
    with pytest.raises(OutputError, match=r"the output name n{40}\.\.\. is 305 bytes long; files in .* may have at most 255"):
        write_segments([_frame()], tmp_path / name, "segments")
    assert _left(tmp_path) == []


def test_temporary_names_stay_short_whatever_the_target():
    temporary = temporary_sibling(Path("/data") / ("x" * 250 + ".fgb"))
    assert temporary.parent == Path("/data") and temporary.name.startswith(".") and len(temporary.name) < 40


def test_processing_writes_a_geojson_with_a_legal_250_character_name_and_its_style(loaded_plugin, local_database, tmp_path):
    from qgis import processing
    from qgis.core import QgsProcessingFeedback

    name = "n" * 242 + ".geojson"
    result = processing.run("canopyexplorer:atl08_query", {
        "CONFIG": local_database.local_path, "ROI": "7.05,7.25,45.05,45.25 [EPSG:4326]", "VARIABLES": "h_canopy",
        "OUTPUT": str(tmp_path / name)}, feedback=QgsProcessingFeedback())
    assert result["SEGMENTS"] > 0
    assert _left(tmp_path) == sorted([name, "n" * 242 + ".qml"])
