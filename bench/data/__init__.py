"""Data layer: readers → ``CXRDataset`` → decode-once pixel cache and patient-grouped splits."""

from bench.data.cache import load_pixels
from bench.data.dataset import CXRDataset, DataError
from bench.data.readers import DataWarning, load_dataset
from bench.data.splits import Split, check_no_leak, make_splits, split_frame

__all__ = [
    "CXRDataset",
    "DataError",
    "DataWarning",
    "Split",
    "check_no_leak",
    "load_dataset",
    "load_pixels",
    "make_splits",
    "split_frame",
]
