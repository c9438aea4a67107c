"""Numpy models behind one :class:`Model` protocol, and the local-training step.

Parameters are always one flat ``float64`` vector; each model class documents its layout.
"""

from heliosfl.models.base import FloatArray, IntArray, Model, check_params
from heliosfl.models.logistic import LogisticRegression
from heliosfl.models.mlp import MLP
from heliosfl.models.registry import (
    MODEL_TYPES,
    SymmetricInitWarning,
    make_model,
    model_from_spec,
    prepare_model,
)
from heliosfl.models.sgd import LocalResult, TrainingStopped, local_sgd
from heliosfl.models.softmax import SoftmaxRegression

__all__ = [
    "MLP",
    "MODEL_TYPES",
    "FloatArray",
    "IntArray",
    "LocalResult",
    "LogisticRegression",
    "Model",
    "SoftmaxRegression",
    "SymmetricInitWarning",
    "TrainingStopped",
    "check_params",
    "local_sgd",
    "make_model",
    "model_from_spec",
    "prepare_model",
]
