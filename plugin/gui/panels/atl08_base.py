"""What the three ATL08 panels (query, nearest shots, grid change) share: the database box, the variables
and the quality filters, and the segment layers they load."""

from qgis.core import Qgis, QgsProject

from ...layers.segment_layer import QueryOutput
from ..components.database_box import DatabaseBox
from ..components.filter_editor import FilterEditor
from ..components.variable_picker import VariablePicker
from ..messages import escape
from ..settings import ExplorerSettings
from .base import BasePanel


class Atl08Panel(BasePanel):
    uses_database = True

    def __init__(self, iface, database: DatabaseBox, variables: VariablePicker, filters: FilterEditor, parent=None):
        super().__init__(iface, parent)
        self.database = database
        self.variables = variables
        self.filters = filters
        for component in (database, variables, filters):
            component.changed.connect(self.inputs_changed)

    def store_settings(self, settings: ExplorerSettings) -> None:
        for component in (self.database, self.variables, self.filters):
            component.store_settings(settings)

    def add_output_layer(self, output: QueryOutput, layer):
        """A query's or nearest search's segments as a layer of the project, or why there are none."""
        if output.rows == 0 or layer is None:
            why = f" ({output.empty_reason})" if output.empty_reason else ""
            self.message(f"No segments match this region, time range and filters; no layer was added{why}.", Qgis.MessageLevel.Info)
            self.show_status(escape(f"No segments matched{why}."))
            return None
        QgsProject.instance().addMapLayer(layer)
        self.message(f"{output.rows:,} segments loaded as '{output.layer_name}'.", Qgis.MessageLevel.Success)
        self.show_status(f"Loaded {output.rows:,} segments ({output.path}).")
        return layer
