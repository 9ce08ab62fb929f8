"""A training set repeated in rounds, each round with fresh augmentation draws."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from condflow._checks import check_int
from condflow.data.image_datasets import ImageDataset

__all__ = ["AugmentationRounds"]


class AugmentationRounds(Dataset):
    """A training set seen ``rounds`` times per pass, each round with fresh augmentation.

    Item ``i`` is image ``i mod N`` augmented with the draws of round ``i // N``, so the
    augmentation depends only on the index: the same under any number of workers and after
    resuming.
    """

    def __init__(self, dataset: ImageDataset, rounds: int) -> None:
        check_int("augmentation_rounds", rounds, 1)
        self.dataset, self.rounds = dataset, rounds

    def __len__(self) -> int:
        return len(self.dataset) * self.rounds

    def __getitem__(self, index: int) -> dict[str, Any]:
        round_, image = divmod(int(index), len(self.dataset))
        self.dataset.set_epoch(round_)
        return self.dataset[image]
