"""Deterministic sample data: ATL08 granules and the sample database built from them (used by the
plugin's *Sample database* choice, so shipped), and the Sentinel-2 scenes, STAC server and basemap of
`make demo` and the tests (left out of the plugin zip)."""
