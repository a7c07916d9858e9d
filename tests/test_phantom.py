"""foamlib.phantom: projector, FBP, CT simulation and the demo samples."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from skimage.filters import threshold_otsu
from skimage.transform import iradon
from skimage.transform import radon as sk_radon

from foamlib.phantom import (
    DEMO_SAMPLES,
    FILTERS,
    DemoParams,
    ParallelBeamProjector,
    demo_sample,
    fbp,
    radon,
    simulate_ct,
)

ANGLES = np.arange(0.0, 180.0, 2.0)  # 90 angles


def _disc_phantom(size=64):
    """Piecewise-constant ellipses, zero outside the inscribed circle."""
    yy, xx = np.mgrid[:size, :size] - size // 2
    img = np.zeros((size, size))
    img[(yy / 24.0) ** 2 + (xx / 18.0) ** 2 <= 1] = 1.0
    img[((yy - 6) / 8.0) ** 2 + ((xx + 4) / 5.0) ** 2 <= 1] = 0.3
    img[((yy + 8) / 4.0) ** 2 + ((xx - 6) / 6.0) ** 2 <= 1] = 2.0
    return img


def _smooth_phantom(size=64):
    yy, xx = np.mgrid[:size, :size] - size // 2
    return np.exp(-(yy**2 + (xx - 5) ** 2) / (2 * 9.0**2)) + 0.5 * np.exp(-((yy + 10) ** 2 + xx**2) / (2 * 5.0**2))


def _circle(size, radius):
    yy, xx = np.mgrid[:size, :size] - size // 2
    return yy**2 + xx**2 <= radius**2


# ----------------------------------------------------------------- projector


def test_radon_matches_skimage():
    img = _disc_phantom()
    ours = radon(img, ANGLES)
    ref = sk_radon(img, ANGLES).T
    assert ours.shape == ref.shape == (90, 64)
    assert ours.dtype == np.float32
    # pixel-driven linear interpolation vs skimage's rotate-and-sum: within 2 % (L2)
    assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) < 0.02


@pytest.mark.parametrize("name", FILTERS)
def test_fbp_matches_skimage_iradon(name):
    sino = sk_radon(_disc_phantom(), ANGLES)
    ours = fbp(sino.T, ANGLES, filter=name)
    ref = iradon(sino, ANGLES, filter_name=name)
    inside = _circle(64, 31)
    assert ours.shape == (64, 64)
    err = np.linalg.norm((ours - ref)[inside]) / np.linalg.norm(ref[inside])
    assert err < 1e-3  # the same algorithm up to float32 rounding


def test_fbp_of_radon_recovers_a_smooth_phantom():
    img = _smooth_phantom()
    rec = fbp(radon(img, ANGLES), ANGLES)
    inside = _circle(64, 28)
    assert np.linalg.norm((rec - img)[inside]) / np.linalg.norm(img[inside]) < 0.03


def test_stacks_equal_slice_by_slice():
    imgs = np.stack([_disc_phantom(), _smooth_phantom(), np.zeros((64, 64))])
    proj = ParallelBeamProjector(64, ANGLES)
    sino = proj.forward(imgs)
    assert sino.shape == (3, 90, 64)
    np.testing.assert_allclose(sino[1], radon(imgs[1], ANGLES), rtol=1e-5, atol=1e-5)
    rec = proj.fbp(sino, output_size=48)
    assert rec.shape == (3, 48, 48)
    np.testing.assert_allclose(rec[0], fbp(sino[0], ANGLES, output_size=48), rtol=1e-4, atol=1e-5)
    assert np.all(sino[2] == 0)


def test_region_of_interest_back_projection():
    proj = ParallelBeamProjector(64, ANGLES)
    img = _smooth_phantom()
    full = proj.fbp(proj.forward(img))
    part = proj.fbp(proj.forward(img), output_shape=(20, 30), offset=(5, -7))
    # output pixel (r, c) sits at (r - 10 + 5, c - 15 - 7) from the axis = full[r + 27, c + 10]
    np.testing.assert_allclose(part, full[27:47, 10:40], rtol=1e-4, atol=1e-5)


def test_projector_arguments():
    with pytest.raises(ValueError, match="angles_deg"):
        ParallelBeamProjector(32, [])
    with pytest.raises(TypeError, match="image_size"):
        ParallelBeamProjector(32.0, ANGLES)
    with pytest.raises(ValueError, match="shape"):
        ParallelBeamProjector(32, ANGLES).forward(np.zeros((31, 32)))
    with pytest.raises(ValueError, match="filter"):
        fbp(np.zeros((90, 32)), ANGLES, filter="nope")
    with pytest.raises(ValueError, match="angles"):
        fbp(np.zeros((80, 32)), ANGLES)
    with pytest.raises(ValueError, match="images"):
        radon(np.zeros((4, 5)), ANGLES)


# ----------------------------------------------------------------- CT simulation


@pytest.fixture(scope="module")
def cube():
    """A small foam-like fraction volume: slabs and a solid block."""
    frac = np.zeros((4, 48, 48), dtype=np.float32)
    frac[:, 10:14, :] = 1.0
    frac[:, :, 30:31] = 0.4
    frac[:, 30:40, 5:15] = 1.0
    return frac


def test_simulate_ct_output(cube):
    scan = simulate_ct(cube, rng=0)
    assert scan.shape == cube.shape and scan.dtype == np.float32
    assert scan.min() >= 0 and scan.max() <= 255
    assert scan[:, 32:38, 7:13].mean() > scan[:, 20:28, 20:28].mean() + 100  # solid bright, pore dark
    assert abs(np.median(scan[:, 20:28, 20:28]) - 40) < 10  # pore at the pore grey level
    single = simulate_ct(cube[0], rng=0)
    assert single.shape == (48, 48)


def test_simulate_ct_rectangular_field_of_view():
    frac = np.zeros((2, 30, 52), dtype=np.float32)
    frac[:, 5:12, 40:48] = 1.0
    scan = simulate_ct(frac, photons_per_ray=np.inf, rng=0)
    assert scan.shape == (2, 30, 52)
    # the block is reconstructed where it is, not shifted or mirrored
    assert scan[:, 6:11, 41:47].min() > 150 and scan[:, 18:25, 5:12].max() < 80


def test_blur_is_seamless_across_chunks(monkeypatch, cube):
    import foamlib.phantom as P

    stack = np.concatenate([cube] * 2)  # 8 slices
    whole = simulate_ct(stack, photons_per_ray=np.inf, blur_sigma=1.0, rng=0)
    monkeypatch.setattr(P, "_SLICES_PER_CHUNK", 3)
    chunked = simulate_ct(stack, photons_per_ray=np.inf, blur_sigma=1.0, rng=0)
    np.testing.assert_allclose(chunked, whole, atol=1e-3)


def test_simulate_ct_is_deterministic(cube):
    a = simulate_ct(cube, ring_strength=0.01, rng=5)
    b = simulate_ct(cube, ring_strength=0.01, rng=5)
    c = simulate_ct(cube, ring_strength=0.01, rng=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_more_photons_less_noise():
    flat = np.full((3, 48, 48), 0.1, dtype=np.float32)
    stds = [simulate_ct(flat, photons_per_ray=n, rng=1)[:, 8:40, 8:40].std() for n in (300, 3000, 30000)]
    assert stds[0] > 2 * stds[1] > 4 * stds[2]
    assert simulate_ct(flat, photons_per_ray=np.inf, rng=1)[:, 8:40, 8:40].std() < 0.2 * stds[2]


def test_ring_artefacts():
    flat = np.full((3, 48, 48), 0.1, dtype=np.float32)
    clean = simulate_ct(flat, photons_per_ray=np.inf, ring_strength=0.0, rng=2)
    rings = simulate_ct(flat, photons_per_ray=np.inf, ring_strength=0.01, rng=2)
    assert clean[:, 8:40, 8:40].std() < 0.5
    assert rings[:, 8:40, 8:40].std() > 5 * clean[:, 8:40, 8:40].std()
    # rings are concentric: the grey value depends on the distance from the axis only
    yy, xx = np.mgrid[:48, :48] - 24
    r = np.rint(2 * np.hypot(yy, xx)).astype(int)  # half-pixel radial bins
    img = rings[0].astype(np.float64)
    ring_means = np.bincount(r.ravel(), img.ravel()) / np.maximum(np.bincount(r.ravel()), 1)
    explained = np.var(ring_means[r][r < 40]) / np.var(img[r < 40])
    assert explained > 0.4


def test_blur_smooths(cube):
    sharp = simulate_ct(cube, photons_per_ray=np.inf, rng=0)
    blurred = simulate_ct(cube, photons_per_ray=np.inf, blur_sigma=1.5, rng=0)
    edge = lambda s: np.abs(np.diff(s[:, 5:20, 20:28], axis=1)).max()  # noqa: E731
    assert edge(blurred) < 0.7 * edge(sharp)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(photons_per_ray=0), ValueError, "photons_per_ray"),
        (dict(n_angles=0), ValueError, "n_angles"),
        (dict(n_angles=10.5), TypeError, "n_angles"),
        (dict(mu_solid=-1), ValueError, "mu_solid"),
        (dict(ring_strength=-0.1), ValueError, "ring_strength"),
        (dict(blur_sigma=np.nan), ValueError, "blur_sigma"),
        (dict(pad_mode="zeros"), ValueError, "pad_mode"),
        (dict(grey_range=(10, 10)), ValueError, "grey_range"),
        (dict(filter="ram"), ValueError, "filter"),
    ],
)
def test_simulate_ct_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        simulate_ct(np.zeros((2, 16, 16), dtype=np.float32), **kwargs)


def test_simulate_ct_bad_fraction():
    with pytest.raises(ValueError, match="fraction"):
        simulate_ct(np.full((2, 16, 16), 1.5))
    with pytest.raises(ValueError, match="fraction"):
        simulate_ct(np.zeros(16))


# ----------------------------------------------------------------- demo samples


@pytest.fixture(scope="module")
def demos():
    return {name: demo_sample(name, size=64) for name in DEMO_SAMPLES}


def test_registry():
    assert tuple(DEMO_SAMPLES) == ("foam89", "foam86", "foam82")
    assert [p.porosity for p in DEMO_SAMPLES.values()] == [0.8902, 0.8599, 0.8240]
    for name, params in DEMO_SAMPLES.items():
        assert isinstance(params, DemoParams) and params.name == name
        json.dumps(dataclasses.asdict(params))  # plain values, recordable
    with pytest.raises(TypeError):
        DEMO_SAMPLES["x"] = DEMO_SAMPLES["foam89"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEMO_SAMPLES["foam89"].porosity = 0.5


@pytest.mark.parametrize("name", list(DEMO_SAMPLES))
def test_demo_porosity_and_fields(demos, name):
    demo = demos[name]
    assert abs(demo.porosity - DEMO_SAMPLES[name].porosity) < 0.005
    assert demo.porosity == pytest.approx(1.0 - demo.solid_fraction)
    assert demo.porosity == pytest.approx(1.0 - demo.fraction.mean(dtype=np.float64), abs=1e-9)
    assert demo.scan.shape == demo.truth.shape == demo.fraction.shape == (64, 64, 64)
    assert demo.scan.dtype == np.float32 and demo.truth.dtype == bool and demo.fraction.dtype == np.float32
    np.testing.assert_array_equal(demo.truth, demo.fraction >= 0.5)
    assert demo.voxel_size_um == DEMO_SAMPLES[name].voxel_size_um and demo.params is DEMO_SAMPLES[name]
    # walls are sub-voxel to about a voxel thick
    assert 0.2 < demo.wall_thickness < 1.0 < demo.strut_diameter


@pytest.mark.parametrize("name", list(DEMO_SAMPLES))
def test_otsu_gets_the_porosity_wrong(demos, name):
    """The demo samples are hard: a global Otsu threshold is off by more than a percentage point.

    Found at size 64 (and similarly at 128): Otsu's porosity is 2-4 points *below* the
    exact porosity. Its threshold sits at about 35 % of the solid contrast: the faint
    sub-voxel walls are partly missed (a third or more of the wall voxels, 10-17 % of
    the solid mass), but partial-volume voxels at strut and wall edges that it does take
    count as fully solid, which outweighs the missed walls.
    """
    demo = demos[name]
    otsu = demo.scan > threshold_otsu(demo.scan)
    assert abs((1.0 - otsu.mean()) - demo.porosity) > 0.01
    # thin walls: a good share of the partial-volume (wall) voxels and of the solid mass is missed
    walls = (demo.fraction > 0.2) & (demo.fraction < 0.7)
    assert np.mean(~otsu[walls]) > 0.2
    assert demo.fraction[~otsu].sum() / demo.fraction.sum() > 0.05
    # ...but the bright struts (fully solid voxels) are found, and few pure-pore voxels are taken
    assert np.mean(otsu[demo.fraction == 1.0]) > 0.9
    assert np.mean(otsu[demo.fraction == 0.0]) < 0.01


def test_demo_is_deterministic(demos):
    again = demo_sample("foam86", size=64)
    np.testing.assert_array_equal(again.scan, demos["foam86"].scan)
    np.testing.assert_array_equal(again.fraction, demos["foam86"].fraction)
    other = demo_sample("foam86", size=32, rng=1)
    assert other.scan.shape == (32, 32, 32)


def test_demo_bad_arguments():
    with pytest.raises(ValueError, match="foam89, foam86, foam82"):
        demo_sample("foam99")
    with pytest.raises(ValueError, match="size"):
        demo_sample("foam89", size=8)
    with pytest.raises(TypeError, match="size"):
        demo_sample("foam89", size=64.0)


@pytest.mark.slow
def test_demo_full_size():
    demo = demo_sample("foam82")
    assert demo.scan.shape == (128, 128, 128)
    assert abs(demo.porosity - 0.8240) < 0.005
    otsu = demo.scan > threshold_otsu(demo.scan)
    assert abs((1.0 - otsu.mean()) - demo.porosity) > 0.01
