"""ICESat-2 ATL08 land and vegetation height: the variable catalogue, the HDF5 granule reader, the
array schema with its segment-id codec, the quality-filter presets and the per-segment checks."""
