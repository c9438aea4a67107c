"""Data for simulated nodes: bundled real datasets, synthetic sites and partitioners.

:class:`NodeData` is what one node holds. :func:`load_dataset` gives a bundled dataset
(offline) as a standardised (train, test) pair; :func:`partition` shares a dataset out over
nodes (IID, label skew, quantity skew); :func:`synthetic_sites` generates many sites with
label and covariate shift directly.
"""

from heliosfl.data.datasets import DATASETS, DatasetInfo, Standardizer, load_dataset
from heliosfl.data.nodedata import NodeData
from heliosfl.data.partition import PartitionScheme, partition
from heliosfl.data.synthetic import synthetic_sites

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "NodeData",
    "PartitionScheme",
    "Standardizer",
    "load_dataset",
    "partition",
    "synthetic_sites",
]
