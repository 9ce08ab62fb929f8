"""Training losses: L_nll, L_mode, L_exp, L_orth, keypoint/parameter terms, adversarial prior.

The tasks' objectives (:class:`Objective` subclasses) are in :mod:`condflow.losses.mesh` and
:mod:`condflow.losses.lifting`; they are not imported here, since they build on the heads,
which themselves use the loss terms.
"""

from condflow.losses.adversarial import (
    AdversarialPrior,
    PoseShapeDiscriminator,
    adversarial_discriminator_loss,
    adversarial_generator_loss,
    discriminator_step,
)
from condflow.losses.keypoints import keypoint_2d_loss, keypoint_3d_loss
from condflow.losses.likelihood import nll_loss
from condflow.losses.objective import Objective
from condflow.losses.orth import orthonormality_loss
from condflow.losses.parameters import betas_loss, rotmat_loss
from condflow.losses.prohmr import (
    BodyPrediction,
    ProHMRLossWeights,
    SupervisionBatch,
    SupervisionWeights,
    expectation_loss,
    mode_loss,
    prohmr_loss,
)

__all__ = [
    "AdversarialPrior",
    "BodyPrediction",
    "Objective",
    "PoseShapeDiscriminator",
    "ProHMRLossWeights",
    "SupervisionBatch",
    "SupervisionWeights",
    "adversarial_discriminator_loss",
    "adversarial_generator_loss",
    "betas_loss",
    "discriminator_step",
    "expectation_loss",
    "keypoint_2d_loss",
    "keypoint_3d_loss",
    "mode_loss",
    "nll_loss",
    "orthonormality_loss",
    "prohmr_loss",
    "rotmat_loss",
]
