"""Statistics per district and year: the shared model (``statistics``), computed here (``embedded``)
or in PostGIS (``postgis``), written to a GeoPackage (``geopackage``); ATL08 canopy per district
(``canopy``)."""
