"""The Processing provider: every Canopy Explorer operation as an algorithm."""

from qgis.core import QgsProcessingProvider

from ..resources import icon

PROVIDER_ID = "canopyexplorer"


class CanopyExplorerProvider(QgsProcessingProvider):
    def id(self):
        return PROVIDER_ID

    def name(self):
        return "Canopy Explorer"

    def longName(self):  # noqa: N802
        return "Canopy Explorer (ICESat-2 ATL08, Sentinel-2 NDVI, district statistics)"

    def icon(self):
        return icon("canopy_explorer.svg")

    def loadAlgorithms(self):  # noqa: N802
        for algorithm in self.algorithms_to_register():
            self.addAlgorithm(algorithm)

    @staticmethod
    def algorithms_to_register():
        from .atl08_grid_change import Atl08GridChangeAlgorithm
        from .atl08_ingest import Atl08IngestAlgorithm
        from .atl08_nearest import Atl08NearestAlgorithm
        from .atl08_query import Atl08QueryAlgorithm
        from .atl08_sample_rasters import Atl08SampleRastersAlgorithm
        from .ndvi_composite import NdviCompositeAlgorithm
        from .atl08_district_stats import Atl08DistrictStatsAlgorithm
        from .zonal_stats import ZonalStatsAlgorithm

        return [Atl08IngestAlgorithm(), Atl08QueryAlgorithm(), Atl08NearestAlgorithm(), NdviCompositeAlgorithm(),
                ZonalStatsAlgorithm(), Atl08DistrictStatsAlgorithm(), Atl08GridChangeAlgorithm(), Atl08SampleRastersAlgorithm()]
