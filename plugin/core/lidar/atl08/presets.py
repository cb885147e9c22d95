"""Named quality-filter presets, written in the filter grammar so users can read and edit them."""

from typing import Dict


# Copernicus land cover (ATL08 segment_landcover): closed forest 111-116, open forest 121-126.
FOREST_CLASSES = (111, 112, 113, 114, 115, 116, 121, 122, 123, 124, 125, 126)

# The seed's global canopy example: Copernicus closed (111-116) and open (121-126)
# forest, plausible canopy heights, and photon counts that reject noise.
GOOD_CANOPY = "\n".join(
    [
        f"segment_landcover in [{', '.join(str(c) for c in FOREST_CLASSES)}]",
        "h_canopy >= 5 and <= 60",
        "n_ca_photons >= 2 and <= 140",
        "n_te_photons >= 10",
    ]
)
NIGHT_ONLY = "night_flag == 1"

PRESETS: Dict[str, str] = {
    "Good canopy retrievals": GOOD_CANOPY,
    "Night only": NIGHT_ONLY,
    "Good canopy retrievals, night only": GOOD_CANOPY + "\n" + NIGHT_ONLY,
}
