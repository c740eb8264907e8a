"""Default styles by layer role, so a freshly opened city reads like a map.

A manifest's ``style`` table overrides these; the user's edits in the app
override both and are saved with the scene.
"""

from __future__ import annotations

from twin.geo.style import CategorisedStyle, GraduatedStyle, SingleStyle, Style

#: Road colours by OSM highway class: major roads warm, minor roads light.
ROAD_COLOURS = {
    "motorway": "#e15759", "motorway_link": "#e15759", "trunk": "#f28e2b", "trunk_link": "#f28e2b",
    "primary": "#f1a340", "primary_link": "#f1a340", "secondary": "#f6d55c", "secondary_link": "#f6d55c",
    "tertiary": "#fbf2b5", "tertiary_link": "#fbf2b5", "residential": "#ffffff", "unclassified": "#ffffff",
    "living_street": "#eeeeee", "service": "#dddddd", "pedestrian": "#dcd3e8", "footway": "#c7a4a4",
    "steps": "#c7a4a4", "path": "#c7a4a4", "cycleway": "#8fb3d9",
}
POI_COLOURS = {
    "hospital": "#d62728", "fire_station": "#ff7f0e", "police": "#1f4e9c", "school": "#9467bd",
    "stadium": "#2ca02c", "parking": "#7f7f7f", "shelter": "#17becf", "assembly_point": "#17becf",
}


def default_style(role: str) -> Style:
    """The style a layer of this role starts with."""
    if role == "buildings":
        return GraduatedStyle(field="height_m", ramp="heights", method="quantile", n_classes=6,
                              stroke="#6b5a48", stroke_width=0.3)
    if role == "roads":
        return CategorisedStyle(field="highway", categories=ROAD_COLOURS, default="#cccccc", stroke="#8a8a8a",
                                stroke_width=1.5)
    if role == "water" or role == "inflows":
        return SingleStyle(fill="#9ecae1", stroke="#4a90d9", stroke_width=1.0)
    if role == "natural":
        return SingleStyle(fill="#c7e2b0", stroke="#8fbf7a", stroke_width=0.3)
    if role == "landuse":
        return SingleStyle(fill="#efe8d8", stroke="#d5c9ad", stroke_width=0.3)
    if role == "boundary":
        return SingleStyle(fill="#00000000", stroke="#c0392b", stroke_width=2.0)
    if role in ("pois", "shelters"):
        return CategorisedStyle(field="amenity", categories=POI_COLOURS, default="#555555", stroke="#ffffff",
                                stroke_width=1.0, point_size=8.0)
    if role == "dem":
        return GraduatedStyle(field="value", ramp="terrain", method="quantile", n_classes=9)
    if role in ("landcover", "rain_zones"):
        return CategorisedStyle(field="value", categories={}, default="#cccccc")
    return SingleStyle()
