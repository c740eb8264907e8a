"""3D scene building blocks (pyvista, no Qt): one merged mesh per layer."""
