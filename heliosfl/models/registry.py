"""Build models by name, as the guide's ``register_model(..., "neural_network", ...)`` does."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from heliosfl.errors import ConfigError
from heliosfl.models.base import FloatArray, Model, _NumpyModel, check_params
from heliosfl.models.logistic import LogisticRegression
from heliosfl.models.mlp import MLP
from heliosfl.models.softmax import SoftmaxRegression

__all__ = ["MODEL_TYPES", "SymmetricInitWarning", "make_model", "model_from_spec", "prepare_model"]

#: Model names accepted by :func:`make_model`, with the class each one builds.
#: ``"neural_network"`` and ``"deep_neural_network"`` are the product guide's names for
#: :class:`MLP`.
MODEL_TYPES: Mapping[str, type[_NumpyModel]] = MappingProxyType(
    {
        "deep_neural_network": MLP,
        "logistic_regression": LogisticRegression,
        "mlp": MLP,
        "neural_network": MLP,
        "softmax_regression": SoftmaxRegression,
    }
)


def _canonical(model_type: object) -> str:
    allowed = "one of " + ", ".join(repr(name) for name in sorted(MODEL_TYPES))
    if not isinstance(model_type, str):
        raise ConfigError("model_type", model_type, allowed)
    name = model_type.strip().lower().replace("-", "_").replace(" ", "_")
    if name not in MODEL_TYPES:
        raise ConfigError("model_type", model_type, allowed)
    return name


def make_model(model_type: str, **kwargs: object) -> Model:
    """Build a model from its registry name and constructor arguments.

    Parameters
    ----------
    model_type : str
        A key of :data:`MODEL_TYPES`; case is ignored and ``-`` or spaces count as ``_``
        (``"Neural Network"`` works).
    **kwargs
        The class's constructor arguments, e.g. ``input_dim=30, hidden_layers=(32,),
        num_classes=2`` for an MLP.

    Returns
    -------
    Model
        The new model.

    Raises
    ------
    ConfigError
        If ``model_type`` is unknown, a required argument is missing, an argument is not
        accepted by that model, or an argument's value is invalid.

    Examples
    --------
    >>> make_model("neural_network", input_dim=30, hidden_layers=(32,), num_classes=2)
    MLP(input_dim=30, hidden_layers=(32,), num_classes=2, activation='relu')
    """
    name = _canonical(model_type)
    cls = MODEL_TYPES[name]
    signature = inspect.signature(cls)
    accepted = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    unknown = sorted(set(kwargs) - {p.name for p in accepted})
    if unknown:
        listing = ", ".join(repr(p.name) for p in sorted(accepted, key=lambda p: p.name))
        raise ConfigError(f"each argument of model_type {name!r}", unknown[0], f"one of {listing}")
    for parameter in accepted:
        if parameter.default is parameter.empty and parameter.name not in kwargs:
            raise ConfigError(
                parameter.name,
                None,
                f"given for model_type {name!r}",
                f"Pass {parameter.name}=... to make_model or register_model.",
            )
    return cls(**kwargs)


def model_from_spec(spec: Mapping[str, object]) -> Model:
    """Rebuild a model from the output of its ``to_spec()``.

    Parameters
    ----------
    spec : Mapping
        ``{"model_type": ..., **constructor arguments}``.

    Returns
    -------
    Model
        A model equal to the one that produced ``spec``.

    Raises
    ------
    ConfigError
        If ``spec`` has no ``"model_type"`` or :func:`make_model` refuses it.
    """
    if not isinstance(spec, Mapping) or "model_type" not in spec:
        raise ConfigError("spec", spec, "a mapping with a 'model_type' key")
    name = _canonical(spec["model_type"])
    arguments = {str(key): value for key, value in spec.items() if key != "model_type"}
    return make_model(name, **arguments)


class SymmetricInitWarning(UserWarning):
    """Initial parameters of a neural network are all equal, so hidden units stay identical."""


def prepare_model(
    model_type: str | Model,
    initial_params: object,
    rng: np.random.Generator,
    *,
    label: str = "the model",
    **model_kwargs: object,
) -> tuple[Model, FloatArray]:
    """Build a model and its initial parameter vector, as ``register_model`` needs them.

    Parameters
    ----------
    model_type : str or Model
        A :data:`MODEL_TYPES` name (built with ``model_kwargs``) or a model instance.
    initial_params : array-like or None
        A flat vector of ``num_params`` values, or ``None`` to draw them from ``rng``.
    rng : numpy.random.Generator
        Source of drawn initial parameters.
    label : str
        How warnings name the model.
    **model_kwargs
        Architecture arguments for a named model type.

    Returns
    -------
    tuple of (Model, ndarray)
        The model and its initial parameters (float64, 1-D).

    Raises
    ------
    ConfigError
        For an unknown model type, a bad architecture, arguments given with a model
        instance, or a parameter vector of the wrong length (both lengths in the message).

    Warns
    -----
    SymmetricInitWarning
        If a neural network's initial parameters are all equal (zeros, as in the guide):
        its hidden units would stay identical and it would learn like a linear model.
    """
    if isinstance(model_type, str):
        model = make_model(model_type, **model_kwargs)
    elif isinstance(model_type, Model):
        if model_kwargs:
            raise ConfigError(
                "model_kwargs", sorted(model_kwargs), "empty when a Model instance is given"
            )
        model = model_type
    else:
        raise ConfigError("model_type", model_type, "a model type name or a Model instance")
    if initial_params is None:
        return model, model.init_params(rng)
    params = check_params(model, initial_params, field="initial_params")
    if getattr(model, "hidden_layers", ()) and params.size > 1 and np.all(params == params[0]):
        warnings.warn(
            f"initial_params of {label} are all {params[0]:g}: the hidden units of a neural "
            "network start identical and stay identical. Pass initial_params=None to draw "
            "them from the seed.",
            SymmetricInitWarning,
            stacklevel=3,
        )
    return model, params
