"""The course's data: the names dataset and the train/dev/test split of the lecture."""
from data.names import (
    DataError, NAMES_URL, NAMES_SHA256, build_dataset, load_split, load_words, vocabulary,
)

__all__ = [
    "DataError", "NAMES_URL", "NAMES_SHA256", "build_dataset", "load_split", "load_words", "vocabulary",
]
