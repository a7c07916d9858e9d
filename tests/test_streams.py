"""Named random streams (foamlib.streams): stable, distinct, and used instead of ad-hoc seed arithmetic."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from foamlib import streams
from foamlib.streams import base_seed, rng, seed_for, torch_generator

ROOT = Path(__file__).resolve().parents[1]

# The stream paths the package and its notebooks use (module constants and notebook seed lines).
PACKAGE_STREAMS = [
    ("gan", "generator-init"), ("gan", "discriminator-init"), ("gan", "batches"), ("gan", "latent"),
    ("gan", "noise"), ("gan", "samples"), ("gan", "batch-stats"), ("gan", "generate"), ("gan", "real-patches"),
    ("cyclegan", "g-init"), ("cyclegan", "f-init"), ("cyclegan", "dx-init"), ("cyclegan", "dy-init"),
    ("cyclegan", "crop-x"), ("cyclegan", "crop-y"), ("cyclegan", "pool-x"), ("cyclegan", "pool-y"),
    ("cyclegan", "samples"), ("cyclegan", "figure-crops"),
    ("unet", "init"), ("unet", "order"), ("unet", "noise"),
    ("walls", "order"), ("dataset", "split"), ("step1-split",), ("step2-split",),
    ("fit",), ("variation",), ("foams",), ("grey-model",), ("phantom", "foam"), ("phantom", "ct"),
    ("similarity", "real"), ("similarity", "real-second-draw"), ("similarity", "encoder"),
    ("similarity", "bootstrap"), ("similarity", "bootstrap-sweep"),
    *[("render", i) for i in range(8)], *[("fitting", "realisation", i) for i in range(8)],
    *[("foams", i) for i in range(8)], *[("hpo", "sampler", stage, slot) for stage in (1, 2) for slot in range(8)],
]


def test_golden_values():
    # Changing these changes every random draw of the study: only with a new _TAG and a README note.
    assert seed_for(0, "walls", "order") == 3077943496221991660
    assert seed_for(7, "gan", "latent") == 4390842416168622206
    assert seed_for(0, "hpo", "sampler", 1, 0, bits=32) == 2951596988
    assert seed_for(123) == 8027296251339378379
    assert rng(0, "fit").integers(1000, size=3).tolist() == [655, 323, 412]


def test_stable_across_processes():
    code = "from foamlib.streams import seed_for; print(seed_for(5, 'unet', 'noise'), seed_for(5, 'render', 3))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "random", "PYTHONPATH": str(ROOT)}).stdout.split()
    assert [int(v) for v in out] == [seed_for(5, "unet", "noise"), seed_for(5, "render", 3)]


def test_named_streams_never_collide_for_seeds_0_to_999():
    assert len(set(PACKAGE_STREAMS)) == len(PACKAGE_STREAMS)
    values = [seed_for(seed, *names) for seed in range(1000) for names in PACKAGE_STREAMS]
    assert len(set(values)) == len(values)
    # no stream reproduces the study seed itself or another seed's default generator
    assert not set(values) & set(range(1000))


def test_names_are_typed():
    assert seed_for(0, "walls", 1) != seed_for(0, "walls", "1")
    assert seed_for(0, "a", "b") != seed_for(0, "ab") != seed_for(0, "a")
    assert seed_for(np.int64(3), "x") == seed_for(3, "x")
    assert seed_for(0, "x", np.int32(2)) == seed_for(0, "x", 2)
    for bad in ("", "#1", "a\x1fb", 1.5, None, True):
        with pytest.raises(TypeError, match="stream names"):
            seed_for(0, bad)
    with pytest.raises(ValueError, match="stream name"):
        seed_for(0, -1)


@pytest.mark.parametrize("bits", [1, 32, 63, 64])
def test_bits(bits):
    values = [seed_for(s, "x", bits=bits) for s in range(200)]
    assert all(0 <= v < 2**bits for v in values)
    assert seed_for(9, "x", bits=32) == seed_for(9, "x", bits=64) >> 32


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (1.0, TypeError), (True, TypeError), ("0", TypeError)])
def test_bad_seed(seed, error):
    with pytest.raises(error, match="seed"):
        seed_for(seed, "x")


def test_bad_bits():
    with pytest.raises(ValueError, match="bits"):
        seed_for(0, bits=65)


def test_generators():
    a, b = rng(3, "x").random(4), rng(3, "x").random(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, rng(3, "y").random(4))
    gen = torch_generator(3, "x")
    assert isinstance(gen, torch.Generator) and gen.initial_seed() == seed_for(3, "x")
    state = torch.get_rng_state()
    torch.randn(3, generator=torch_generator(3, "x"))
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is not touched


def test_base_seed():
    assert base_seed(5) == 5 and base_seed(np.int64(5)) == 5
    gen = np.random.default_rng(1)
    first = base_seed(gen)
    assert 0 <= first < 2**63 and first != base_seed(gen)  # a generator advances
    assert base_seed(np.random.default_rng(1)) == first
    assert 0 <= base_seed(None) < 2**63
    with pytest.raises(TypeError, match="rng"):
        base_seed(1.5)
    with pytest.raises(ValueError, match="rng"):
        base_seed(-2)


def test_no_ad_hoc_stream_derivation_left():
    """Modules and notebooks derive sub-streams through foamlib.streams only."""
    pattern = re.compile(r"SeedSequence\(|\.spawn\(\d|\.spawn\([a-z_]|sub_seed\(|seed \+ |seed=seed \+|default_rng\(seed\)")
    offenders = []
    for path in sorted((ROOT / "foamlib").glob("*.py")) + sorted((ROOT / "notebooks").glob("*.ipynb")):
        if path.name in {"streams.py", "torchfiles.py"}:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line) and not line.lstrip().startswith(("#", '"""')):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_sub_seed_delegates():
    from foamlib.torchfiles import sub_seed

    assert sub_seed(4, 2) == seed_for(4, 2) and sub_seed(4, "gan") == seed_for(4, "gan")
    assert streams.__all__ == ["RngLike", "base_seed", "rng", "seed_for", "torch_generator"]
