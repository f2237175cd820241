"""Weight initializers by Keras name, in Keras's layout (a Dense kernel is (fan_in, fan_out)).

    glorot_uniform  U(-l, l), l = sqrt(6 / (fan_in + fan_out))        (Glorot & Bengio 2010)
    glorot_normal   truncated N(0, sqrt(2 / (fan_in + fan_out)))
    he_uniform      U(-l, l), l = sqrt(6 / fan_in)                      (He et al. 2015)
    he_normal       truncated N(0, sqrt(2 / fan_in))
    lecun_uniform   U(-l, l), l = sqrt(3 / fan_in)
    lecun_normal    truncated N(0, sqrt(1 / fan_in))
    orthogonal      Q of the QR decomposition of a normal matrix          (Saxe et al. 2014)
    uniform         U(-0.05, 0.05) (Keras's RandomUniform default; used by Embedding)
    normal          N(0, 0.05)
    zeros, ones

Random numbers come from pyengine's default generator, so ``pyengine.manual_seed`` (or
``keras.utils.set_random_seed``) makes a model's initial weights reproducible.

>>> w = initializers.get("glorot_uniform")((4, 3))     # a NumPy float32 array
"""
import math

import numpy as np

from ..random import _rng

__all__ = ["get", "serialize", "Initializer", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal",
           "LecunUniform", "LecunNormal", "Orthogonal", "RandomUniform", "RandomNormal", "Zeros", "Ones",
           "Constant"]


def _fans(shape):
    """(fan_in, fan_out) of a Keras-layout weight: a 2-D kernel (in, out); a conv kernel (*k, in, out)."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated_normal(shape, std):
    """N(0, std) redrawn beyond 2 std; the std of that truncated law is std * 0.8796, so it is scaled
    back up (as Keras's VarianceScaling does)."""
    std = std / 0.87962566103423978
    x = _rng().standard_normal(shape)
    bad = np.abs(x) > 2
    while bad.any():
        x[bad] = _rng().standard_normal(int(bad.sum()))
        bad = np.abs(x) > 2
    return x * std


class Initializer:
    """Base class: ``init(shape, dtype="float32")`` returns a NumPy array."""

    def __call__(self, shape, dtype="float32"):
        return np.asarray(self.sample(tuple(int(s) for s in shape)), dtype=dtype)

    def sample(self, shape):
        raise NotImplementedError

    def get_config(self):
        return {}


class _Scaling(Initializer):
    mode = "fan_avg"
    distribution = "uniform"
    scale = 1.0

    def sample(self, shape):
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        var = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * var)
            return _rng().uniform(-limit, limit, shape)
        return _truncated_normal(shape, math.sqrt(var))


class GlorotUniform(_Scaling):
    """U(-l, l) with l = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""


class GlorotNormal(_Scaling):
    distribution = "normal"


class HeUniform(_Scaling):
    mode, scale = "fan_in", 2.0


class HeNormal(_Scaling):
    mode, scale, distribution = "fan_in", 2.0, "normal"


class LecunUniform(_Scaling):
    mode = "fan_in"


class LecunNormal(_Scaling):
    mode, distribution = "fan_in", "normal"


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix of the flattened shape (rows = prod(shape[:-1]), cols = shape[-1])."""

    def __init__(self, gain=1.0):
        self.gain = gain

    def sample(self, shape):
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = _rng().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))  # makes the result uniform over orthogonal matrices
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval, self.maxval = minval, maxval

    def sample(self, shape):
        return _rng().uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05):
        self.mean, self.stddev = mean, stddev

    def sample(self, shape):
        return _rng().normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev}


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = value

    def sample(self, shape):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class Zeros(Constant):
    def __init__(self):
        super().__init__(0.0)

    def get_config(self):
        return {}


class Ones(Constant):
    def __init__(self):
        super().__init__(1.0)

    def get_config(self):
        return {}


_BY_NAME = {"glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_uniform": HeUniform,
            "he_normal": HeNormal, "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
            "orthogonal": Orthogonal, "uniform": RandomUniform, "random_uniform": RandomUniform,
            "normal": RandomNormal, "random_normal": RandomNormal, "zeros": Zeros, "zero": Zeros,
            "ones": Ones, "one": Ones, "constant": Constant}
_CLASSES = {c.__name__: c for c in set(_BY_NAME.values())}


def get(identifier):
    """An Initializer for a name ("glorot_uniform"), a class name ("GlorotUniform"), a config dict
    ({"class_name": ..., "config": ...}), an Initializer or any callable ``f(shape, dtype)``."""
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown initializer: {identifier!r}. Known: {', '.join(sorted(_BY_NAME))}")
        return cls()
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"Unknown initializer config: {identifier!r}")
        return cls(**identifier.get("config", {}))
    if callable(identifier):
        return identifier
    raise TypeError(f"Could not interpret initializer identifier: {identifier!r}")


def serialize(init):
    """A JSON-able description of an initializer (for layer configs)."""
    if isinstance(init, Initializer):
        return {"class_name": type(init).__name__, "config": init.get_config()}
    return getattr(init, "__name__", repr(init))
