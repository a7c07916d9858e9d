"""Tests of foamlib.unet and foamlib.device."""

import itertools
import json

import pytest
import torch

from foamlib.device import cpu_threads, pick_device
from foamlib.unet import PAPER_BEST_CONFIG, UNet, _SameConv2d, build_unet, count_parameters


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _tiny(**kwargs) -> UNet:
    kwargs.setdefault("base_channels", 2)
    return build_unet(kwargs, seed=0)


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    ("levels", "convs", "kernel"), list(itertools.product(range(1, 6), range(1, 4), (3, 4, 5)))
)
def test_output_shape_equals_input_shape(levels, convs, kernel):
    # alternate the other options so that every one of them meets every size
    index = (levels + convs + kernel) % 4
    pooling = ("avg", "max")[index % 2]
    normalization = ("batch", "none")[index // 2]
    model = _tiny(levels=levels, convs_per_level=convs, kernel_size=kernel, pooling=pooling, normalization=normalization)
    x = torch.rand(2, 1, 37, 45)
    y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (16, 16), (17, 33), (64, 64), (31, 8)])
@pytest.mark.parametrize("kernel", [2, 4])
def test_any_slice_size(size, kernel):
    model = _tiny(levels=5, kernel_size=kernel).eval()  # eval: batch norm also works on 1x1 maps
    x = torch.rand(1, 1, *size)
    assert model(x).shape == x.shape


@pytest.mark.parametrize(
    ("pooling", "normalization", "output"), list(itertools.product(("avg", "max"), ("batch", "instance", "none"), ("sigmoid", "logits")))
)
def test_options_and_channels(pooling, normalization, output):
    model = _tiny(levels=3, pooling=pooling, normalization=normalization, output=output, in_channels=2, out_channels=3)
    y = model(torch.rand(2, 2, 20, 12))
    assert y.shape == (2, 3, 20, 12)
    if output == "sigmoid":
        assert y.min() >= 0 and y.max() <= 1


def test_sigmoid_output_in_unit_interval_even_for_large_inputs():
    model = _tiny(levels=3, normalization="none")
    y = model(100 * torch.randn(2, 1, 32, 32))
    assert y.min() >= 0 and y.max() <= 1


def test_logits_output_is_sigmoid_output_before_the_sigmoid():
    x = torch.rand(2, 1, 24, 24)
    probs = _tiny(levels=3, output="sigmoid").eval()(x)
    logits = _tiny(levels=3, output="logits").eval()(x)  # same seed: same weights
    torch.testing.assert_close(torch.sigmoid(logits), probs)


def test_backward_reaches_every_parameter():
    model = _tiny(levels=3, kernel_size=4)
    model(torch.rand(2, 1, 19, 21)).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# --------------------------------------------------------------------------- padding of even kernels


@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5, 6])
def test_same_conv_keeps_size(kernel):
    conv = _SameConv2d(1, 1, kernel, bias=False)
    assert conv(torch.rand(1, 1, 7, 10)).shape == (1, 1, 7, 10)


def test_even_kernel_padding_is_asymmetric_as_requested():
    conv = _SameConv2d(1, 1, 4, bias=False)
    assert conv.pad.padding == (1, 2, 1, 2)  # k//2 - 1 before, k//2 after
    assert _SameConv2d(1, 1, 4, bias=False, mirror=True).pad.padding == (2, 1, 2, 1)


def test_alternating_padding_cancels_the_half_pixel_shift():
    """Two 4-tap convolutions with mirrored padding, smoothing an impulse, give a result symmetric about it."""
    kernel = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8
    weight = (kernel[:, None] * kernel[None, :])[None, None]
    first, second = _SameConv2d(1, 1, 4, bias=False), _SameConv2d(1, 1, 4, bias=False, mirror=True)
    with torch.no_grad():
        first.conv.weight.copy_(weight)
        second.conv.weight.copy_(weight)
    x = torch.zeros(1, 1, 15, 15)
    x[..., 7, 7] = 1
    y = second(first(x))[0, 0]
    torch.testing.assert_close(y, y.flip(0).flip(1))  # centred on the impulse
    assert y.argmax() == 7 * 15 + 7
    # one convolution alone is off by half a pixel: not symmetric
    single = first(x)[0, 0]
    assert not torch.allclose(single, single.flip(0).flip(1))


# --------------------------------------------------------------------------- config and construction


def test_config_round_trip():
    model = UNet(levels=4, convs_per_level=3, base_channels=8, kernel_size=4, pooling="max", normalization="none", output="logits")
    config = model.config
    assert json.loads(json.dumps(config)) == config  # plain types only
    rebuilt = UNet(**config)
    assert rebuilt.config == config
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in model.parameters()]


def test_paper_config_and_channel_doubling():
    model = UNet(**PAPER_BEST_CONFIG)
    assert model.config["kernel_size"] == 4 and model.levels == 5 and model.pooling == "avg"
    widths = [block[0].conv.out_channels for block in model.encoders]
    assert widths == [16, 32, 64, 128, 256]
    with pytest.raises(TypeError):
        PAPER_BEST_CONFIG["levels"] = 3  # read-only


def test_count_parameters_by_hand():
    # one 3x3 conv 1->2 with bias (18 + 2) and a 1x1 head 2->1 (2 + 1)
    assert count_parameters(UNet(levels=1, convs_per_level=1, base_channels=2, normalization="none")) == 23
    # with batch norm the conv has no bias (18), the norm has weight and bias (2 + 2)
    model = UNet(levels=1, convs_per_level=1, base_channels=2, normalization="batch")
    assert count_parameters(model) == 25
    model.head.weight.requires_grad_(False)
    assert count_parameters(model) == 23
    assert count_parameters(model, trainable_only=False) == 25
    # instance norm with affine scale and shift: same count as batch norm, no running statistics
    model = UNet(levels=1, convs_per_level=1, base_channels=2, normalization="instance")
    assert count_parameters(model) == 25
    assert not any("running" in name for name in model.state_dict())


def test_build_unet_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = build_unet({"levels": 2}, 1), build_unet({"levels": 2}, 1), build_unet({"levels": 2}, 2)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_build_unet_rejects_unknown_options():
    with pytest.raises(ValueError, match="bogus"):
        build_unet({"bogus": 1}, 0)


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"levels": 0}, "0"),
        ({"convs_per_level": 0}, "convs_per_level"),
        ({"base_channels": -1}, "-1"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"pooling": "min"}, "'min'"),
        ({"normalization": "group"}, "'group'"),
        ({"output": "softmax"}, "'softmax'"),
        ({"in_channels": 0}, "in_channels"),
    ],
)
def test_invalid_arguments_raise(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        UNet(**kwargs)


@pytest.mark.parametrize(("kwargs", "bad"), [({"levels": 2.0}, "2.0"), ({"kernel_size": True}, "True"),
                                             ({"out_channels": "1"}, "'1'")])
def test_arguments_of_a_wrong_type_raise_type_error(kwargs, bad):
    with pytest.raises(TypeError, match=bad):
        UNet(**kwargs)


def test_forward_rejects_wrong_input():
    model = _tiny(levels=2)
    with pytest.raises(ValueError, match="expected input"):
        model(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="expected input"):
        model(torch.rand(8, 8))


# --------------------------------------------------------------------------- device


def test_pick_device_cpu_forms():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(" CPU ") == torch.device("cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device().type == expected
    assert pick_device("auto").type == expected


@pytest.mark.parametrize("bad", ["tpu", "cuda:x", "gpu", "", 3])
def test_pick_device_rejects_unknown(bad):
    with pytest.raises(ValueError, match="device"):
        pick_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
@pytest.mark.parametrize("request_", ["cuda", "cuda:1", torch.device("cuda", 0)])
def test_pick_device_cuda_unavailable(request_):
    with pytest.raises(ValueError, match="CUDA is not available"):
        pick_device(request_)


def test_cpu_threads():
    assert isinstance(cpu_threads(), int) and cpu_threads() >= 1
