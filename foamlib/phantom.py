"""Simulated micro-CT scans of foams with known ground truth (the built-in demo data).

Three parts:

* a parallel-beam projector (:class:`ParallelBeamProjector`, :func:`radon`)
  and filtered back-projection (:func:`fbp`) that work on a whole stack of
  slices at once: the system matrix is a sparse matrix built once per
  geometry (pixel-driven, linear interpolation between the two nearest
  detector bins), so projecting all slices is one sparse matrix product and
  back-projection is its transpose;
* :func:`simulate_ct`, a slice-by-slice (parallel-beam, rotation axis = z)
  scan of a solid-fraction volume with Beer-Lambert attenuation, Poisson
  photon noise, ring artefacts from detector-gain errors and detector blur;
* :data:`DEMO_SAMPLES` and :func:`demo_sample`: three PU-foam phantoms that
  mirror the paper's samples (porosities 0.8902, 0.8599 and 0.8240, Griem et
  al., Table 3), built from :func:`foamlib.foam.closed_cell_foam`.

Conventions follow :func:`skimage.transform.radon` / ``iradon``: the rotation
axis passes through pixel ``(H // 2, W // 2)`` and detector bin
``n_det // 2``; a pixel at row ``r`` and column ``c`` projects at angle
``theta`` to ``t = (c - W // 2) cos(theta) - (r - H // 2) sin(theta)``. Unlike
skimage, sinograms are laid out ``(n_angles, n_det)`` (angles first) and
stacks as ``(N, n_angles, n_det)``.
"""
from __future__ import annotations

import logging
import math
import types
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.sparse
from scipy.ndimage import gaussian_filter

from . import streams
from .checks import check_int, check_real
from .fitting import FoamParameters

__all__ = [
    "DEMO_SAMPLES",
    "DemoParams",
    "DemoSample",
    "FILTERS",
    "ParallelBeamProjector",
    "demo_sample",
    "fbp",
    "radon",
    "simulate_ct",
]

logger = logging.getLogger(__name__)

#: Reconstruction filters of :func:`fbp` (as in :func:`skimage.transform.iradon`).
FILTERS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")

#: Slices projected per sparse product in :func:`simulate_ct` (bounds memory).
_SLICES_PER_CHUNK = 64


# --------------------------------------------------------------------------- projector


def _check_angles(angles_deg) -> np.ndarray:
    angles = np.asarray(angles_deg, dtype=np.float64)
    if angles.ndim != 1 or angles.size == 0 or not np.all(np.isfinite(angles)):
        raise ValueError(f"angles_deg must be a non-empty 1-d array of finite angles in degrees, got shape {angles.shape}")
    return angles


def _system_matrix(rows: np.ndarray, cols: np.ndarray, angles_deg: np.ndarray, n_det: int) -> scipy.sparse.csr_matrix:
    """Back-projection matrix, shape (len(rows) * len(cols), n_angles * n_det), float32.

    ``rows`` and ``cols`` are pixel offsets from the rotation axis; entry
    ``[pixel, angle * n_det + bin]`` is the linear-interpolation weight of
    the pixel centre's projection on the detector bin. Its transpose is the
    pixel-driven forward projector. Built directly in CSR order (each pixel
    row holds two entries per angle, in column order).
    """
    theta = np.deg2rad(angles_deg)
    n_pix = rows.size * cols.size
    n_ang = theta.size
    # bin position u = c cos - r sin + n_det // 2 for every (pixel, angle); float32 is
    # exact to ~1e-5 bins at these sizes
    ccos = (cols[:, None] * np.cos(theta)[None, :]).astype(np.float32)  # (W, A)
    rsin = ((n_det // 2) - rows[:, None] * np.sin(theta)[None, :]).astype(np.float32)  # (H, A)
    u = (rsin[:, None, :] + ccos[None, :, :]).reshape(n_pix, n_ang)
    i0 = np.floor(u)
    data = np.empty((n_pix, n_ang, 2), dtype=np.float32)
    np.subtract(u, i0, out=data[..., 1])
    np.subtract(1.0, data[..., 1], out=data[..., 0])
    idx = np.empty((n_pix, n_ang, 2), dtype=np.int32)
    idx[..., 0] = i0
    idx[..., 1] = idx[..., 0] + 1
    outside = (idx < 0) | (idx >= n_det)
    data[outside] = 0.0
    np.clip(idx, 0, n_det - 1, out=idx)
    idx += (np.arange(n_ang, dtype=np.int32) * n_det)[None, :, None]
    indptr = np.arange(0, 2 * n_ang * n_pix + 1, 2 * n_ang, dtype=np.int64)
    if indptr[-1] < np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    mat = scipy.sparse.csr_matrix((data.ravel(), idx.ravel(), indptr), shape=(n_pix, n_ang * n_det))
    mat.eliminate_zeros()
    return mat


def _fourier_filter(size: int, name: str) -> np.ndarray:
    """Real Fourier filter (size // 2 + 1,) for :func:`scipy.fft.rfft` of length ``size``.

    The ramp is the Fourier transform of the band-limited spatial ramp kernel
    (Kak & Slaney, eq. 61), as in :func:`skimage.transform.iradon`, which
    avoids the DC bias of a sampled ``|f|``.
    """
    n = np.concatenate([np.arange(1, size // 2 + 1, 2), np.arange(size // 2 - 1, 0, -2)])
    kernel = np.zeros(size)
    kernel[0] = 0.25
    kernel[1::2] = -1.0 / (np.pi * n) ** 2
    filt = 2.0 * np.real(np.fft.fft(kernel))
    freq = np.fft.fftfreq(size)
    if name == "shepp-logan":
        omega = np.pi * freq[1:]
        filt[1:] *= np.sin(omega) / omega
    elif name == "cosine":
        filt *= np.fft.fftshift(np.sin(np.linspace(0, np.pi, size, endpoint=False)))
    elif name == "hamming":
        filt *= np.fft.fftshift(np.hamming(size))
    elif name == "hann":
        filt *= np.fft.fftshift(np.hanning(size))
    # skimage filters with a full complex FFT and keeps the real part, which
    # amounts to the filter's symmetric part; the half spectrum of rfft needs it explicitly
    filt = 0.5 * (filt + np.roll(filt[::-1], 1))
    return filt[: size // 2 + 1]


class ParallelBeamProjector:
    """Parallel-beam projector and filtered back-projection for square images.

    The sparse system matrix of an output grid is built on first use and
    kept in the instance; forward projection applies its transpose. Both
    work on whole stacks of slices at once (one sparse matrix product).

    Parameters
    ----------
    image_size : int
        Images are ``image_size x image_size`` pixels; the rotation axis is
        at pixel ``(image_size // 2, image_size // 2)``.
    angles_deg : array_like, shape (n_angles,)
        Projection angles in degrees.
    n_det : int, optional
        Number of detector bins (unit width, centre bin ``n_det // 2``).
        Default ``image_size``: then, as with ``skimage.transform.radon(...,
        circle=True)``, the image must be zero outside its inscribed circle.

    Notes
    -----
    Memory: about ``8 * H * W * n_angles`` bytes per grid (two float32
    weights and int32 indices per pixel and angle).
    """

    def __init__(self, image_size: int, angles_deg, *, n_det: int | None = None):
        self.image_size = check_int("image_size", image_size, low=1)
        self.angles_deg = _check_angles(angles_deg)
        self.n_det = self.image_size if n_det is None else check_int("n_det", n_det, low=1)
        self._back: dict[tuple[int, int, int, int], scipy.sparse.csr_matrix] = {}

    @property
    def n_angles(self) -> int:
        """Number of projection angles."""
        return self.angles_deg.size

    def _stack(self, arr, trailing: tuple[int, int], what: str):
        a = np.asarray(arr)
        if a.ndim not in (2, 3) or a.shape[-2:] != trailing:
            raise ValueError(f"{what} must have shape (N, {trailing[0]}, {trailing[1]}) or ({trailing[0]}, {trailing[1]}), got {a.shape}")
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise TypeError(f"{what} must be real numbers, got dtype {a.dtype}")
        return a, a.ndim == 2

    def forward(self, images) -> np.ndarray:
        """Line integrals of a stack of images.

        Parameters
        ----------
        images : array_like, shape (N, S, S) or (S, S)
            Attenuation per pixel (pixel length = 1).

        Returns
        -------
        ndarray, shape (N, n_angles, n_det) or (n_angles, n_det), float32
            Sinograms (angles first).
        """
        s = self.image_size
        a, single = self._stack(images, (s, s), "images")
        x = a.reshape(-1, s * s).astype(np.float32, copy=False)
        forward = self.back_matrix((s, s)).T  # CSC view, as fast as a CSR copy
        out = np.asarray(forward @ np.ascontiguousarray(x.T))  # (A*D, N)
        out = np.ascontiguousarray(out.T).reshape(-1, self.n_angles, self.n_det)
        return out[0] if single else out

    def back_matrix(self, shape: tuple[int, int], offset: tuple[int, int] = (0, 0)) -> scipy.sparse.csr_matrix:
        """Back-projection matrix for an output grid, built on first use.

        Parameters
        ----------
        shape : (H, W)
            Output grid in pixels.
        offset : (dy, dx), optional
            Shift of the output grid's centre pixel ``(H // 2, W // 2)``
            from the rotation axis, in pixels (for regions of interest).
        """
        key = (int(shape[0]), int(shape[1]), int(offset[0]), int(offset[1]))
        if key not in self._back:
            rows = np.arange(key[0], dtype=np.float64) - key[0] // 2 + key[2]
            cols = np.arange(key[1], dtype=np.float64) - key[1] // 2 + key[3]
            self._back[key] = _system_matrix(rows, cols, self.angles_deg, self.n_det)
        return self._back[key]

    def filter(self, sinograms, *, filter: str = "ramp") -> np.ndarray:
        """Ramp-type filtering along the detector axis (zero-padded FFT).

        Parameters
        ----------
        sinograms : array_like, shape (..., n_det)
        filter : str
            One of :data:`FILTERS`.

        Returns
        -------
        ndarray, same shape, float32
        """
        if filter not in FILTERS:
            raise ValueError(f"unknown filter {filter!r}; choose one of {', '.join(FILTERS)}")
        a = np.asarray(sinograms, dtype=np.float32)
        size = max(64, int(2 ** math.ceil(math.log2(2 * self.n_det))))
        spec = scipy.fft.rfft(a, n=size, axis=-1, workers=-1)
        spec *= _fourier_filter(size, filter).astype(np.float32)
        return scipy.fft.irfft(spec, n=size, axis=-1, workers=-1)[..., : self.n_det].astype(np.float32)

    def fbp(self, sinograms, *, output_size: int | None = None, filter: str = "ramp",
            output_shape: tuple[int, int] | None = None, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
        """Filtered back-projection of a stack of sinograms.

        Parameters
        ----------
        sinograms : array_like, shape (N, n_angles, n_det) or (n_angles, n_det)
        output_size : int, optional
            Square output of ``output_size`` pixels a side, centred on the
            rotation axis (default ``n_det``); ignored if ``output_shape`` is given.
        filter : str, optional
            One of :data:`FILTERS`.
        output_shape : (H, W), optional
            Rectangular output grid.
        offset : (dy, dx), optional
            Shift of the output grid's centre from the rotation axis, in pixels.

        Returns
        -------
        ndarray, shape (N, H, W) or (H, W), float32
            Attenuation per pixel, scaled by ``pi / (2 n_angles)`` as in
            :func:`skimage.transform.iradon` (no circular mask is applied).
        """
        a, single = self._stack(sinograms, (self.n_angles, self.n_det), "sinograms")
        if output_shape is None:
            size = self.n_det if output_size is None else check_int("output_size", output_size, low=1)
            output_shape = (size, size)
        back = self.back_matrix(output_shape, offset)
        filt = self.filter(a.reshape(-1, self.n_angles, self.n_det), filter=filter)
        rec = np.asarray(back @ np.ascontiguousarray(filt.reshape(filt.shape[0], -1).T))  # (H*W, N)
        rec = np.ascontiguousarray(rec.T).reshape(-1, *output_shape)
        rec *= np.float32(np.pi / (2 * self.n_angles))
        return rec[0] if single else rec


def radon(images, angles_deg, *, n_det: int | None = None) -> np.ndarray:
    """Parallel-beam projections (sinograms) of one image or a stack.

    Parameters
    ----------
    images : array_like, shape (N, S, S) or (S, S)
        Square images (attenuation per pixel); zero outside the inscribed
        circle unless ``n_det`` covers the diagonal. Slices of any
        ``(Y, X)`` shape are scanned by :func:`simulate_ct`, which pads them
        to the circumscribed square.
    angles_deg : array_like, shape (n_angles,)
        Projection angles in degrees.
    n_det : int, optional
        Detector bins (default ``S``).

    Returns
    -------
    ndarray, shape (N, n_angles, n_det) or (n_angles, n_det), float32
        Line integrals; ``radon(x, a)[i]`` approximates
        ``skimage.transform.radon(x, a).T``.
    """
    a = np.asarray(images)
    if a.ndim not in (2, 3) or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"images must have shape (N, S, S) or (S, S), got {a.shape}")
    return ParallelBeamProjector(a.shape[-1], angles_deg, n_det=n_det).forward(a)


def fbp(sinograms, angles_deg, *, output_size: int | None = None, filter: str = "ramp") -> np.ndarray:
    """Filtered back-projection of one sinogram or a stack.

    Parameters
    ----------
    sinograms : array_like, shape (N, n_angles, n_det) or (n_angles, n_det)
        Line integrals, angles first (as returned by :func:`radon`).
    angles_deg : array_like, shape (n_angles,)
        Projection angles in degrees.
    output_size : int, optional
        Side of the square output in pixels (default ``n_det``).
    filter : str, optional
        One of :data:`FILTERS` (default ``"ramp"``).

    Returns
    -------
    ndarray, shape (N, output_size, output_size) or (output_size, output_size), float32
        Reconstructed attenuation per pixel; matches
        ``skimage.transform.iradon(s.T, angles_deg, output_size=..., filter_name=filter)``
        inside the reconstruction circle.
    """
    a = np.asarray(sinograms)
    if a.ndim not in (2, 3):
        raise ValueError(f"sinograms must have shape (N, n_angles, n_det) or (n_angles, n_det), got {a.shape}")
    angles = _check_angles(angles_deg)
    if a.shape[-2] != angles.size:
        raise ValueError(f"sinograms have {a.shape[-2]} angles but angles_deg has {angles.size}")
    n_det = a.shape[-1]
    size = n_det if output_size is None else check_int("output_size", output_size, low=1)
    proj = ParallelBeamProjector(n_det, angles)
    return proj.fbp(a, output_size=size, filter=filter)


# --------------------------------------------------------------------------- CT simulation


def simulate_ct(
    fraction,
    *,
    photons_per_ray: float = 2e4,
    n_angles: int = 180,
    mu_solid: float = 0.02,
    ring_strength: float = 0.0,
    blur_sigma: float = 0.0,
    pad_mode: str = "reflect",
    grey_range: tuple[float, float] = (40.0, 200.0),
    filter: str = "ramp",
    rng=None,
) -> np.ndarray:
    """Simulated parallel-beam micro-CT scan of a solid-fraction volume.

    Each z-slice is one detector row. The sample is larger than the field of
    view, as in a region-of-interest scan of a real foam: every slice is
    padded (``pad_mode``) to the circle circumscribing the field of view, the
    material outside that circle is removed (a cylindrical sample), and only
    the field of view is reconstructed, so there are no truncation artefacts.

    Steps per slice: attenuation ``mu_solid * fraction``; line integrals
    ``p`` (:class:`ParallelBeamProjector`, ``n_angles`` angles over 180
    degrees); expected counts ``photons_per_ray * gain * exp(-p)`` with a
    detector gain per bin ``1 + ring_strength * N(0, 1)`` that is constant
    over angles (rings); detector blur (Gaussian, ``blur_sigma`` bins, along
    the detector row and across rows); Poisson counts; flat-field correction
    with the nominal ``photons_per_ray`` and ``-log``; filtered
    back-projection; linear grey mapping.

    Parameters
    ----------
    fraction : array_like, shape (Z, Y, X) or (Y, X)
        Solid volume fraction per voxel, in [0, 1].
    photons_per_ray : float, optional
        Unattenuated photons per detector bin and projection (the dose);
        ``inf`` for a noise-free scan.
    n_angles : int, optional
        Projections over 180 degrees.
    mu_solid : float, optional
        Linear attenuation coefficient of the solid per voxel length.
    ring_strength : float, optional
        Standard deviation of the relative detector-bin gain errors (0 = no
        rings; 0.005 gives faint rings).
    blur_sigma : float, optional
        Standard deviation of the Gaussian detector blur in bins (0 = none).
    pad_mode : {"reflect", "wrap", "edge"}, optional
        How the field of view is extended to the circumscribed circle;
        ``"wrap"`` continues a periodic foam seamlessly.
    grey_range : (float, float), optional
        Grey values of pore and of fully solid voxels (attenuation 0 and
        ``mu_solid``); the output is mapped linearly and clipped to [0, 255]
        like an 8-bit scan.
    filter : str, optional
        FBP filter, one of :data:`FILTERS`.
    rng : int, numpy.random.Generator or None
        Random source for gains and photon noise
        (:func:`numpy.random.default_rng`).

    Returns
    -------
    ndarray, shape like ``fraction``, float32
        Grey values in [0, 255]: pore dark, solid bright.
    """
    frac = np.asarray(fraction)
    if frac.ndim not in (2, 3) or min(frac.shape) < 1:
        raise ValueError(f"fraction must have shape (Z, Y, X) or (Y, X), got {frac.shape}")
    if not (np.issubdtype(frac.dtype, np.floating) or np.issubdtype(frac.dtype, np.integer) or frac.dtype == bool):
        raise TypeError(f"fraction must be real numbers, got dtype {frac.dtype}")
    frac = frac.astype(np.float32, copy=False)
    if not np.all(np.isfinite(frac)) or frac.min() < 0 or frac.max() > 1:
        raise ValueError("fraction must hold finite values in [0, 1]")
    single = frac.ndim == 2
    if single:
        frac = frac[None]
    dose = check_real("photons_per_ray", photons_per_ray, low=0.0, low_open=True, allow_inf=True)
    n_angles = check_int("n_angles", n_angles, low=1)
    mu = check_real("mu_solid", mu_solid, low=0.0, low_open=True)
    ring = check_real("ring_strength", ring_strength, low=0.0)
    blur = check_real("blur_sigma", blur_sigma, low=0.0)
    if pad_mode not in ("reflect", "wrap", "edge"):
        raise ValueError(f"pad_mode must be 'reflect', 'wrap' or 'edge', got {pad_mode!r}")
    try:
        lo, hi = (float(v) for v in grey_range)
    except (TypeError, ValueError):
        raise TypeError(f"grey_range must be two numbers (pore, solid), got {grey_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo == hi:
        raise ValueError(f"grey_range must be two different finite numbers, got {grey_range!r}")
    if filter not in FILTERS:
        raise ValueError(f"unknown filter {filter!r}; choose one of {', '.join(FILTERS)}")
    rng = np.random.default_rng(rng)

    nz, ny, nx = frac.shape
    size = int(math.ceil(math.hypot(ny, nx))) + 2
    cy, cx = size // 2 - ny // 2, size // 2 - nx // 2
    padded = np.pad(frac, ((0, 0), (cy, size - ny - cy), (cx, size - nx - cx)), mode=pad_mode)
    r = np.arange(size) - size // 2
    cylinder = (r[:, None] ** 2 + r[None, :] ** 2) <= (size / 2.0 - 1.0) ** 2
    padded *= cylinder.astype(np.float32) * np.float32(mu)

    angles = np.arange(n_angles) * (180.0 / n_angles)
    proj = ParallelBeamProjector(size, angles)
    gains = 1.0 + ring * rng.standard_normal((nz, size)) if ring > 0 else None
    out = np.empty((nz, ny, nx), dtype=np.float32)
    scale = np.float32((hi - lo) / mu)
    halo = int(math.ceil(4.0 * blur)) if blur > 0 else 0  # rows that blur into a chunk
    for z0 in range(0, nz, _SLICES_PER_CHUNK):
        z1 = min(nz, z0 + _SLICES_PER_CHUNK)
        h0, h1 = max(0, z0 - halo), min(nz, z1 + halo)
        p = proj.forward(padded[h0:h1])  # (n, A, D)
        counts = np.exp(-p.astype(np.float64))
        if gains is not None:
            counts *= np.clip(gains[h0:h1], 0.05, None)[:, None, :]
        if blur > 0:
            counts = gaussian_filter(counts, sigma=(blur, 0.0, blur), mode="nearest")
        counts = counts[z0 - h0 : z0 - h0 + (z1 - z0)]
        if math.isfinite(dose):
            counts = rng.poisson(counts * dose) / dose
            counts = np.maximum(counts, 0.5 / dose)
        sino = -np.log(counts)
        rec = proj.fbp(sino, filter=filter, output_shape=(ny, nx),
                       offset=(cy + ny // 2 - size // 2, cx + nx // 2 - size // 2))
        out[z0:z1] = np.clip(lo + scale * rec, 0.0, 255.0)
    return out[0] if single else out


# --------------------------------------------------------------------------- demo samples


@dataclass(frozen=True)
class DemoParams:
    """Parameters of a built-in demo sample (a simulated PU-foam scan).

    Attributes
    ----------
    name : str
        Registry name.
    porosity : float
        Target porosity (fraction), the paper's measured value.
    cell_diameter : float
        Mean cell diameter in voxels (the same at every ``size``).
    cell_size_cv : float
        Coefficient of variation of cell sizes.
    wall_strut_ratio : float
        Wall thickness over Plateau-border diameter; both are scaled together
        to meet the porosity.
    photons_per_ray : float
        Unattenuated photons per detector bin and projection.
    n_angles : int
        Projections over 180 degrees.
    mu_solid : float
        Attenuation coefficient of the solid per voxel length.
    ring_strength : float
        Relative standard deviation of detector-gain errors.
    blur_sigma : float
        Detector blur in bins.
    seed : int
        Seed used when :func:`demo_sample` gets ``rng=None``.
    voxel_size_um : float
        Voxel size in micrometres.
    """

    name: str
    porosity: float
    cell_diameter: float
    cell_size_cv: float
    wall_strut_ratio: float
    photons_per_ray: float
    n_angles: int
    mu_solid: float
    ring_strength: float
    blur_sigma: float
    seed: int
    voxel_size_um: float


@dataclass(frozen=True)
class DemoSample:
    """A simulated scan with its ground truth.

    Attributes
    ----------
    name : str
        Registry name.
    scan : ndarray, shape (Z, Y, X), float32
        Simulated CT grey values in [0, 255] (pore dark, solid bright).
    truth : ndarray, shape (Z, Y, X), bool
        Ground-truth segmentation, ``fraction >= 0.5`` (True = solid).
    fraction : ndarray, shape (Z, Y, X), float32
        Exact solid fraction per voxel (partial volume).
    solid_fraction : float
        Exact solid volume fraction of the sample (from the sub-voxel grid).
    porosity : float
        ``1 - solid_fraction``: the reference porosity (like a pycnometry
        measurement); the binary ``truth`` has a somewhat higher porosity
        because walls thinner than half a voxel are not in it.
    voxel_size_um : float
        Voxel size in micrometres.
    params : DemoParams
        The registered parameters.
    wall_thickness : float
        Wall thickness used, voxels.
    strut_diameter : float
        Plateau-border diameter used, voxels.
    """

    name: str
    scan: np.ndarray
    truth: np.ndarray
    fraction: np.ndarray
    solid_fraction: float
    porosity: float
    voxel_size_um: float
    params: DemoParams
    wall_thickness: float
    strut_diameter: float


def _demo(name, porosity, cell_diameter, cell_size_cv, wall_strut_ratio, photons, seed):
    return DemoParams(
        name=name,
        porosity=porosity,
        cell_diameter=cell_diameter,
        cell_size_cv=cell_size_cv,
        wall_strut_ratio=wall_strut_ratio,
        photons_per_ray=photons,
        n_angles=180,
        mu_solid=0.02,
        ring_strength=0.01,
        blur_sigma=0.4,
        seed=seed,
        voxel_size_um=10.0,
    )


#: The built-in demo samples, mirroring the paper's three PU foams (Table 3
#: porosities). Read-only mapping name -> :class:`DemoParams`.
DEMO_SAMPLES = types.MappingProxyType(
    {
        "foam89": _demo("foam89", 0.8902, 28.0, 0.25, 0.04, 1000.0, 8902),
        "foam86": _demo("foam86", 0.8599, 26.0, 0.25, 0.05, 1000.0, 8599),
        "foam82": _demo("foam82", 0.8240, 24.0, 0.30, 0.06, 1000.0, 8240),
    }
)


def demo_sample(name: str, *, size: int | tuple[int, int, int] = 128, supersample: int = 3, rng=None) -> DemoSample:
    """Generate a built-in demo sample: a simulated CT scan of a PU foam and its truth.

    The cell size in voxels and the voxel size are fixed by the sample's
    parameters, so ``size`` only changes how much of the material is in the
    cube (a different, periodic realisation of the same material, not a
    crop): ``size=64`` holds fewer cells than ``size=128`` but looks the
    same and is equally hard to segment.

    Parameters
    ----------
    name : str
        One of :data:`DEMO_SAMPLES` (``"foam89"``, ``"foam86"``, ``"foam82"``).
    size : int or tuple of 3 int, optional
        Edge length of the cube in voxels, or the box ``(Z, Y, X)`` for a
        scan of another shape (every edge >= 16: the smallest box that holds
        a cell of the demo foams with its walls).
    supersample : int, optional
        Sub-points per voxel and axis for the partial-volume fraction.
    rng : int, numpy.random.Generator or None
        Random source; None uses the sample's registered seed, so the demo
        data are the same everywhere.

    Returns
    -------
    DemoSample

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones) or a bad size.
    """
    if not isinstance(name, str) or name not in DEMO_SAMPLES:
        raise ValueError(f"unknown demo sample {name!r}; known: {', '.join(DEMO_SAMPLES)}")
    if isinstance(size, (tuple, list)):
        if len(size) != 3:
            raise ValueError(f"size must be an int or a (Z, Y, X) tuple of 3 ints, got {size!r}")
        shape = tuple(check_int(f"size[{i}]", n, low=16) for i, n in enumerate(size))
    else:
        n = check_int("size", size, low=16)
        shape = (n, n, n)
    params = DEMO_SAMPLES[name]
    base = streams.base_seed(params.seed if rng is None else rng)
    foam_rng, ct_rng = streams.rng(base, "phantom", "foam"), streams.rng(base, "phantom", "ct")
    foam = FoamParameters(
        porosity=params.porosity,
        cell_diameter=params.cell_diameter,
        cell_size_cv=params.cell_size_cv,
        wall_strut_ratio=params.wall_strut_ratio,
        supersample=supersample,
    ).generate(shape, rng=foam_rng)
    scan = simulate_ct(
        foam.fraction,
        photons_per_ray=params.photons_per_ray,
        n_angles=params.n_angles,
        mu_solid=params.mu_solid,
        ring_strength=params.ring_strength,
        blur_sigma=params.blur_sigma,
        pad_mode="wrap",
        rng=ct_rng,
    )
    return DemoSample(
        name=name,
        scan=scan,
        truth=foam.solid,
        fraction=foam.fraction,
        solid_fraction=1.0 - foam.porosity,
        porosity=foam.porosity,
        voxel_size_um=params.voxel_size_um,
        params=params,
        wall_thickness=foam.wall_thickness,
        strut_diameter=foam.strut_diameter,
    )
