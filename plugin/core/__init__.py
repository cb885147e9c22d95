"""The Canopy Explorer engine. Nothing in this package imports QGIS."""
