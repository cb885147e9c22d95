"""Lidar segments in TileDB: database configuration and storage, the ingest (ledger, lock, coverage),
regions, filters, queries and their outputs. Product-specific parts (variable catalogue, granule
reader, array schema and segment ids, presets) live in one package per product: ``atl08``."""
