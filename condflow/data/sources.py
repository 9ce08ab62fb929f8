"""Data sources by name: what a config's ``data.source`` selects.

A source turns its settings (the keys under ``data`` besides ``source``) into a
:class:`DataSplit`: train and test datasets of dict items, what their input is
(:class:`~condflow.inputs.InputSpec`), which batch keys every item carries, the camera of
their 2D keypoints and the body model of their SMPL parameters. Which keys a model needs
follows from its output space (e.g. ``joints_3d`` for a skeleton, the SMPL parameters for
the SMPL pose); a source asked for a key it cannot give is an error naming ``data.source``.
:func:`register_data_source` adds a user's own.

Built in:

- ``synthetic_lifting``: the synthetic 2D→3D lifting set (Human3.6M-16 keypoints, 17 3D
  joints), :mod:`condflow.data.synthetic_lifting`;
- ``h36m``: Human3.6M in VideoPose3D's files, :mod:`condflow.data.h36m`;
- ``synthetic_lifting_smpl``: the people and cameras of ``synthetic_lifting`` seen through
  SPIN's 24 keypoints, with SMPL ground truth, :mod:`condflow.data.synthetic_keypoints`;
- ``synthetic_images``: the rendered image set with SMPL ground truth,
  :mod:`condflow.data.synthetic_images`;
- ``spin_npz``: image datasets in SPIN's npz layout, :mod:`condflow.data.image_datasets`.

The image sources give 3D joints (``joints_3d``, from the SMPL ground truth,
:mod:`condflow.data.smpl_targets`) when the output space asks for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.data import Dataset

from condflow._checks import PositiveInt
from condflow._registry import Registry, check_settings_class
from condflow.body.camera import DEFAULT_FOCAL_LENGTH, DEFAULT_IMG_RES
from condflow.body.keypoints import BodyKeypoints
from condflow.body.model import BodyModel
from condflow.data.augmentation_rounds import AugmentationRounds
from condflow.data.h36m import h36m_lifting_tensors
from condflow.data.image_datasets import AugmentationConfig, ImageDataset
from condflow.data.smpl_targets import WithSMPLJoints, smpl_joints_table
from condflow.data.synthetic_images import SyntheticImageConfig, synthetic_image_set
from condflow.data.synthetic_keypoints import cached_keypoint_smpl_set, crop_camera
from condflow.data.synthetic_lifting import LiftingSetConfig, TensorDictDataset, cached_lifting_set
from condflow.inputs import InputSpec

__all__ = [
    "DATA_SOURCES",
    "DataRequest",
    "DataSourceEntry",
    "DataSplit",
    "H36MSource",
    "SMPL_KEYS",
    "SpinNpzSource",
    "SyntheticImagesSource",
    "SyntheticLiftingSource",
    "build_data",
    "register_data_source",
]

#: The keys of SMPL supervision (axis-angle pose, shape and what is annotated).
SMPL_KEYS = frozenset({"global_orient", "body_pose", "betas", "has_smpl", "has_betas", "has_3d",
                       "keypoints_3d"})


@dataclass(frozen=True)
class DataRequest:
    """What the model asks of a source: the run's ``seed`` (train set; the test set is drawn
    with ``seed + 1000``) and the target keys its output space reads."""

    seed: int = 0
    needs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DataSplit:
    """A source's data.

    Attributes:
        train, test: map-style datasets of dict items.
        train_joints_3d: the training targets ``[N, J, 3]`` (mm, root-relative) without
            augmentation, for normalization statistics; ``None`` without ``joints_3d``.
        train_smpl: the training SMPL parameters without augmentation, ``(pose [N, 72]
            axis-angle, betas [N, 10], has_smpl [N])`` (the mean-pose baseline); ``None``
            without SMPL targets.
        description: one line for people, e.g. ``"synthetic_lifting: 2000 test examples"``.
    """

    train: Dataset
    test: Dataset
    train_joints_3d: Callable[[], Tensor] | None = None
    train_smpl: Callable[[], tuple[Any, Any, Any]] | None = None
    description: str = ""


@dataclass(frozen=True)
class DataSourceEntry:
    """A registered source.

    Attributes:
        settings: the dataclass typing its config keys.
        factory: ``(settings, request) -> DataSplit``.
        inputs: ``settings -> InputSpec``: the input its items carry, known without building
            the data (so a trained model is rebuilt from its config alone).
        provides: the batch keys its items can carry (``request.needs`` selects the optional
            ones).
        camera: ``settings -> (img_res, focal_px)``: the pinhole camera, principal point at
            the centre of an ``img_res``-pixel square, under which its 2D keypoint targets
            are the normalized coordinates ``2 u / img_res - 1``; ``None`` without SMPL
            targets.
        fast_dev_run: ``--set`` overrides making its data tiny for ``--fast-dev-run``.
        root_centred_inputs: its 2D keypoints are seen by cameras looking at the root, so
            ``predict``/``fit`` centre new keypoints on the root by default.
    """

    settings: type
    factory: Callable[[Any, DataRequest], DataSplit]
    inputs: Callable[[Any], InputSpec]
    provides: frozenset[str]
    camera: Callable[[Any], tuple[int, float]] | None = None
    fast_dev_run: tuple[str, ...] = ()
    root_centred_inputs: bool = False


#: The registered data sources, by name.
DATA_SOURCES: Registry[DataSourceEntry] = Registry("data source")


def register_data_source(
    name: str,
    settings: type,
    factory: Callable[[Any, DataRequest], DataSplit],
    inputs: Callable[[Any], InputSpec],
    provides: frozenset[str] | set[str],
    camera: Callable[[Any], tuple[int, float]] | None = None,
    fast_dev_run: tuple[str, ...] = (),
    root_centred_inputs: bool = False,
    replace: bool = False,
) -> None:
    """Make ``data.source: name`` build ``factory(settings_instance, request)`` (see
    :class:`DataSourceEntry` for the arguments); the factory's items carry at least
    ``request.needs``."""
    check_settings_class(settings)
    for arg, value in (("factory", factory), ("inputs", inputs)):
        if not callable(value):
            raise ValueError(f"{arg}: expected a callable, got {type(value).__name__}")
    entry = DataSourceEntry(settings, factory, inputs, frozenset(provides), camera,
                            tuple(fast_dev_run), root_centred_inputs)
    DATA_SOURCES.register(name, entry, replace)


def build_data(source: str, settings: Any, request: DataRequest) -> DataSplit:
    """The :class:`DataSplit` of ``source``; ``ValueError`` naming ``data.source`` when it
    cannot give a key the model needs."""
    entry = DATA_SOURCES.get(source, "data.source")
    missing = sorted(request.needs - entry.provides)
    if missing:
        raise ValueError(f"data.source: {source!r} does not give {missing}, which the "
                         f"output space needs (it gives {sorted(entry.provides)})")
    return entry.factory(settings, request)


# -- keypoints → 3D joints ---------------------------------------------------------------------


def _tensor_split(train: dict[str, Tensor], test: dict[str, Tensor], description: str
                  ) -> DataSplit:
    return DataSplit(TensorDictDataset(train), TensorDictDataset(test),
                     train_joints_3d=lambda: train["joints_3d"], description=description)


#: The input of the lifting sets: Human3.6M-16 keypoints (x', y', confidence).
_H36M_KEYPOINTS = InputSpec("keypoints_2d", (16, 3))
_LIFTING_KEYS = frozenset({"keypoints_2d", "joints_3d"})


@dataclass
class SyntheticLiftingSource:
    """The synthetic lifting set: ``train_size`` examples drawn with the run's seed, the
    test set with ``seed + 1000``."""

    train_size: PositiveInt = 50000
    test_size: PositiveInt = 2000
    synthetic: LiftingSetConfig = field(default_factory=LiftingSetConfig)  # size/seed ignored
    body_model: str | None = None  # SMPL file/folder; None: $CONDFLOW_SMPL_PATH or synthetic


def _synthetic_lifting(s: SyntheticLiftingSource, r: DataRequest) -> DataSplit:
    body = BodyModel(s.body_model)

    def make(size: int, seed: int) -> dict[str, Tensor]:
        return cached_lifting_set(LiftingSetConfig(**{**vars(s.synthetic), "size": size,
                                                      "seed": seed}), body)

    return _tensor_split(make(s.train_size, r.seed), make(s.test_size, r.seed + 1000),
                         f"synthetic_lifting: {s.test_size} test examples "
                         f"(seed {r.seed + 1000})")


def _synthetic_lifting_smpl(s: SyntheticLiftingSource, r: DataRequest) -> DataSplit:
    body = BodyModel(s.body_model)

    def make(size: int, seed: int) -> dict[str, Tensor]:
        return cached_keypoint_smpl_set(LiftingSetConfig(**{**vars(s.synthetic), "size": size,
                                                            "seed": seed}), body)

    train, test = make(s.train_size, r.seed), make(s.test_size, r.seed + 1000)
    pose = torch.cat([train["global_orient"], train["body_pose"].flatten(1)], 1)
    return DataSplit(TensorDictDataset(train), TensorDictDataset(test),
                     train_joints_3d=lambda: train["joints_3d"],
                     train_smpl=lambda: (pose, train["betas"], train["has_smpl"]),
                     description=f"synthetic_lifting_smpl: {s.test_size} test examples "
                     f"(seed {r.seed + 1000})")


def _lifting_camera(s: SyntheticLiftingSource) -> tuple[int, float]:
    camera = crop_camera(s.synthetic)
    return camera.img_res, camera.focal_length


@dataclass
class H36MSource:
    """Human3.6M in VideoPose3D's files (see :mod:`condflow.data.h36m`)."""

    h36m_3d: str | None = None  # data_3d_h36m.npz
    h36m_2d: str | None = None  # data_2d_h36m_<detector>.npz
    h36m_cameras: str | None = None  # camera file (see condflow.data.h36m)
    h36m_stride: PositiveInt = 1  # keep every k-th frame
    h36m_train_subjects: list[str] = field(default_factory=lambda: ["S1", "S5", "S6", "S7", "S8"])
    h36m_test_subjects: list[str] = field(default_factory=lambda: ["S9", "S11"])


def _h36m(s: H36MSource, r: DataRequest) -> DataSplit:
    poses_3d, keypoints_2d, cameras = s.h36m_3d, s.h36m_2d, s.h36m_cameras
    if poses_3d is None or keypoints_2d is None or cameras is None:
        missing = [k for k in ("h36m_3d", "h36m_2d", "h36m_cameras") if getattr(s, k) is None]
        raise ValueError(f"data: source 'h36m' needs {missing}")

    def split(subjects: list[str]) -> dict[str, Tensor]:
        return h36m_lifting_tensors(poses_3d, keypoints_2d, cameras, subjects=tuple(subjects),
                                    stride=s.h36m_stride)

    test = split(s.h36m_test_subjects)
    return _tensor_split(split(s.h36m_train_subjects), test,
                         f"h36m: subjects {', '.join(s.h36m_test_subjects)}")


# -- images → SMPL -----------------------------------------------------------------------------

_IMAGE_KEYS = frozenset({"img", "keypoints_2d", "joints_3d", "has_joints_3d"}) | SMPL_KEYS


def _prohmr_augmentation() -> AugmentationConfig:
    return AugmentationConfig(scale_factor=0.3, rot_factor=30.0, rot_prob=0.6, flip_prob=0.5,
                              color_factor=0.2, trans_factor=0.02)


@dataclass
class SyntheticImagesSource:
    """The rendered image set: ``train_size`` images drawn with the run's seed, the test set
    (no 2D-only images) with ``seed + 1000``."""

    res: PositiveInt = 64  # crop side fed to the network (the sets are rendered at it)
    train_size: PositiveInt = 10000
    test_size: PositiveInt = 500
    synthetic: SyntheticImageConfig = field(default_factory=SyntheticImageConfig)  # size/seed/res
    body_model: str | None = None  # SMPL file/folder; None: $CONDFLOW_SMPL_PATH or synthetic
    augmentation: AugmentationConfig = field(default_factory=_prohmr_augmentation)  # ProHMR's
    augmentation_rounds: PositiveInt = 100  # training set = each image this many times


@dataclass
class SpinNpzSource:
    """Image datasets in SPIN's npz layout (training annotations with or without SMPL, test
    annotations with SMPL ground truth)."""

    res: PositiveInt = 64  # crop side fed to the network
    train_npz: str | None = None  # training annotations
    train_img_dir: str | None = None  # folder the training imgnames are relative to
    test_npz: str | None = None  # test annotations (with SMPL ground truth)
    test_img_dir: str | None = None  # folder of the test images
    body_model: str | None = None  # SMPL file/folder; None: $CONDFLOW_SMPL_PATH or synthetic
    augmentation: AugmentationConfig = field(default_factory=_prohmr_augmentation)  # ProHMR's
    augmentation_rounds: PositiveInt = 100  # training set = each image this many times


_Paths = tuple[str | Path, str | Path, str | Path, str | Path]


def _image_split(paths: _Paths, s: SyntheticImagesSource | SpinNpzSource, r: DataRequest,
                 description: str) -> DataSplit:
    train = ImageDataset(paths[0], paths[1], layout="spin", train=True, res=s.res,
                         augmentation=s.augmentation, seed=r.seed)
    images = ImageDataset(paths[2], paths[3], layout="spin", train=False, res=s.res)
    rounds = AugmentationRounds(train, s.augmentation_rounds)
    train_set: Dataset = rounds
    test: Dataset = images
    joints: Callable[[], Tensor] | None = None
    if "joints_3d" in r.needs:  # the skeleton of the SMPL ground truth, per (augmented) item
        keypoints = BodyKeypoints(BodyModel(s.body_model))
        has = train.has_smpl > 0
        train_set, test = WithSMPLJoints(rounds, keypoints), WithSMPLJoints(images, keypoints)

        def joints() -> Tensor:
            return smpl_joints_table(train.pose[has], train.betas[has], keypoints)

    return DataSplit(train_set, test, train_joints_3d=joints,
                     train_smpl=lambda: (train.pose, train.betas, train.has_smpl),
                     description=description)


def _image_inputs(s: SyntheticImagesSource | SpinNpzSource) -> InputSpec:
    return InputSpec("images", (3, s.res, s.res))


def _crop_camera(s: SyntheticImagesSource | SpinNpzSource) -> tuple[int, float]:
    """ProHMR's crop camera: 5000 px at 224 px crops, scaled to the crop size."""
    return s.res, DEFAULT_FOCAL_LENGTH * s.res / DEFAULT_IMG_RES


def _synthetic_images(s: SyntheticImagesSource, r: DataRequest) -> DataSplit:
    base = {**vars(s.synthetic), "res": s.res}
    train = synthetic_image_set(
        SyntheticImageConfig(**{**base, "size": s.train_size, "seed": r.seed}), s.body_model)
    test = synthetic_image_set(
        SyntheticImageConfig(**{**base, "size": s.test_size, "seed": r.seed + 1000,
                                "two_d_only": 0.0}), s.body_model)
    return _image_split((train.npz, train.img_dir, test.npz, test.img_dir), s, r,
                        f"synthetic_images: {s.test_size} test images (seed {r.seed + 1000})")


def _spin_npz(s: SpinNpzSource, r: DataRequest) -> DataSplit:
    keys = ("train_npz", "train_img_dir", "test_npz", "test_img_dir")
    missing = [k for k in keys if getattr(s, k) is None]
    if missing:
        raise ValueError(f"data: source 'spin_npz' needs {missing}")
    paths = cast(tuple[str, str, str, str], tuple(getattr(s, k) for k in keys))  # none None
    return _image_split(paths, s, r, f"spin_npz: {s.test_npz}")


register_data_source("synthetic_lifting", SyntheticLiftingSource, _synthetic_lifting,
                     lambda s: _H36M_KEYPOINTS, _LIFTING_KEYS | {"family"},
                     camera=lambda s: (s.synthetic.image_size, s.synthetic.focal_px),
                     fast_dev_run=("data.train_size=256", "data.test_size=32"),
                     root_centred_inputs=True)
register_data_source("synthetic_lifting_smpl", SyntheticLiftingSource, _synthetic_lifting_smpl,
                     lambda s: InputSpec("keypoints_2d", (24, 3)),
                     _LIFTING_KEYS | SMPL_KEYS | {"family", "transl", "cam"}, _lifting_camera,
                     fast_dev_run=("data.train_size=256", "data.test_size=32"),
                     root_centred_inputs=True)
register_data_source("h36m", H36MSource, _h36m, lambda s: _H36M_KEYPOINTS, _LIFTING_KEYS,
                     fast_dev_run=("data.h36m_stride=50",))
_IMAGES_FAST = ("data.train_size=16", "data.test_size=8", "data.augmentation_rounds=1")
register_data_source("synthetic_images", SyntheticImagesSource, _synthetic_images,
                     _image_inputs, _IMAGE_KEYS, _crop_camera, _IMAGES_FAST)
register_data_source("spin_npz", SpinNpzSource, _spin_npz, _image_inputs, _IMAGE_KEYS,
                     _crop_camera, ("data.augmentation_rounds=1",))
