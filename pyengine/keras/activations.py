"""Activation functions by Keras name: ``activations.get("relu")`` -> a function on Tensors.

    relu, sigmoid, softmax, tanh, gelu, linear, silu (= swish), elu, softplus, softsign, leaky_relu,
    exponential

>>> from pyengine.keras import activations
>>> activations.get("relu")(pyengine.tensor([-1.0, 2.0]))
tensor([0., 2.])

``get`` also accepts None (-> linear) and any callable (returned as is). ``serialize`` gives back the
name, for layer configs.
"""
import pyengine as pe

__all__ = ["get", "serialize", "deserialize", "relu", "sigmoid", "softmax", "tanh", "gelu", "linear", "silu",
           "swish", "elu", "softplus", "softsign", "leaky_relu", "exponential"]


def relu(x):
    """max(x, 0)."""
    return pe.relu(x)


def sigmoid(x):
    """1 / (1 + e^-x)."""
    return pe.sigmoid(x)


def softmax(x, axis=-1):
    """e^x / sum(e^x) along ``axis`` (the last by default)."""
    return pe.softmax(x, dim=axis)


def tanh(x):
    return pe.tanh(x)


def gelu(x, approximate=False):
    """x * Phi(x) (Hendrycks & Gimpel 2016); exact (erf) by default, as Keras."""
    return pe.gelu(x, approximate="tanh" if approximate else "none")


def linear(x):
    """The identity (Keras's name for 'no activation')."""
    return x


def silu(x):
    """x * sigmoid(x), also called swish."""
    return pe.silu(x)


swish = silu


def elu(x, alpha=1.0):
    """x if x > 0 else alpha (e^x - 1)."""
    return pe.where(x > 0, x, (pe.exp(pe.minimum(x, pe.zeros_like(x))) - 1.0) * alpha)


def softplus(x):
    """log(1 + e^x), computed as max(x, 0) + log(1 + e^-|x|) so that it never overflows."""
    return pe.relu(x) + pe.log(pe.exp(-pe.abs(x)) + 1.0)


def softsign(x):
    """x / (1 + |x|)."""
    return x / (pe.abs(x) + 1.0)


def leaky_relu(x, negative_slope=0.2):
    """x if x > 0 else negative_slope * x (Keras's default slope is 0.2)."""
    return pe.where(x > 0, x, x * negative_slope)


def exponential(x):
    return pe.exp(x)


_BY_NAME = {"relu": relu, "sigmoid": sigmoid, "softmax": softmax, "tanh": tanh, "gelu": gelu, "linear": linear,
            "silu": silu, "swish": silu, "elu": elu, "softplus": softplus, "softsign": softsign,
            "leaky_relu": leaky_relu, "exponential": exponential}


def get(identifier):
    """The activation function for ``identifier``: a name, None (linear) or a callable.

    >>> get("tanh") is tanh, get(None) is linear
    (True, True)
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier.lower()]
        except KeyError:
            raise ValueError(f"Unknown activation function: {identifier!r}. Known: "
                             f"{', '.join(sorted(_BY_NAME))}") from None
    if callable(identifier):
        return identifier
    raise TypeError(f"Could not interpret activation function identifier: {identifier!r}")


def serialize(fn):
    """The name of an activation function (for configs); a custom function is named by ``__name__``."""
    for name, f in _BY_NAME.items():
        if f is fn:
            return name
    return getattr(fn, "__name__", repr(fn))


def deserialize(name, custom_objects=None):
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    return get(name)
