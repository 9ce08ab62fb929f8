"""Bad input to the flow API: named errors, or the correct (empty / fresh) result."""

from __future__ import annotations

import warnings

import pytest
import torch

from condflow import ConditionalGlow, CouplingNet
from condflow.bijectors.actnorm import ActNorm
from condflow.bijectors.lu import LULinear

D, C = 5, 3


def glow(batch_norm: bool = True) -> ConditionalGlow:
    torch.manual_seed(0)
    flow = ConditionalGlow(
        D, C, num_blocks=2, coupling_net=CouplingNet(hidden_features=8, batch_norm=batch_norm)
    )
    with torch.no_grad():  # leave the near-identity start: make every block matter
        for p in flow.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return flow.eval()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", ["log_prob", "transform_to_noise"])
def test_inputs_of_another_dtype_than_the_model_name_inputs(dtype, method):
    with pytest.raises(ValueError, match=rf"inputs: dtype {dtype} differs from the model's "
                                         r"torch.float32"):
        getattr(glow(), method)(torch.randn(4, D, dtype=dtype), torch.randn(4, C))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("call", ["sample", "mode", "sample_and_log_prob"])
def test_context_of_another_dtype_than_the_model_names_context(dtype, call):
    flow, context = glow(), torch.randn(2, C, dtype=dtype)
    args = (context,) if call == "mode" else (3, context)
    with pytest.raises(ValueError, match=rf"context: dtype {dtype} differs from the model's"):
        getattr(flow, call)(*args)


def test_a_float64_model_takes_float64_inputs():
    flow = glow().double()
    assert flow.log_prob(torch.randn(4, D).double(), torch.randn(4, C).double()).dtype == \
        torch.float64


@pytest.mark.parametrize("inputs_shape", [(4, D), (4, 7, D)])
def test_one_context_row_for_a_batch_blames_the_context(inputs_shape):
    with pytest.raises(ValueError, match=r"context: 1 row for the 4 rows of inputs; expected "
                                         rf"one context row per row of inputs, \[4, {C}\]"):
        glow().log_prob(torch.randn(*inputs_shape), torch.randn(1, C))


def test_noise_batch_mismatch_names_noise():
    with pytest.raises(ValueError, match=r"noise: expected shape \[2, 5\], got \[3, 5\]"):
        glow().generate(torch.randn(3, D), torch.randn(2, C))


@pytest.mark.parametrize("n", [1, 4])
def test_empty_batch_gives_empty_tensors(n):
    flow, context = glow(), torch.randn(0, C)
    assert flow.sample(n, context).shape == (0, n, D)
    x, log_p = flow.sample_and_log_prob(n, context)
    assert x.shape == (0, n, D) and log_p.shape == (0, n)
    assert flow.log_prob(torch.randn(0, D), context).shape == (0,)
    assert flow.mode(context).shape == (0, D)


@pytest.mark.parametrize("call", [
    lambda f: f.log_prob(torch.randn(1, D), torch.randn(1, C)),
    lambda f: f.transform_to_noise(torch.randn(1, D), torch.randn(1, C)),
    lambda f: f.sample(1, torch.randn(1, C)),
    lambda f: f.mode(torch.randn(1, C)),
])
def test_one_row_in_training_mode_with_batch_norm_is_explained(call):
    with pytest.raises(ValueError, match="context: a batch of 1 row in training mode, but the "
                                         r"flow has batch norm.*\.eval\(\)"):
        call(glow().train())


def test_one_row_in_training_mode_without_batch_norm_works():
    flow = glow(batch_norm=False).train()
    with pytest.warns(UserWarning, match="constant in the initialization batch"):  # 1 row
        assert torch.isfinite(flow.log_prob(torch.randn(1, D), torch.randn(1, C))).all()


def test_several_samples_of_one_context_in_training_mode_work():
    assert glow().train().sample(4, torch.randn(1, C)).shape == (1, 4, D)


@pytest.mark.parametrize("param", ["lower", "upper", "log_s"])
@pytest.mark.parametrize("via", ["data", "no_grad"])
def test_lu_cache_sees_every_write_to_the_parameters(param, via):
    lu = LULinear(D, seed=1).eval()
    z = torch.randn(4, D, dtype=torch.float32)
    with torch.no_grad():
        before = lu(z)[0]
        tensor = getattr(lu, param)
        if via == "data":
            tensor.data.add_(0.3)
        else:
            tensor.add_(0.3)
        weight, weight_inv = lu._assemble()
        after, back = lu(z)[0], lu.inverse(z)[0]
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, z @ weight.T)
    torch.testing.assert_close(back, z @ weight_inv.T)


def test_flow_sample_and_noise_follow_a_data_write_in_eval_mode():
    flow, c = glow(), torch.randn(2, C)
    x = flow.sample(3, c, torch.Generator().manual_seed(0))
    z = flow.transform_to_noise(x, c)
    lu = next(m for m in flow.modules() if isinstance(m, LULinear))
    lu.lower.data.add_(0.5)
    fresh = glow()
    fresh.load_state_dict(flow.state_dict())  # the same weights, never cached
    torch.testing.assert_close(flow.transform_to_noise(x, c), fresh.transform_to_noise(x, c))
    assert not torch.allclose(flow.transform_to_noise(x, c), z, atol=1e-3)


def test_actnorm_constant_feature_keeps_unit_scale_and_warns():
    act = ActNorm(4).train()
    x = torch.randn(64, 4) * 3 + 1
    x[:, 2] = 7.0
    with pytest.warns(UserWarning, match=r"ActNorm: feature\(s\) \[2\] are constant"):
        z, _ = act.inverse(x)
    assert act.log_scale[2].item() == 0 and act.shift[2].item() == pytest.approx(7.0)
    later = torch.full((1, 4), 7.5)
    assert act.inverse(later)[0][0, 2].item() == pytest.approx(0.5)  # not 0.5 / sqrt(eps)
    std = z[:, [0, 1, 3]].detach().std(0, unbiased=False)
    torch.testing.assert_close(std, torch.ones(3), atol=1e-4, rtol=0)


def test_actnorm_varying_features_give_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ActNorm(3).train().inverse(torch.randn(32, 3))


def test_compiled_generate_with_noise_drawn_outside_matches_sample_with_a_generator():
    flow, c = glow(), torch.randn(2, C)
    expected = flow.sample_and_log_prob(4, c, torch.Generator().manual_seed(3))
    noise = flow.noise(4, c, torch.Generator().manual_seed(3))
    torch._dynamo.reset()
    compiled = torch.compile(flow.generate, fullgraph=True, backend="eager")
    got = compiled(noise, c)
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1])


def test_compiled_sample_without_generator_traces_in_one_graph():
    flow, c = glow(), torch.randn(2, C)
    torch._dynamo.reset()
    assert torch.compile(flow.sample, fullgraph=True, backend="eager")(4, c).shape == (2, 4, D)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind", ["flow", "regression"])
def test_lifting_head_inputs_of_another_dtype_name_inputs(dtype, kind):
    from condflow.saving import build_model
    from condflow.tasks import load_config

    cfg = load_config({"task": "lifting", "model": {"kind": kind, "lifter_hidden": 8,
                                                    "flow_hidden": 8, "flow_blocks": 1}})
    head = build_model(cfg)
    with pytest.raises(ValueError, match=rf"inputs: dtype {dtype} differs from the model's"):
        head(torch.randn(2, 16, 3, dtype=dtype))
