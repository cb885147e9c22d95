"""ICESat-2 ATL08 land and vegetation height: the variable catalogue, the HDF5 granule reader, the
array schema with its segment-id codec, the quality-filter presets and the per-segment checks.
``PRODUCT`` is what the lidar engine asks of ATL08 (``lidar/products.py`` registers it)."""

from ..products import LidarProduct
from .catalogue import catalogue
from .granule import granule_date, read_granule
from .granule_identity import identify_granule
from .schema import beam_names, create_array, decode_segment_id
from .segment_checks import SegmentBounds, check_segments, describe

PRODUCT = LidarProduct(
    name="atl08",
    title="ATL08",
    catalogue=catalogue,
    required_attributes=("h_canopy", "segment_id", "delta_time"),
    create_array=create_array,
    decode_segment_id=decode_segment_id,
    beam_names=beam_names,
    identify_granule=identify_granule,
    read_granule=read_granule,
    granule_date=granule_date,
    segment_bounds=SegmentBounds.from_config,
    check_segments=check_segments,
    describe_drops=describe,
)
