"""model.batch_norm in the task configs: "batch" / "layer" / "none" and the booleans."""

import pytest
import torch
from torch import nn

from condflow.tasks import load_config, task_for

SMALL = {
    "lifting": {"lifter_hidden": 16, "lifter_blocks": 1, "flow_hidden": 8, "flow_blocks": 2},
    "mesh": {"context_features": 8, "cnn_width": 4, "flow_hidden": 8, "flow_blocks": 2,
             "point_hidden": 8},
}


def build(task: str, **model) -> nn.Module:
    torch.manual_seed(0)
    cfg = load_config({"task": task, "model": {**SMALL[task], **model}})
    return task_for(cfg).build_model()


def norms(module: nn.Module) -> set[type]:
    return {type(m) for m in module.modules() if isinstance(m, nn.BatchNorm1d | nn.LayerNorm)}


@pytest.mark.parametrize("task", ["lifting", "mesh"])
@pytest.mark.parametrize("kind", ["flow", "regression"])
def test_norm_names_reach_every_residual_mlp(task, kind):
    batch, layer, none = (build(task, kind=kind, batch_norm=n) for n in ("batch", "layer", "none"))
    assert norms(batch) == {nn.BatchNorm1d} and norms(layer) == {nn.LayerNorm}
    assert norms(none) == set()
    if task == "lifting":  # the lifter follows the same key as the coupling nets
        assert norms(batch.encoder) == {nn.BatchNorm1d}
        assert norms(layer.encoder) == {nn.LayerNorm}


@pytest.mark.parametrize("task", ["lifting", "mesh"])
@pytest.mark.parametrize(("flag", "name"), [(True, "batch"), (False, "none")])
def test_booleans_build_the_model_of_their_name(task, flag, name):
    a, b = build(task, batch_norm=flag).state_dict(), build(task, batch_norm=name).state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_unknown_norm_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"model\.batch_norm: expected bool or one of "
                                         r"\['batch', 'layer', 'none'\], got 'group'"):
        load_config({"task": "mesh", "model": {"batch_norm": "group"}})
