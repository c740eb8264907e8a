"""Urban flood model: a local inertial shallow-water solver with its boundaries and sources."""
