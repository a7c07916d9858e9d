"""Analytic shapes drawn on a grid, for tests that measure structures with known answers."""
import numpy as np


def balls(shape, centres, radii):
    """Union of closed balls (disks in 2D) ``|p - c| <= r`` on the voxel (pixel) grid."""
    grid = np.indices(shape, dtype=np.float64)
    out = np.zeros(shape, dtype=bool)
    for centre, radius in zip(centres, radii):
        out |= sum((grid[k] - centre[k]) ** 2 for k in range(len(shape))) <= radius**2
    return out
