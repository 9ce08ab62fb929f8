"""Initialization is pinned: for a fixed seed, each model below has the parameter names,
shapes and values it had when these fingerprints were recorded.

The fingerprints were recorded with the models built through the constructors' earlier
signatures; a change of a constructor's arguments that reorders module creation (hence the
random draws), renames a parameter or changes a shape fails here. Values are compared
through two float64 aggregates (a plain and a position-weighted sum) to a relative 1e-6, so
that a different LAPACK (the LU maps' QR) rounding the same draws differently still passes;
a different draw order moves both by far more.
"""

import hashlib

import pytest
import torch

from condflow.bijectors import AffineCoupling, CouplingNet
from condflow.encoders.mlp_lifter import MLPLifter
from condflow.encoders.small_cnn import SmallCNN
from condflow.flow import ConditionalGlow
from condflow.heads.prohmr import ProHMRHead, ProHMRRegressionHead
from condflow.heads.skeleton import SkeletonHead
from condflow.spaces.skeleton import H36M_17, SkeletonSpace
from condflow.tasks import load_config, task_for

SPACE = SkeletonSpace(H36M_17, drop_root=True)

#: name → (SHA-256 prefix of the "name:shape:dtype" list, Σ x, Σ x_i cos(i + k)).
RECORDED = {
    "glow": ("9e7341be24d4e4b6", 208.12500263095137, -7.652632345025879),
    "glow_nflows_volume": ("aaaa1e540f65c75a", 69.02114002235567, 1.2502502668476405),
    "affine_coupling": ("b4ccf13be202e9f6", -3.4761144466146447, -3.4288481195321947),
    "skeleton_head": ("16a42412c37ead10", 493.74557783408693, -10.920961880431893),
    "prohmr_head": ("8f64e97df2c9a543", 542.2703527254791, -17.52962496429054),
    "prohmr_head_prohmr": ("64dcf29b40f2fd83", 21303.75368897263, 243.29553283863945),
    "prohmr_regression": ("b5245d65930c5a0e", 219.70139973209615, 6.348763318222274),
    "mlp_lifter": ("e8b6516de313a407", -4.004545069030428, 11.733182406540593),
    "lifting_flow": ("9df63fc0e19da28b", 763.3114699863188, -21.463862408703875),
    "lifting_regression": ("784f0eb63b8dd187", 43.99545493096957, 11.0471679563808),
    "mesh_flow": ("8f64e97df2c9a543", 542.2703527254791, -17.52962496429054),
    "mesh_regression": ("b5245d65930c5a0e", 219.70139973209615, 6.348763318222274),
}


def fingerprint(module: torch.nn.Module) -> tuple[str, float, float]:
    state = module.state_dict()
    layout = ";".join(f"{k}:{list(v.shape)}:{v.dtype}" for k, v in state.items())
    total = weighted = 0.0
    for k, v in enumerate(state.values()):
        x = v.detach().double().flatten()
        total += x.sum().item()
        weighted += (x * torch.cos(torch.arange(x.numel(), dtype=torch.float64) + k)).sum().item()
    return hashlib.sha256(layout.encode()).hexdigest()[:16], total, weighted


def task_model(task: str, model: dict) -> torch.nn.Module:
    cfg = load_config({"task": task, "model": model})
    return task_for(cfg).build_model()


BUILDERS = {
    "glow": lambda body: ConditionalGlow(
        6, 3, num_blocks=3, seed=5, shift_bound=2.0, coupling_net=CouplingNet(
            hidden_features=16, num_residual_blocks=2, dropout=0.1, batch_norm="layer"
        ),
    ),
    "glow_nflows_volume": lambda body: ConditionalGlow(
        6, 3, num_blocks=2, coupling_net=CouplingNet(hidden_features=8, num_residual_blocks=1),
        convention="nflows", conditional_volume=True, volume_hidden=4,
    ),
    "affine_coupling": lambda body: AffineCoupling(
        5, 2, parity=1,
        coupling_net=CouplingNet(hidden_features=8, num_residual_blocks=3, batch_norm=False),
    ),
    "skeleton_head": lambda body: SkeletonHead(
        MLPLifter(16, 3, hidden=32, num_residual_blocks=1), SPACE, num_blocks=2,
        coupling_net=CouplingNet(hidden_features=16, num_residual_blocks=1),
        conditional_volume=True, volume_hidden=8,
    ),
    "prohmr_head": lambda body: ProHMRHead(
        SmallCNN(3, 16, width=4), body, num_blocks=2,
        coupling_net=CouplingNet(hidden_features=16, num_residual_blocks=1),
        point_hidden=16, img_res=64,
    ),
    "prohmr_head_prohmr": lambda body: ProHMRHead(
        SmallCNN(3, 16, width=4), body, num_blocks=2,
        coupling_net=CouplingNet(hidden_features=16, num_residual_blocks=3, dropout=0.5),
        point_hidden=16, img_res=64, flow_convention="prohmr",
    ),
    "prohmr_regression": lambda body: ProHMRRegressionHead(
        SmallCNN(3, 16, width=4), body,
        pose_net=CouplingNet(hidden_features=16, num_residual_blocks=3, batch_norm=False),
        point_hidden=16,
    ),
    "mlp_lifter": lambda body: MLPLifter(
        16, 3, hidden=32, num_residual_blocks=2, batch_norm=False, out_features=48
    ),
    "lifting_flow": lambda body: task_model("lifting", {
        "lifter_hidden": 32, "lifter_blocks": 1, "flow_hidden": 16, "flow_blocks": 2,
        "flow_residual_blocks": 3, "conditional_volume": True,
    }),
    "lifting_regression": lambda body: task_model("lifting", {
        "kind": "regression", "lifter_hidden": 32, "batch_norm": False,
    }),
    "mesh_flow": lambda body: task_model("mesh", {
        "context_features": 16, "cnn_width": 4, "flow_hidden": 16, "flow_blocks": 2,
        "flow_residual_blocks": 1, "point_hidden": 16,
    }),
    "mesh_regression": lambda body: task_model("mesh", {
        "kind": "regression", "context_features": 16, "cnn_width": 4, "flow_hidden": 16,
        "flow_residual_blocks": 3, "point_hidden": 16, "batch_norm": False,
    }),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_initialization_is_the_recorded_one(name, body):
    torch.manual_seed(0)
    layout, total, weighted = fingerprint(BUILDERS[name](body))
    expected_layout, expected_total, expected_weighted = RECORDED[name]
    assert layout == expected_layout
    assert total == pytest.approx(expected_total, rel=1e-6)
    assert weighted == pytest.approx(expected_weighted, rel=1e-6)


def test_the_fingerprint_sees_a_change_of_draw_order():
    torch.manual_seed(0)
    a = ConditionalGlow(4, 2, num_blocks=2, coupling_net=CouplingNet(hidden_features=8))
    torch.manual_seed(0)
    torch.rand(1)  # one extra draw before building
    b = ConditionalGlow(4, 2, num_blocks=2, coupling_net=CouplingNet(hidden_features=8))
    (layout_a, _, weighted_a), (layout_b, _, weighted_b) = fingerprint(a), fingerprint(b)
    assert layout_a == layout_b
    assert weighted_a != pytest.approx(weighted_b, rel=1e-6)
