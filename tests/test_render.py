"""Rendering binary slices as CT-like grey images, and fitting the grey model."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from foamlib.render import (
    GreyModel,
    RenderRanges,
    draw_render_parameters,
    fit_grey_model,
    physics_render,
    render_slices,
    to_uint8,
)

MODEL = GreyModel(pore_level=60.0, solid_level=180.0, noise_sigma=8.0, blur_sigma=1.2)


def blobs(shape=(12, 80, 80), level=0.05, seed=0):
    """A binary 3-d structure with features several pixels thick (True = solid)."""
    rng = np.random.default_rng(seed)
    return gaussian_filter(rng.standard_normal(shape), 3) > level


def edge_stack(n=2, size=32):
    """Half-planes: left half pore, right half solid."""
    out = np.zeros((n, size, size), dtype=bool)
    out[:, :, size // 2 :] = True
    return out


# --------------------------------------------------------------------------- models


def test_grey_model_round_trips_and_validates():
    assert GreyModel.from_dict(MODEL.to_dict()) == MODEL
    assert MODEL.contrast == 120.0
    with pytest.raises(ValueError, match="solid_level"):
        GreyModel(pore_level=100.0, solid_level=50.0)
    with pytest.raises(ValueError, match="noise_sigma"):
        GreyModel(0.0, 1.0, noise_sigma=-1.0)
    with pytest.raises(ValueError, match="blur_sigma"):
        GreyModel(0.0, 1.0, blur_sigma=float("nan"))
    with pytest.raises(TypeError, match="pore_level"):
        GreyModel("0", 1.0)
    with pytest.raises(ValueError, match="unknown"):
        GreyModel.from_dict({**MODEL.to_dict(), "gamma": 1.0})


def test_render_ranges_validate_and_round_trip():
    ranges = RenderRanges()
    assert RenderRanges.from_dict(ranges.to_dict()) == ranges
    assert RenderRanges.none().to_dict() == {"contrast": 0.0, "noise": 0.0, "blur": 0.0, "offset": 0.0}
    with pytest.raises(ValueError, match="contrast"):
        RenderRanges(contrast=1.0)
    with pytest.raises(ValueError, match="noise"):
        RenderRanges(noise=-0.1)
    with pytest.raises(ValueError, match="offset"):
        RenderRanges(offset=-0.1)


def test_drawn_parameters_stay_in_their_ranges_and_are_reproducible():
    ranges = RenderRanges(contrast=0.1, noise=0.3, blur=0.3, offset=0.05)
    params = draw_render_parameters(400, MODEL, ranges=ranges, rng=3)
    assert params == draw_render_parameters(400, MODEL, ranges=ranges, rng=3)
    contrast = np.array([p.contrast for p in params]) / MODEL.contrast
    mid = (np.array([p.pore_level + p.solid_level for p in params]) / 2 - 120.0) / MODEL.contrast
    noise = np.array([p.noise_sigma for p in params]) / MODEL.noise_sigma
    blur = np.array([p.blur_sigma for p in params]) / MODEL.blur_sigma
    for values, r in ((contrast - 1, 0.1), (mid, 0.05), (noise - 1, 0.3), (blur - 1, 0.3)):
        assert np.all(np.abs(values) <= r + 1e-9) and values.max() > 0.8 * r and values.min() < -0.8 * r
    assert draw_render_parameters(3, MODEL, ranges=RenderRanges.none(), rng=0) == [MODEL] * 3
    assert draw_render_parameters(0, MODEL) == []


# --------------------------------------------------------------------------- render_slices


def test_render_is_deterministic_per_rng_with_the_right_shape_and_dtype():
    slices = blobs((3, 24, 20))
    a = render_slices(slices, MODEL, rng=7)
    assert a.shape == (3, 24, 20) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, render_slices(slices, MODEL, rng=7))
    assert not np.array_equal(a, render_slices(slices, MODEL, rng=8))
    f = render_slices(slices, MODEL, rng=np.random.default_rng(7), dtype="float32")
    assert f.dtype == np.float32 and f.shape == slices.shape


def test_no_jitter_noise_or_blur_gives_exactly_the_levels():
    model = GreyModel(pore_level=30.0, solid_level=220.0)
    slices = blobs((2, 16, 16))
    out = render_slices(slices, model, ranges=RenderRanges.none(), rng=0)
    np.testing.assert_array_equal(out, np.where(slices, 220, 30).astype(np.uint8))
    frac = np.full((1, 4, 4), 0.25, dtype=np.float32)
    out = render_slices(frac, model, ranges=RenderRanges.none(), dtype="float32")
    np.testing.assert_allclose(out, 30.0 + 0.25 * 190.0)


def test_grey_range_maps_to_8_bit_with_clipping():
    model = GreyModel(pore_level=1000.0, solid_level=3000.0)
    out = render_slices(edge_stack(1, 8), model, ranges=RenderRanges.none(), grey_range=(0.0, 2000.0))
    assert set(np.unique(out).tolist()) == {128, 255}  # 1000 -> 127.5 -> 128 (rounding); 3000 clipped
    np.testing.assert_array_equal(to_uint8(np.array([-5.0, 0.4, 254.6, 300.0])), [0, 0, 255, 255])


def test_blur_widens_the_edge():
    def edge_width(sigma):
        model = GreyModel(pore_level=0.0, solid_level=100.0, blur_sigma=sigma)
        row = render_slices(edge_stack(1), model, ranges=RenderRanges.none(), dtype="float32")[0, 16]
        return int(np.sum((row > 10) & (row < 90)))

    widths = [edge_width(s) for s in (0.0, 1.0, 2.5)]
    assert widths[0] == 0 and 0 < widths[1] < widths[2]


def test_noise_has_the_requested_std():
    model = GreyModel(pore_level=50.0, solid_level=150.0, noise_sigma=6.0)
    out = render_slices(np.zeros((4, 64, 64), dtype=bool), model, ranges=RenderRanges.none(), rng=1, dtype="float32")
    assert out.mean() == pytest.approx(50.0, abs=0.2)
    assert out.std() == pytest.approx(6.0, rel=0.03)


def test_bad_render_inputs_name_the_argument():
    with pytest.raises(ValueError, match="slices"):
        render_slices(np.zeros((8, 8), dtype=bool), MODEL)
    with pytest.raises(ValueError, match="slices"):
        render_slices(np.full((1, 4, 4), 1.5), MODEL)
    with pytest.raises(TypeError, match="slices"):
        render_slices(np.full((1, 4, 4), "a"), MODEL)
    with pytest.raises(ValueError, match="dtype"):
        render_slices(edge_stack(1, 4), MODEL, dtype="int16")
    with pytest.raises(ValueError, match="grey_range"):
        render_slices(edge_stack(1, 4), MODEL, grey_range=(10, 5))
    with pytest.raises(ValueError, match="grey_range"):
        render_slices(edge_stack(1, 4), MODEL, dtype="float32", grey_range=(0, 1))
    with pytest.raises(TypeError, match="model"):
        render_slices(edge_stack(1, 4), {"pore_level": 0})
    with pytest.raises(ValueError, match="n must"):
        draw_render_parameters(-1, MODEL)


# --------------------------------------------------------------------------- fit


@pytest.mark.parametrize("truth", [MODEL, GreyModel(pore_level=0.2, solid_level=0.9, noise_sigma=0.03, blur_sigma=0.7)])
def test_fit_recovers_the_parameters_of_a_rendered_scan(truth):
    solid = blobs()
    scan = render_slices(solid, truth, ranges=RenderRanges.none(), rng=5, dtype="float32")
    fit = fit_grey_model(scan, solid, rng=0)
    assert fit.pore_level == pytest.approx(truth.pore_level, abs=0.05 * truth.contrast)
    assert fit.solid_level == pytest.approx(truth.solid_level, abs=0.05 * truth.contrast)
    assert fit.noise_sigma == pytest.approx(truth.noise_sigma, rel=0.15)
    assert fit.blur_sigma == pytest.approx(truth.blur_sigma, rel=0.15)
    assert fit == fit_grey_model(scan, solid, rng=0)


def test_fit_of_a_clean_scan_has_no_noise_or_blur():
    solid = blobs((4, 48, 48))
    scan = np.where(solid, 200.0, 40.0)
    fit = fit_grey_model(scan, solid)
    assert (fit.pore_level, fit.solid_level, fit.noise_sigma, fit.blur_sigma) == (40.0, 200.0, 0.0, 0.0)


def test_fit_on_a_random_box_of_a_large_scan():
    solid = blobs((8, 64, 64))
    scan = render_slices(solid, MODEL, ranges=RenderRanges.none(), rng=2, dtype="float32")
    fit = fit_grey_model(scan, solid, max_voxels=16_000, rng=1)
    assert fit.pore_level == pytest.approx(MODEL.pore_level, abs=0.1 * MODEL.contrast)
    assert fit.solid_level == pytest.approx(MODEL.solid_level, abs=0.1 * MODEL.contrast)


def test_bad_fit_inputs_name_the_argument():
    solid = blobs((2, 16, 16))
    scan = np.where(solid, 1.0, 0.0)
    with pytest.raises(ValueError, match="solid must have the shape"):
        fit_grey_model(scan, solid[:1])
    with pytest.raises(TypeError, match="solid"):
        fit_grey_model(scan, solid.astype(np.uint8))
    with pytest.raises(ValueError, match="scan"):
        fit_grey_model(scan[0, 0], solid[0, 0])
    with pytest.raises(ValueError, match="both phases"):
        fit_grey_model(scan, np.zeros_like(solid))
    with pytest.raises(ValueError, match="not above the pore level"):
        fit_grey_model(-scan, solid)
    with pytest.raises(ValueError, match="pore_distance"):
        fit_grey_model(scan, solid, pore_distance=-1.0)


# --------------------------------------------------------------------------- physics


def test_physics_render_matches_the_model_levels():
    solid = blobs((2, 32, 32), level=0.0)
    model = GreyModel(pore_level=50.0, solid_level=170.0)
    out = physics_render(solid, model=model, rng=0, photons_per_ray=float("inf"), n_angles=60)
    assert out.shape == (2, 32, 32) and out.dtype == np.float32
    assert out[~solid].mean() == pytest.approx(50.0, abs=1e-3)
    assert out[solid].mean() == pytest.approx(170.0, abs=1e-3)
    side = physics_render(solid, model=model, axis=2, rng=0, photons_per_ray=float("inf"), n_angles=60)
    np.testing.assert_array_equal(side, np.moveaxis(out, 2, 0))
    noisy = physics_render(solid, model=model, rng=1, photons_per_ray=2e3, n_angles=60)
    np.testing.assert_array_equal(noisy, physics_render(solid, model=model, rng=1, photons_per_ray=2e3, n_angles=60))
    with pytest.raises(ValueError, match="fraction_volume"):
        physics_render(solid[0], model=model)


def test_phase_statistics_by_hand():
    from foamlib.render import phase_statistics

    labels = np.zeros((4, 4), dtype=bool)
    labels[:2] = True
    images = np.where(labels, 10.0, 2.0)
    images[0, 0] = 12.0
    images[0, 1] = 8.0  # solid: 12, 8, 10 x 6 -> mean 10, std 1
    stats = phase_statistics(images, labels)
    assert stats["pore_mean"] == 2.0 and stats["pore_std"] == 0.0
    assert stats["solid_mean"] == 10.0 and stats["solid_std"] == pytest.approx(1.0)
    assert stats["cnr"] == pytest.approx(8 / np.sqrt(0.5))
    assert stats["otsu_dice"] == 1.0
    with pytest.raises(ValueError, match="both solid"):
        phase_statistics(images, np.ones_like(labels))


@pytest.mark.parametrize("max_voxels", [1 << 23, 3000])
def test_fit_of_a_scan_opened_lazily_equals_the_fit_in_memory(tmp_path, max_voxels):
    from foamlib.io import write_tiff
    from foamlib.lazy import open_mask, open_scan

    solid = blobs((6, 48, 40))
    grey = np.clip(render_slices(solid, MODEL, ranges=RenderRanges.none(), rng=2, dtype="float32") * 16, 0, 4000)
    grey = grey.astype(np.uint16)
    scan, mask = open_scan(write_tiff(tmp_path / "scan.tif", grey)), open_mask(write_tiff(tmp_path / "seg.tif", solid))
    in_memory = fit_grey_model(grey.astype(np.float32), solid, max_voxels=max_voxels, rng=4)
    assert fit_grey_model(scan, mask, max_voxels=max_voxels, rng=4) == in_memory  # reads only its box
