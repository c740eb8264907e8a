"""Urban flood model: a local inertial shallow-water solver with its boundaries and sources."""

from models.flood.cpu import use_short_spin, use_wide_vectors

use_wide_vectors()
use_short_spin()
