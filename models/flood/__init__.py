"""Urban flood model: a local inertial shallow-water solver with its boundaries and sources."""

from models.flood.cpu import use_short_spin, use_wide_vectors

use_wide_vectors()
use_short_spin()

from models.flood.jit_cache import stamp_with_package  # noqa: E402  (after the CPU settings, before any kernel)

stamp_with_package()
