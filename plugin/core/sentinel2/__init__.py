"""Sentinel-2 NDVI: STAC search of L2A scenes, NDVI with the scene classification mask, and yearly
median composites written as GeoTIFFs."""
