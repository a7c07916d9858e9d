"""Shared figures: layout and scaling, not looks."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from foamlib import plot  # noqa: E402


def test_image_rows_one_row_per_set_on_a_common_scale():
    rng = np.random.default_rng(0)
    fig = plot.image_rows({"real": rng.random((3, 8, 8)) < 0.5, "grey": rng.random((10, 8, 8))}, columns=4)
    axes = np.array(fig.axes).reshape(2, 4)
    assert axes[0, 0].get_ylabel() == "real" and axes[1, 0].get_ylabel() == "grey"
    assert len(axes[0, 3].images) == 0 and len(axes[1, 3].images) == 1  # 3 images in the first row
    assert axes[1, 0].images[0].get_clim() == (0, 1)
    plt.close(fig)
