"""The QGIS side of Canopy Explorer; the engine without QGIS lives in ``plugin.core``."""
