"""Equal-area hexagon and square grids, streamed per-cell statistics and the two-period change map."""
