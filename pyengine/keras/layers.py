"""Keras layers on pyengine: lazy input shapes, Keras names, Keras weight layouts and initialisers.

    Input, InputLayer             where a model starts (a symbolic tensor of a given shape)
    Dense                         activation(x @ kernel + bias)
    Embedding                     integer ids -> vectors
    LSTM, GRU, SimpleRNN          recurrent layers (batch first) on pyengine's fused nn.LSTM / nn.GRU / nn.RNN
    Bidirectional                 one of them both ways
    Conv1D, Conv2D                convolution (channels_last by default) on pyengine's F.conv1d / F.conv2d
    Conv2DTranspose, DepthwiseConv2D, UpSampling2D
    MaxPooling1D/2D, AveragePooling1D/2D, GlobalAveragePooling2D, GlobalMaxPooling2D, ZeroPadding2D
    BatchNormalization            Keras's momentum and epsilon on pyengine's F.batch_norm
    Dropout, Flatten, Reshape, Activation, Lambda
    LayerNormalization, GlobalAveragePooling1D, GlobalMaxPooling1D, Concatenate, Add

A layer creates its weights on its first call, from the shape of what it is called on (``build``),
so only the output size is given: ``Dense(64)``, not ``Dense(in, 64)``. Calling a layer on a real
array or Tensor computes; calling it on the symbolic tensor of ``Input`` records a graph (the
functional API, see ``models.Model``).

>>> from pyengine.keras import layers
>>> dense = layers.Dense(3, activation="relu")
>>> dense.built
False
>>> dense(np.ones((2, 5), np.float32)).shape      # builds a (5, 3) kernel on this first call
pyengine.Size([2, 3])
>>> [w.shape for w in dense.get_weights()]
[(5, 3), (3,)]

Every layer is a ``pyengine.nn.Module``: its weights are Parameters (``layer.trainable_weights``) that
pyengine optimizers update. Where the fast pyengine kernel wants another layout than Keras, the layer
keeps pyengine's and converts at the edges: a Dense kernel is stored as ``weight`` (units, in) for the
fused GEMM and read as ``layer.kernel`` (in, units); ``get_weights``/``set_weights`` always speak Keras's
layout, so weights move between pyengine and Keras unchanged.
"""
import functools
import inspect
import numbers

import numpy as np

import pyengine as pe
from .. import nn
from ..nn import functional as F
from ..nn.modules.rnn import GRULayer, LSTMLayer, RNNLayer
from ..nn.parameter import Parameter
from ..random import _rng
from ..tensor import Tensor
from . import activations, initializers, regularizers
from .backend import snake_case, unique_object_name

__all__ = ["KerasTensor", "Layer", "InputLayer", "Input", "Dense", "Embedding", "LSTM", "GRU", "SimpleRNN",
           "Bidirectional", "Dropout", "Flatten", "Reshape", "Activation", "Lambda", "LayerNormalization",
           "GlobalAveragePooling1D", "GlobalMaxPooling1D", "Concatenate", "Add", "Conv1D", "Conv2D", "MaxPooling1D",
           "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
           "BatchNormalization", "ZeroPadding2D", "Conv2DTranspose", "DepthwiseConv2D", "UpSampling2D", "serialize",
           "deserialize", "get_layer_class"]


# ---------------------------------------------------------------------- symbolic tensors (functional API)


class KerasTensor:
    """A symbolic tensor: a shape (None where unknown, e.g. the batch) and the layer call that makes it.

    ``Input(shape=(4,))`` returns one; calling a layer on it returns another, so
    ``Model(inputs, outputs)`` can replay the recorded calls on real data.
    """

    def __init__(self, shape, dtype="float32", node=None, index=0):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.node = node      # the _Node (layer call) that outputs this tensor; None for an Input
        self.index = index    # which of that call's outputs

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        layer = self.node.layer.name if self.node is not None else "?"
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, made by layer '{layer}'>"


class _Node:
    """One call of a layer in a functional graph: its inputs (KerasTensors) and outputs."""

    def __init__(self, layer, inputs, kwargs):
        self.layer, self.inputs, self.kwargs = layer, inputs, kwargs
        self.outputs = []


def _flatten(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _is_symbolic(x):
    return any(isinstance(t, KerasTensor) for t in _flatten(x))


def _as_tensor(x, float_layer):
    """A Tensor for an array-like input; float layers get float32 (Keras's autocast of inputs)."""
    if isinstance(x, Tensor):
        if float_layer and x._data.dtype != np.float32:
            return Tensor(x._data.astype(np.float32)) if x.grad_fn is None else x.float()
        return x
    arr = np.asarray(x)
    if float_layer and arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return pe.from_numpy(np.ascontiguousarray(arr))


def _shape_of(x):
    if isinstance(x, (list, tuple)):
        return [_shape_of(t) for t in x]
    return tuple(x.shape)


def _with_batch_none(shape):
    if isinstance(shape, list):
        return [_with_batch_none(s) for s in shape]
    return (None,) + tuple(shape[1:]) if shape else shape


# ---------------------------------------------------------------------- base class


class Layer(nn.Module):
    """Base class of Keras layers: lazy ``build``, ``call``, names, weights in Keras's order.

    Subclasses implement ``build(input_shape)`` (create weights with ``add_weight``; the shape has None
    for the batch), ``call(inputs[, training])`` and, for model summaries and the functional API,
    ``compute_output_shape(input_shape)``; ``get_config`` returns the constructor's arguments.

    >>> class Scale(Layer):
    ...     def build(self, input_shape):
    ...         self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")
    ...     def call(self, x):
    ...         return x * self.w
    >>> Scale()(np.ones((2, 3), np.float32)).shape
    pyengine.Size([2, 3])

    ``training`` is False unless ``fit``/``train_step`` passes True (Keras semantics: calling a model
    outside ``fit`` runs in inference mode, dropout off).
    """

    _float_inputs = True     # cast inputs to float32 (Embedding turns this off)
    supports_masking = False  # True: a padding mask coming in goes on, unchanged, to the next layer

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        if build is not None and not getattr(build, "_marks_built", False):
            @functools.wraps(build)
            def build_and_mark(self, input_shape=None, *args, **kw):
                out = build(self, input_shape, *args, **kw)
                self.built = True  # calling build() directly builds the layer too, as in Keras
                if self._build_input_shape is None and input_shape is not None:
                    self._build_input_shape = _with_batch_none(
                        list(input_shape) if isinstance(input_shape, list) else tuple(input_shape))
                return out
            build_and_mark._marks_built = True
            cls.build = build_and_mark

    def __init__(self, trainable=True, name=None, dtype=None, input_shape=None, batch_input_shape=None,
                 input_dim=None, batch_size=None, **kwargs):
        super().__init__()
        kwargs.pop("autocast", None)
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {sorted(kwargs)}")
        if name is not None and (not isinstance(name, str) or not name or "." in name):
            raise ValueError(f"{type(self).__name__}: name must be a non-empty string without '.', got {name!r}")
        self.name = name or unique_object_name(snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        self.built = False
        self.dtype = dtype or "float32"
        if batch_input_shape is None and input_shape is not None:
            batch_input_shape = (batch_size,) + tuple(input_shape)
        elif batch_input_shape is None and input_dim is not None:
            batch_input_shape = (batch_size, input_dim)
        self._batch_input_shape = tuple(batch_input_shape) if batch_input_shape is not None else None
        self._build_input_shape = None
        self._own_weights = []      # Parameters created by add_weight, in creation order
        self._regularizers = []     # (Parameter, regularizer)
        params = inspect.signature(self.call).parameters
        self._accepts_training, self._accepts_mask = "training" in params, "mask" in params
        self._inbound_nodes = []

    # -------------------------------------------------------------- calling
    def __call__(self, inputs, *args, **kwargs):
        if _is_symbolic(inputs):
            return self._call_symbolic(inputs, args, kwargs)
        if isinstance(inputs, (list, tuple)) and all(isinstance(t, (Tensor, np.ndarray)) for t in inputs):
            inputs = [_as_tensor(t, self._float_inputs) for t in inputs]
        else:
            inputs = _as_tensor(inputs, self._float_inputs)
        if not self.built:
            self._maybe_build(_shape_of(inputs))
        elif self._batch_input_shape is not None:
            self._check_input_shape(_shape_of(inputs))
        training = kwargs.pop("training", None)
        if self._accepts_training:
            kwargs["training"] = bool(training)
        mask = kwargs.pop("mask", None)
        if self._accepts_mask:
            kwargs["mask"] = mask
        return super().__call__(inputs, *args, **kwargs)

    def forward(self, *args, **kwargs):
        return self.call(*args, **kwargs)

    def call(self, inputs):
        """The layer's computation on Tensors; override it."""
        return inputs

    def _call_symbolic(self, inputs, args, kwargs):
        shapes = [t.shape for t in inputs] if isinstance(inputs, (list, tuple)) else inputs.shape
        if not self.built:
            self._maybe_build(shapes)
        out_shape = self.compute_output_shape(shapes)
        node = _Node(self, inputs, kwargs)
        if isinstance(out_shape, list):
            node.outputs = [KerasTensor(s, "float32", node, i) for i, s in enumerate(out_shape)]
            result = list(node.outputs)
        else:
            node.outputs = [KerasTensor(out_shape, "float32", node, 0)]
            result = node.outputs[0]
        self._inbound_nodes.append(node)
        return result

    def _check_input_shape(self, shape):
        want = self._batch_input_shape
        if want is None or isinstance(shape, list):
            return
        if len(want) != len(shape) or any(w is not None and g is not None and w != g
                                          for w, g in zip(want[1:], shape[1:])):
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: expected shape "
                             f"{want}, found shape {tuple(shape)}")

    def _maybe_build(self, input_shape):
        input_shape = _with_batch_none(input_shape)
        self._check_input_shape(input_shape)
        self.build(input_shape)
        self._build_input_shape = input_shape
        self.built = True

    def build(self, input_shape):
        """Create the weights for inputs of ``input_shape`` (batch dim None); called once, on first use."""
        self.built = True

    def compute_output_shape(self, input_shape):
        """The output shape for ``input_shape`` (None = unknown); the identity unless overridden."""
        return input_shape

    def compute_mask(self, inputs, mask=None):
        """The padding mask of this layer's output, (batch, timesteps) bool, or None. Models pass it along:
        ``Embedding(mask_zero=True)`` makes it, LSTM and GlobalAveragePooling1D use it, and layers with
        ``supports_masking`` hand it on."""
        return mask if self.supports_masking else None

    # -------------------------------------------------------------- weights
    def _add_param(self, attr, array, trainable=True, regularizer=None):
        p = Parameter(np.ascontiguousarray(array, dtype=np.float32), requires_grad=trainable and self._trainable)
        setattr(self, attr, p)
        self._own_weights.append(p)
        if regularizer is not None:
            self._regularizers.append((p, regularizer))
        return p

    def add_weight(self, name=None, shape=None, dtype=None, initializer="glorot_uniform", regularizer=None,
                   trainable=True, **kwargs):
        """Create, register and return a weight (a Parameter) of ``shape``, as Keras's ``add_weight``.

        ``initializer`` is a name ("zeros", "glorot_uniform", ...) or an initializer; ``regularizer``
        adds its penalty to the training loss.
        """
        if shape is None:
            raise ValueError(f"{self.name}.add_weight: shape is required")
        shape = tuple(int(s) for s in shape)
        if name is None or name in self._parameters:
            base = name or "weight"
            name = base if base not in self._parameters else f"{base}_{len(self._own_weights)}"
        value = initializers.get(initializer)(shape, "float32")
        return self._add_param(name, value, trainable, regularizers.get(regularizer))

    def __setattr__(self, name, value):
        # ``self.w = self.add_weight(...)``: the Parameter is registered already (under add_weight's name);
        # keep it as a plain attribute too, not a second registration
        if isinstance(value, Parameter) and any(value is p for p in self.__dict__.get("_own_weights", ())):
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)

    @property
    def weights(self):
        """All weights (Parameters) in Keras's order: this layer's own, then its sublayers'."""
        out, seen = [], set()
        for p in self._own_weights:
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        for m in self._modules.values():
            subs = m.weights if isinstance(m, Layer) else list(m.parameters()) if m is not None else []
            for p in subs:
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    @property
    def trainable_weights(self):
        return [w for w in self.weights if w.requires_grad] if self._trainable else []

    @property
    def non_trainable_weights(self):
        trainable = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trainable]

    trainable_variables = trainable_weights
    variables = weights

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """Freeze (False) or unfreeze (True) the layer's weights (``compile`` again afterwards, as in Keras)."""
        self._trainable = bool(value)
        for w in self.weights:
            w.requires_grad_(self._trainable)
        for m in self._modules.values():
            if isinstance(m, Layer):
                m.trainable = value

    def _weight_owners(self):
        """Where the weights live, in Keras's order: this layer's own Parameters, then each sublayer (which
        converts its own layouts), then the Parameters of plain pyengine modules."""
        out, seen = [], set()
        for p in self._own_weights:
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        for m in self._modules.values():
            if isinstance(m, Layer):
                out.append(m)
            elif m is not None:
                for p in m.parameters():
                    if id(p) not in seen:
                        seen.add(id(p))
                        out.append(p)
        return out

    def get_weights(self):
        """The weights as NumPy arrays, in Keras's order and layout (a Dense kernel is (in, units))."""
        out = []
        for owner in self._weight_owners():
            out.extend(owner.get_weights() if isinstance(owner, Layer) else [owner._data.copy()])
        return out

    def set_weights(self, weights):
        """Set the weights from NumPy arrays in Keras's order and layout (as ``get_weights`` returns)."""
        weights = list(weights)
        self._check_weights(weights, [w.shape for w in self.get_weights()])
        i = 0
        for owner in self._weight_owners():
            if isinstance(owner, Layer):
                n = len(owner.get_weights())
                owner.set_weights(weights[i:i + n])
                i += n
            else:
                owner._data[...] = np.asarray(weights[i])
                i += 1

    def _check_weights(self, weights, expected):
        if not self.built:
            raise ValueError(f"Layer '{self.name}' is not built yet: call it on data (or build it) before "
                             "set_weights")
        weights = list(weights)
        if len(weights) != len(expected):
            raise ValueError(f"Layer '{self.name}' expects {len(expected)} weight arrays, but set_weights got "
                             f"{len(weights)}")
        for i, (w, shape) in enumerate(zip(weights, expected)):
            if tuple(np.shape(w)) != tuple(shape):
                raise ValueError(f"Layer '{self.name}' weight {i} has shape {tuple(shape)}, but set_weights got "
                                 f"an array of shape {tuple(np.shape(w))}")

    def count_params(self):
        """The number of scalars in the layer's weights (Keras's count)."""
        if not self.built:
            raise ValueError(f"You tried to call count_params on layer '{self.name}', but the layer isn't built. "
                             "Build it first by calling it on data or with build(input_shape).")
        return int(sum(int(np.prod(w.shape)) for w in self.weights))

    @property
    def losses(self):
        """The weight-penalty terms of this layer and its sublayers (scalar Tensors)."""
        out = [reg(p) for p, reg in self._regularizers]
        for m in self._modules.values():
            if isinstance(m, Layer):
                out.extend(m.losses)
        return out

    # -------------------------------------------------------------- logits (for stable losses)
    def _logits_kind(self):
        """"sigmoid" or "softmax" when this layer's output is that function of logits it can return."""
        return None

    def _call_with_logits(self, inputs, training=False):
        """(output, logits) for a layer whose ``_logits_kind`` is not None."""
        raise NotImplementedError

    # -------------------------------------------------------------- config
    def get_config(self):
        """The constructor arguments that rebuild this layer (JSON-able)."""
        config = {"name": self.name, "trainable": self._trainable, "dtype": self.dtype}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def extra_repr(self):
        return f"name={self.name!r}"

    @property
    def input_shape(self):
        if self._build_input_shape is None:
            raise AttributeError(f"Layer '{self.name}' has not been called yet, so it has no input shape")
        return self._build_input_shape

    @property
    def output_shape(self):
        return self.compute_output_shape(self.input_shape)


def _activation_kind(fn):
    if fn is activations.sigmoid:
        return "sigmoid"
    if fn is activations.softmax:
        return "softmax"
    return None


# ---------------------------------------------------------------------- Input


class InputLayer(Layer):
    """The layer behind ``Input``: holds the input shape; its output is a KerasTensor."""

    def __init__(self, input_shape=None, batch_size=None, dtype=None, name=None, batch_input_shape=None,
                 shape=None, batch_shape=None, **kwargs):
        shape = shape if shape is not None else input_shape
        batch_input_shape = batch_shape if batch_shape is not None else batch_input_shape
        if batch_input_shape is None:
            if shape is None:
                raise ValueError("Input: give the shape of one sample, e.g. Input(shape=(784,))")
            shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
            batch_input_shape = (batch_size,) + shape
        super().__init__(name=name or unique_object_name("input_layer"), dtype=dtype,
                         batch_input_shape=batch_input_shape, **kwargs)
        self.built = True
        self._build_input_shape = self._batch_input_shape
        self.output = KerasTensor(self._batch_input_shape, self.dtype, _Node(self, [], {}), 0)
        self.output.node.outputs = [self.output]

    def get_config(self):
        return {"batch_input_shape": list(self._batch_input_shape), "dtype": self.dtype, "name": self.name}


def Input(shape=None, batch_size=None, name=None, dtype=None, batch_shape=None, **kwargs):
    """A symbolic input of samples of ``shape`` (without the batch dim), for ``Sequential`` or ``Model``.

    >>> inputs = Input(shape=(20,), dtype="int32")
    >>> inputs.shape
    (None, 20)
    """
    return InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype, batch_shape=batch_shape,
                      **kwargs).output


# ---------------------------------------------------------------------- Dense


class Dense(Layer):
    """y = activation(x @ kernel + bias), on the last axis of x: (*, in) -> (*, units).

    kernel: (in, units), glorot_uniform by default; bias: (units,), zeros. Stored as pyengine's
    ``weight`` (units, in) so that the forward pass is one fused GEMM + bias kernel (``F.linear``).

    >>> layer = Dense(4, activation="relu")
    >>> layer(np.ones((2, 3), np.float32)).shape, layer.kernel.shape
    (pyengine.Size([2, 4]), pyengine.Size([3, 4]))
    """

    supports_masking = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, numbers.Integral) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        if activity_regularizer is not None or kernel_constraint is not None or bias_constraint is not None:
            raise NotImplementedError("Dense: activity_regularizer and constraints are not supported")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self._init_names = (kernel_initializer, bias_initializer)

    def build(self, input_shape):
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ValueError(f"Dense '{self.name}': the last dimension of the inputs must be known, got shape "
                             f"{input_shape}")
        kernel = self.kernel_initializer((in_dim, self.units))          # Keras layout (in, units)
        self._add_param("weight", kernel.T, regularizer=self.kernel_regularizer)
        if self.use_bias:
            self._add_param("bias", self.bias_initializer((self.units,)), regularizer=self.bias_regularizer)
        else:
            self.bias = None

    @property
    def kernel(self):
        """The kernel in Keras's layout (in, units): a view of ``weight`` (units, in)."""
        return self.weight.T

    def call(self, inputs):
        return self.activation(F.linear(inputs, self.weight, self.bias))

    def _logits_kind(self):
        return _activation_kind(self.activation)

    def _call_with_logits(self, inputs, training=False):
        logits = F.linear(inputs, self.weight, self.bias)
        return self.activation(logits), logits

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_weights(self):
        out = [self.weight._data.T.copy()]
        if self.use_bias:
            out.append(self.bias._data.copy())
        return out

    def set_weights(self, weights):
        weights = list(weights)
        self._check_weights(weights, [w.shape for w in self.get_weights()])
        self.weight._data[...] = np.asarray(weights[0]).T
        if self.use_bias:
            self.bias._data[...] = weights[1]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias, "kernel_initializer": _init_config(self._init_names[0]),
                "bias_initializer": _init_config(self._init_names[1]),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer)}

    def extra_repr(self):
        return f"name={self.name!r}, units={self.units}, activation={activations.serialize(self.activation)}"


def _init_config(init):
    return init if isinstance(init, (str, dict)) else initializers.serialize(init)


# ---------------------------------------------------------------------- Embedding


class Embedding(Layer):
    """Integer ids -> vectors: (*) -> (*, output_dim), a lookup in ``embeddings`` (input_dim, output_dim).

    Initialised U(-0.05, 0.05) as Keras. Ids must lie in [0, input_dim); float inputs (e.g. a padded
    float array) are cast to integers.

    >>> emb = Embedding(input_dim=100, output_dim=8)
    >>> emb(np.array([[1, 2, 3]])).shape
    pyengine.Size([1, 3, 8])

    ``mask_zero=True``: id 0 is padding; a model passes the mask (ids != 0) on to the layers that follow, and
    an LSTM then reads each sequence's real steps only (as Keras).
    """

    _float_inputs = False

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 activity_regularizer=None, embeddings_constraint=None, mask_zero=False, input_length=None,
                 **kwargs):
        if input_length is not None and "input_shape" not in kwargs and "batch_input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        for arg, v in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"Embedding: {arg} must be a positive integer, got {v!r}")
        if activity_regularizer is not None or embeddings_constraint is not None:
            raise NotImplementedError("Embedding: activity_regularizer and constraints are not supported")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self._init_name = embeddings_initializer
        self.mask_zero, self.input_length = mask_zero, input_length

    def build(self, input_shape):
        self._add_param("embeddings", self.embeddings_initializer((self.input_dim, self.output_dim)),
                        regularizer=self.embeddings_regularizer)

    def call(self, inputs):
        idx = inputs._data
        if idx.dtype.kind not in "iu":
            if idx.dtype.kind == "f" and not np.array_equal(idx, np.round(idx)):
                raise ValueError(f"Embedding '{self.name}': inputs must be integer ids, got non-integral floats")
            idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.input_dim):
            bad = int(idx.max()) if idx.max() >= self.input_dim else int(idx.min())
            raise ValueError(f"Embedding '{self.name}': id {bad} is outside [0, {self.input_dim}) (input_dim="
                             f"{self.input_dim}); raise input_dim or cap the vocabulary (Tokenizer(num_words=...))")
        return F.embedding(idx, self.embeddings)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        ids = inputs._data if isinstance(inputs, Tensor) else np.asarray(inputs)
        return ids != 0

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": _init_config(self._init_name),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
                "mask_zero": self.mask_zero, "input_length": self.input_length}

    def extra_repr(self):
        return f"name={self.name!r}, input_dim={self.input_dim}, output_dim={self.output_dim}"


# ---------------------------------------------------------------------- LSTM



class _RecurrentLayer(Layer):
    """What Keras's recurrent layers share: one or two directions, how a bidirectional wrapper merges them,
    and the mask they pass on."""

    _bidirectional = False
    _merge_mode = "concat"

    def _directions(self):
        return ["_l0", "_l0_reverse"] if self._bidirectional else ["_l0"]

    @property
    def weights(self):
        return list(self._own_weights)

    def _merge(self, forward, backward):
        if self._merge_mode == "concat":
            return pe.cat([forward, backward], dim=-1)
        if self._merge_mode == "sum":
            return forward + backward
        if self._merge_mode == "ave":
            return (forward + backward) * 0.5
        return forward * backward  # "mul"

    def _combine(self, results):
        """The layer's output from each direction's (sequence, last state)."""
        if not self._bidirectional:
            seq, last = results[0]
        else:
            (seq_f, last_f), (seq_b, last_b) = results
            seq = self._merge(seq_f, seq_b) if self.return_sequences else None
            last = self._merge(last_f, last_b)
        return seq if self.return_sequences else last

    def call(self, inputs, training=False, mask=None):
        x = inputs
        if x.ndim != 3:
            raise ValueError(f"{type(self).__name__} '{self.name}': expected inputs of shape (batch, timesteps, "
                             f"features), got {tuple(x.shape)}")
        if training and self.dropout:
            B, _, I = x.shape
            keep = _rng().random((B, 1, I)) >= self.dropout
            x = x * pe.from_numpy((keep / (1.0 - self.dropout)).astype(np.float32))
        if mask is not None:
            m = np.asarray(mask._data if isinstance(mask, Tensor) else mask, dtype=bool)
            if not m.all():
                return self._call_masked(x, m)
        if self.go_backwards:
            x = pe.flip(x, [1])
        out, state = self.cell(x)
        h, extra = self._hidden_and_extra(state)
        if self._bidirectional:
            H = self.units
            last = self._merge(h[0], h[1])
            if self.return_sequences and self._merge_mode != "concat":
                out = self._merge(out[:, :, :H], out[:, :, H:])
            return out if self.return_sequences else last
        last = h[0]
        result = out if self.return_sequences else last
        return [result, last, *extra] if self.return_state else result

    def _call_masked(self, x, mask):
        """Each sequence over its unmasked steps only (one block per row, as padding at its start or end makes):
        the final state is the state after the last real step, and masked steps output zeros (Keras carries the
        previous output there, which for padding at the start is zero too)."""
        if self.go_backwards or self.return_state:
            raise NotImplementedError(f"{type(self).__name__} '{self.name}': a mask together with go_backwards or "
                                      "return_state is not supported")
        first, lengths = _padding_spans(mask, self.name)
        return self._combine([self._over_spans(x, mask, first, lengths, sfx, reverse)
                              for sfx, reverse in zip(self._directions(), (False, True))])

    @staticmethod
    def _hidden_and_extra(state):
        """The cell's final state as (h, the further states return_state lists): GRU/SimpleRNN carry h alone."""
        return state, []

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias,
                "kernel_initializer": _init_config(self._init_names[0]),
                "recurrent_initializer": _init_config(self._init_names[1]),
                "bias_initializer": _init_config(self._init_names[2]),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "dropout": self.dropout, "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards}

    def extra_repr(self):
        return f"name={self.name!r}, units={self.units}, return_sequences={self.return_sequences}"


class LSTM(_RecurrentLayer):
    """Long short-term memory over a batch of sequences (Hochreiter & Schmidhuber 1997), batch first.

    inputs: (batch, timesteps, features) -> the last hidden state (batch, units), or every step's
    (batch, timesteps, units) with ``return_sequences``; ``return_state`` adds the final h and c.

    Runs pyengine's ``nn.LSTM`` (one fused Function for the whole sequence). Initialised as Keras:
    kernel (features, 4 units) glorot_uniform, recurrent_kernel (units, 4 units) orthogonal, bias zeros
    with the forget gate's slice at 1 (``unit_forget_bias``). Gate order i, f, c, o, as both Keras and
    PyTorch use, so ``get_weights``/``set_weights`` exchange [kernel, recurrent_kernel, bias] with Keras.
    ``dropout`` drops input features with one mask per sequence (as Keras).

    >>> lstm = LSTM(16, return_sequences=True)
    >>> lstm(np.zeros((2, 5, 3), np.float32)).shape
    pyengine.Size([2, 5, 16])
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, numbers.Integral) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"LSTM: units must be a positive integer, got {units!r}")
        if activations.get(activation) is not activations.tanh or \
                activations.get(recurrent_activation) is not activations.sigmoid:
            raise NotImplementedError("LSTM: only activation='tanh' with recurrent_activation='sigmoid' is "
                                      "supported (the fused kernel computes those)")
        if recurrent_dropout:
            raise NotImplementedError("LSTM: recurrent_dropout is not supported (the fused kernel has no "
                                      "per-step mask); use dropout= or a Dropout layer")
        if stateful:
            raise NotImplementedError("LSTM: stateful=True is not supported")
        if any(c is not None for c in (activity_regularizer, kernel_constraint, recurrent_constraint,
                                       bias_constraint)):
            raise NotImplementedError("LSTM: activity_regularizer and constraints are not supported")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LSTM: dropout must be in [0, 1), got {dropout}")
        self.units = int(units)
        self.use_bias, self.unit_forget_bias = use_bias, unit_forget_bias
        self.dropout = float(dropout)
        self.return_sequences, self.return_state, self.go_backwards = return_sequences, return_state, go_backwards
        self._init_names = (kernel_initializer, recurrent_initializer, bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    # set by Bidirectional before the build: one nn.LSTM runs both directions, outputs merged by _merge_mode
    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"LSTM '{self.name}': expected inputs of shape (batch, timesteps, features) with "
                             f"known features, got {input_shape}")
        features, H = input_shape[-1], self.units
        self.cell = nn.LSTM(features, H, bias=self.use_bias, batch_first=True, bidirectional=self._bidirectional)
        self._own_weights, regs = [], []
        for sfx in self._directions():
            w_ih, w_hh = getattr(self.cell, "weight_ih" + sfx), getattr(self.cell, "weight_hh" + sfx)
            w_ih._data[...] = initializers.get(self._init_names[0])((features, 4 * H)).T
            w_hh._data[...] = initializers.get(self._init_names[1])((H, 4 * H)).T
            self._own_weights += [w_ih, w_hh]
            regs += [(w_ih, self.kernel_regularizer), (w_hh, self.recurrent_regularizer)]
            if self.use_bias:
                b_ih, b_hh = getattr(self.cell, "bias_ih" + sfx), getattr(self.cell, "bias_hh" + sfx)
                bias = initializers.get(self._init_names[2])((4 * H,))
                if self.unit_forget_bias:
                    bias[H:2 * H] = 1.0
                b_ih._data[...] = bias
                # Keras has one bias; pyengine's LSTM two (b_ih + b_hh). b_hh stays a frozen zero.
                b_hh._data[...] = 0.0
                b_hh.requires_grad_(False)
                self._own_weights.append(b_ih)
                regs.append((b_ih, self.bias_regularizer))
        self._regularizers = [(p, r) for p, r in regs if r is not None]
        if not self._trainable:
            for p in self._own_weights:
                p.requires_grad_(False)

    @staticmethod
    def _hidden_and_extra(state):
        h, c = state  # LSTM carries (h, c); return_state lists h then c, as Keras does
        return h, [c[0]]

    def _over_spans(self, x, mask, first, lengths, sfx, reverse):
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.use_bias else [])
        w = [getattr(self.cell, n + sfx) for n in names] + ([] if self.use_bias else [None, None])
        return _lstm_over_spans(x, mask, first, lengths, w, reverse, self.return_sequences)

    def compute_output_shape(self, input_shape):
        B, T = input_shape[0], input_shape[1]
        units = self.units * (2 if self._bidirectional and self._merge_mode == "concat" else 1)
        out = (B, T, units) if self.return_sequences else (B, units)
        if self.return_state:
            return [out, (B, self.units), (B, self.units)]
        return out

    def get_weights(self):
        """[kernel (features, 4 units), recurrent_kernel (units, 4 units), bias (4 units)] per direction."""
        out = []
        for sfx in self._directions():
            out += [getattr(self.cell, "weight_ih" + sfx)._data.T.copy(),
                    getattr(self.cell, "weight_hh" + sfx)._data.T.copy()]
            if self.use_bias:
                out.append(getattr(self.cell, "bias_ih" + sfx)._data + getattr(self.cell, "bias_hh" + sfx)._data)
        return out

    def set_weights(self, weights):
        weights = list(weights)
        self._check_weights(weights, [w.shape for w in self.get_weights()])
        per = 3 if self.use_bias else 2
        for d, sfx in enumerate(self._directions()):
            w = weights[d * per:(d + 1) * per]
            getattr(self.cell, "weight_ih" + sfx)._data[...] = np.asarray(w[0]).T
            getattr(self.cell, "weight_hh" + sfx)._data[...] = np.asarray(w[1]).T
            if self.use_bias:
                getattr(self.cell, "bias_ih" + sfx)._data[...] = w[2]
                getattr(self.cell, "bias_hh" + sfx)._data[...] = 0.0

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


def _padding_spans(mask, name):
    """(first, length) of each row's unmasked steps in a (B, T) mask, which must form one block per row
    (what pre- or post-padding gives)."""
    lengths = mask.sum(axis=1)
    first = np.where(lengths > 0, mask.argmax(axis=1), 0)
    t = np.arange(mask.shape[1])
    if not np.array_equal(mask, (t >= first[:, None]) & (t < (first + lengths)[:, None])):
        raise NotImplementedError(f"LSTM '{name}': masks with gaps inside a sequence are not supported, only "
                                  "padding at its start or end (pad_sequences)")
    return first, lengths


def _lstm_over_spans(x, mask, first, lengths, weights, reverse, return_sequences):
    """One LSTM direction over x[b, first[b]:first[b] + lengths[b]] for every row b, in one fused call."""
    def run(xs, zeros):
        return LSTMLayer.apply(xs, zeros, zeros, *weights)[0]
    return _rnn_over_spans(x, mask, first, lengths, run, weights[1].shape[1], reverse, return_sequences)


def _rnn_over_spans(x, mask, first, lengths, run, H, reverse, return_sequences):
    """One recurrent direction over x[b, first[b]:first[b] + lengths[b]] for every row b, in one fused call
    ``run(x (T, B, I), zero state (B, H)) -> out (T, B, H)``.

    The rows are gathered so that every run starts at step 0 (reversed for the backward direction); what a
    row reads past its length comes after the state that is kept, so it changes nothing.
    x: (B, T, I) -> (sequence (B, T, H) on x's time axis with zeros at masked steps, or None; last (B, H))
    """
    B, T, _ = x.shape
    t = np.arange(T)[None, :]
    rows = np.arange(B)[:, None]
    start, end = first[:, None], (first + lengths)[:, None] - 1
    src = np.clip(end - t if reverse else start + t, 0, T - 1)              # run step -> position in x
    zeros = np.zeros((B, H), np.float32)
    out = run(x[rows, src].transpose(0, 1), zeros).transpose(0, 1)         # (B, T, H), by run step
    present = pe.from_numpy((lengths > 0).astype(np.float32)[:, None])
    last = out[np.arange(B), np.maximum(lengths - 1, 0)] * present          # an empty row keeps the zero state
    if not return_sequences:
        return None, last
    step = np.clip(end - t if reverse else t - start, 0, T - 1)             # position in x -> run step
    return out[rows, step] * pe.from_numpy(mask.astype(np.float32)[..., None]), last


class Bidirectional(Layer):
    """Run an LSTM, GRU or SimpleRNN over the sequence both ways and merge the two results (Schuster & Paliwal 1997).

    ``merge_mode``: "concat" (default: 2 units features), "sum", "ave" or "mul". Both directions run in one
    pyengine ``nn.LSTM``/``nn.GRU``/``nn.RNN(bidirectional=True)``. ``get_weights``: the forward layer's
    arrays, then the backward one's, as Keras.

    >>> Bidirectional(LSTM(16))(np.zeros((2, 5, 3), np.float32)).shape
    pyengine.Size([2, 32])
    """

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, (LSTM, _Recurrent)):
            raise NotImplementedError(f"Bidirectional: only LSTM, GRU and SimpleRNN layers are supported, got "
                                      f"{type(layer).__name__}")
        if merge_mode not in ("concat", "sum", "ave", "mul"):
            raise ValueError(f"Bidirectional: merge_mode must be 'concat', 'sum', 'ave' or 'mul', got {merge_mode!r}")
        if backward_layer is not None or weights is not None:
            raise NotImplementedError("Bidirectional: backward_layer and weights are not supported")
        if layer.return_state or layer.go_backwards or layer.built:
            raise NotImplementedError("Bidirectional: the layer must be unbuilt, without return_state or "
                                      "go_backwards")
        layer._bidirectional, layer._merge_mode = True, merge_mode
        self.merge_mode = merge_mode
        self.layer = layer

    def build(self, input_shape):
        self.layer._maybe_build(input_shape)

    def call(self, inputs, training=False, mask=None):
        return self.layer(inputs, training=training, mask=mask)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    def get_config(self):
        return {**super().get_config(), "layer": serialize(self.layer), "merge_mode": self.merge_mode}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = deserialize(config["layer"])
        return cls(**config)


# ---------------------------------------------------------------------- GRU, SimpleRNN


class _Recurrent(_RecurrentLayer):
    """What GRU and SimpleRNN share: a pyengine ``nn.GRU`` / ``nn.RNN`` (one fused Function per direction) in
    PyTorch's layout, with Keras's arguments, initialisers, gate order and weight layout at the edges.

    Subclasses set ``_gates`` (3 or 1) and implement ``_make_cell``, ``_keras_to_torch`` / ``_torch_to_keras``
    (one direction's weights) and ``_apply`` (one direction over a dense (T, B, I) batch).
    """

    _gates = 1

    def __init__(self, units, kernel_initializer, recurrent_initializer, bias_initializer, use_bias,
                 kernel_regularizer, recurrent_regularizer, bias_regularizer, activity_regularizer,
                 kernel_constraint, recurrent_constraint, bias_constraint, dropout, recurrent_dropout,
                 return_sequences, return_state, go_backwards, stateful, **kwargs):
        super().__init__(**kwargs)
        kind = type(self).__name__
        if not isinstance(units, numbers.Integral) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"{kind}: units must be a positive integer, got {units!r}")
        if recurrent_dropout:
            raise NotImplementedError(f"{kind}: recurrent_dropout is not supported (the fused kernel has no "
                                      "per-step mask); use dropout= or a Dropout layer")
        if stateful:
            raise NotImplementedError(f"{kind}: stateful=True is not supported")
        if any(c is not None for c in (activity_regularizer, kernel_constraint, recurrent_constraint,
                                       bias_constraint)):
            raise NotImplementedError(f"{kind}: activity_regularizer and constraints are not supported")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"{kind}: dropout must be in [0, 1), got {dropout!r}")
        self.units, self.use_bias, self.dropout = int(units), bool(use_bias), float(dropout)
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards = bool(go_backwards)
        self._init_names = (kernel_initializer, recurrent_initializer, bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def _torch_params(self, sfx):
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.use_bias else [])
        return [getattr(self.cell, n + sfx) for n in names]

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': expected inputs of shape (batch, timesteps, "
                             f"features) with known features, got {input_shape}")
        features, H, G = input_shape[-1], self.units, self._gates
        self.cell = self._make_cell(features)
        self._own_weights, regs = [], []
        for sfx in self._directions():
            keras = [initializers.get(self._init_names[0])((features, G * H)),
                     initializers.get(self._init_names[1])((H, G * H))]
            if self.use_bias:
                keras.append(initializers.get(self._init_names[2])(self._bias_shape()))
            params = self._torch_params(sfx)
            for p, value in zip(params, self._keras_to_torch(keras)):
                p._data[...] = value
            trainable = self._trainable_torch_params(params)
            self._own_weights += trainable
            regs += [(params[0], self.kernel_regularizer), (params[1], self.recurrent_regularizer)]
            regs += [(p, self.bias_regularizer) for p in trainable[2:]]
        self._regularizers = [(p, r) for p, r in regs if r is not None]
        for p in self._own_weights:
            p.requires_grad_(self._trainable)

    def _trainable_torch_params(self, params):
        return params

    def _over_spans(self, x, mask, first, lengths, sfx, reverse):
        w = self._torch_params(sfx) + ([] if self.use_bias else [None, None])
        run = functools.partial(self._apply, weights=w)
        return _rnn_over_spans(x, mask, first, lengths, run, self.units, reverse, self.return_sequences)

    def compute_output_shape(self, input_shape):
        B, T = input_shape[0], input_shape[1]
        units = self.units * (2 if self._bidirectional and self._merge_mode == "concat" else 1)
        out = (B, T, units) if self.return_sequences else (B, units)
        return [out, (B, self.units)] if self.return_state else out

    def get_weights(self):
        out = []
        for sfx in self._directions():
            out += self._torch_to_keras([p._data for p in self._torch_params(sfx)])
        return out

    def set_weights(self, weights):
        weights = list(weights)
        self._check_weights(weights, [w.shape for w in self.get_weights()])
        per = 3 if self.use_bias else 2
        for d, sfx in enumerate(self._directions()):
            keras = [np.asarray(w, np.float32) for w in weights[d * per:(d + 1) * per]]
            for p, value in zip(self._torch_params(sfx), self._keras_to_torch(keras)):
                p._data[...] = value



class GRU(_Recurrent):
    """Gated recurrent unit over a batch of sequences (Cho et al. 2014), batch first, Keras's GRU with
    ``reset_after=True`` (its default, and the form PyTorch computes):

        z = sigmoid(x W_z + b_z + h U_z + c_z)    r = sigmoid(x W_r + b_r + h U_r + c_r)
        h~ = tanh(x W_h + b_h + r * (h U_h + c_h))    h' = z * h + (1 - z) * h~

    inputs: (batch, timesteps, features) -> the last state (batch, units), or every step's with
    ``return_sequences``; ``return_state`` adds the final h. Runs pyengine's fused ``nn.GRU``. Keras's
    layout: kernel (features, 3 units), recurrent_kernel (units, 3 units), bias (2, 3 units) (input bias,
    recurrent bias), gates in Keras's order z, r, h (PyTorch's is r, z, n: the layer permutes at the edges).
    Initialised as Keras: glorot_uniform, orthogonal, zeros.

    >>> GRU(8, return_sequences=True)(np.zeros((2, 5, 3), np.float32)).shape
    pyengine.Size([2, 5, 8])
    """

    _gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, reset_after=True, **kwargs):
        if activations.get(activation) is not activations.tanh or \
                activations.get(recurrent_activation) is not activations.sigmoid:
            raise NotImplementedError("GRU: only activation='tanh' with recurrent_activation='sigmoid' is "
                                      "supported (the fused kernel computes those)")
        if not reset_after:
            raise NotImplementedError("GRU: only reset_after=True (Keras's default, PyTorch's form) is supported")
        super().__init__(units, kernel_initializer, recurrent_initializer, bias_initializer, use_bias,
                         kernel_regularizer, recurrent_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, recurrent_constraint, bias_constraint, dropout, recurrent_dropout,
                         return_sequences, return_state, go_backwards, stateful, **kwargs)
        self.reset_after = True

    def _make_cell(self, features):
        return nn.GRU(features, self.units, bias=self.use_bias, batch_first=True, bidirectional=self._bidirectional)

    def _bias_shape(self):
        return (2, 3 * self.units)

    def _swap_zr(self, a):
        """Keras's gate blocks [z, r, h] <-> PyTorch's [r, z, n] along the last axis (its own inverse)."""
        H = self.units
        return np.concatenate([a[..., H:2 * H], a[..., :H], a[..., 2 * H:]], axis=-1)

    def _keras_to_torch(self, keras):
        out = [self._swap_zr(keras[0]).T, self._swap_zr(keras[1]).T]
        if self.use_bias:
            bias = self._swap_zr(np.asarray(keras[2]))
            out += [bias[0], bias[1]]
        return out

    def _torch_to_keras(self, torch_arrays):
        out = [np.ascontiguousarray(self._swap_zr(torch_arrays[0].T)),
               np.ascontiguousarray(self._swap_zr(torch_arrays[1].T))]
        if self.use_bias:
            out.append(self._swap_zr(np.stack([torch_arrays[2], torch_arrays[3]])))
        return out

    def _apply(self, x, h0, weights):
        return GRULayer.apply(x, h0, *weights)[0]

    def get_config(self):
        return {**super().get_config(), "reset_after": True}


class SimpleRNN(_Recurrent):
    """A fully-connected recurrent layer, h' = activation(x W + h U + b) (Elman 1990), batch first.

    ``activation``: "tanh" (default) or "relu" (what pyengine's fused ``nn.RNN`` computes). Keras's
    layout: kernel (features, units), recurrent_kernel (units, units), bias (units,); initialised
    glorot_uniform, orthogonal, zeros. Other arguments as ``GRU``.

    >>> SimpleRNN(8)(np.zeros((2, 5, 3), np.float32)).shape
    pyengine.Size([2, 8])
    """

    _gates = 1

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, **kwargs):
        fn = activations.get(activation)
        if fn is activations.tanh:
            self_nonlinearity = "tanh"
        elif fn is activations.relu:
            self_nonlinearity = "relu"
        else:
            raise NotImplementedError(f"SimpleRNN: only activation 'tanh' or 'relu' is supported (the fused "
                                      f"kernel computes those), got {activation!r}")
        super().__init__(units, kernel_initializer, recurrent_initializer, bias_initializer, use_bias,
                         kernel_regularizer, recurrent_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, recurrent_constraint, bias_constraint, dropout, recurrent_dropout,
                         return_sequences, return_state, go_backwards, stateful, **kwargs)
        self.nonlinearity = self_nonlinearity

    def _make_cell(self, features):
        return nn.RNN(features, self.units, nonlinearity=self.nonlinearity, bias=self.use_bias, batch_first=True,
                      bidirectional=self._bidirectional)

    def _bias_shape(self):
        return (self.units,)

    def _trainable_torch_params(self, params):
        # Keras has one bias; pyengine's RNN two (b_ih + b_hh). b_hh stays a frozen zero.
        if self.use_bias:
            params[3].requires_grad_(False)
            return params[:3]
        return params

    def _keras_to_torch(self, keras):
        out = [keras[0].T, keras[1].T]
        if self.use_bias:
            out += [keras[2], np.zeros_like(keras[2])]
        return out

    def _torch_to_keras(self, torch_arrays):
        out = [np.ascontiguousarray(torch_arrays[0].T), np.ascontiguousarray(torch_arrays[1].T)]
        if self.use_bias:
            out.append(torch_arrays[2] + torch_arrays[3])
        return out

    def _apply(self, x, h0, weights):
        return RNNLayer.apply(x, h0, *weights, self.nonlinearity)[0]

    def get_config(self):
        return {**super().get_config(), "activation": self.nonlinearity}


# ---------------------------------------------------------------------- convolution, pooling, batch norm


def _int_tuple(layer, arg, value, n):
    """An int or a sequence of n positive ints as an n-tuple (Keras accepts both)."""
    items = (value,) * n if isinstance(value, numbers.Integral) else tuple(value) if isinstance(
        value, (tuple, list)) else None
    if items is None or len(items) != n or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0
                                                for v in items):
        raise ValueError(f"{layer}: {arg} must be a positive integer or a tuple of {n} positive integers, "
                         f"got {value!r}")
    return tuple(int(v) for v in items)


def _data_format(layer, data_format):
    data_format = "channels_last" if data_format is None else data_format
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"{layer}: data_format must be 'channels_last' or 'channels_first', got {data_format!r}")
    return data_format


def _padding_arg(layer, padding, allowed=("valid", "same")):
    p = padding.lower() if isinstance(padding, str) else padding
    if p not in allowed:
        raise ValueError(f"{layer}: padding must be one of {', '.join(map(repr, allowed))}, got {padding!r}")
    return p


def _window_pads(size, k, s, d, padding):
    """(before, after) padding of one spatial dim of ``size`` for a window k (dilation d, stride s), as
    TensorFlow: 'valid' none; 'same' so that the output has ceil(size / s) positions, the odd one after;
    'causal' (k - 1) d before."""
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return (k - 1) * d, 0
    total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _window_out(size, k, s, d, padding):
    """Output positions of one spatial dim (None stays None)."""
    if size is None:
        return None
    if padding == "same":
        return -(-size // s)
    pad = sum(_window_pads(size, k, s, d, padding))
    return max((size + pad - (k - 1) * d - 1) // s + 1, 0)


class _SpatialLayer(Layer):
    """Layers over (batch, *spatial, channels) (channels_last, Keras's default) or (batch, channels, *spatial)
    (channels_first), computed in PyTorch's (batch, channels, *spatial) layout: a channels_last input is
    permuted there and back, which are views (two channels_last layers in a row meet in a contiguous array)."""

    rank = 2

    def _to_torch(self, x):
        if self.data_format == "channels_first":
            return x
        return x.permute(0, self.rank + 1, *range(1, self.rank + 1))

    def _from_torch(self, y):
        if self.data_format == "channels_first":
            return y
        return y.permute(0, *range(2, self.rank + 2), 1)

    def _check_rank(self, input_shape):
        if len(input_shape) != self.rank + 2:
            layout = "(batch, " + ", ".join(["steps"] if self.rank == 1 else ["rows", "cols"]) + ", channels)"
            if self.data_format == "channels_first":
                layout = "(batch, channels, " + ", ".join(["steps"] if self.rank == 1 else ["rows", "cols"]) + ")"
            raise ValueError(f"{type(self).__name__} '{self.name}': expected inputs of {self.rank + 2} dims "
                             f"{layout}, got shape {tuple(input_shape)}")

    def _spatial(self, shape):
        return tuple(shape[1:-1]) if self.data_format == "channels_last" else tuple(shape[2:])

    def _channels(self, shape):
        return shape[-1] if self.data_format == "channels_last" else shape[1]

    def _with(self, shape, spatial, channels):
        if self.data_format == "channels_last":
            return (shape[0],) + tuple(spatial) + (channels,)
        return (shape[0], channels) + tuple(spatial)

    def _pad_input(self, x, kernel, strides, dilation, padding, value=0.0):
        """x (N, C, *spatial) padded as ``padding`` asks: (x, symmetric pads to give the op) -- symmetric pads
        go to the op, an uneven 'same' or 'causal' pads x itself."""
        pads = [_window_pads(n, k, s, d, padding) for n, k, s, d in zip(x.shape[2:], kernel, strides, dilation)]
        if all(b == a for b, a in pads):
            return x, tuple(b for b, _ in pads)
        flat = []
        for b, a in reversed(pads):          # F.pad takes the last dim first
            flat += [b, a]
        return F.pad(x, flat, value=value), (0,) * self.rank


class _Conv(_SpatialLayer):
    """What Conv1D and Conv2D share: Keras's arguments and kernel layout (*kernel_size, in / groups, filters),
    stored in PyTorch's (filters, in / groups, *kernel_size) as ``weight`` for ``F.conv1d``/``F.conv2d``."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        kind = type(self).__name__
        if isinstance(filters, bool) or not isinstance(filters, numbers.Integral) or filters <= 0:
            raise ValueError(f"{kind}: filters must be a positive integer, got {filters!r}")
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups <= 0 or filters % groups:
            raise ValueError(f"{kind}: groups must be a positive integer dividing filters ({filters}), got {groups!r}")
        if activity_regularizer is not None or kernel_constraint is not None or bias_constraint is not None:
            raise NotImplementedError(f"{kind}: activity_regularizer and constraints are not supported")
        self.filters, self.groups = int(filters), int(groups)
        self.kernel_size = _int_tuple(kind, "kernel_size", kernel_size, self.rank)
        self.strides = _int_tuple(kind, "strides", strides, self.rank)
        self.dilation_rate = _int_tuple(kind, "dilation_rate", dilation_rate, self.rank)
        self.padding = _padding_arg(kind, padding, ("valid", "same", "causal") if self.rank == 1
                                    else ("valid", "same"))
        self.data_format = _data_format(kind, data_format)
        if self.padding == "causal" and self.data_format != "channels_last":
            raise ValueError(f"{kind}: causal padding needs data_format='channels_last'")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self._init_names = (kernel_initializer, bias_initializer)

    def _torch_axes(self):
        """The permutation of a Keras kernel (*k, in, out) into PyTorch's (out, in, *k)."""
        return (self.rank + 1, self.rank) + tuple(range(self.rank))

    def build(self, input_shape):
        self._check_rank(input_shape)
        channels = self._channels(input_shape)
        if channels is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': the channel dimension of the inputs must be "
                             f"known, got shape {tuple(input_shape)}")
        if channels % self.groups:
            raise ValueError(f"{type(self).__name__} '{self.name}': the {channels} input channels are not divisible "
                             f"by groups={self.groups}")
        kernel = self.kernel_initializer(self.kernel_size + (channels // self.groups, self.filters))
        self._add_param("weight", np.transpose(kernel, self._torch_axes()), regularizer=self.kernel_regularizer)
        if self.use_bias:
            self._add_param("bias", self.bias_initializer((self.filters,)), regularizer=self.bias_regularizer)
        else:
            self.bias = None

    @property
    def kernel(self):
        """The kernel in Keras's layout (*kernel_size, in / groups, filters): a view of ``weight``."""
        return self.weight.permute(*range(2, self.rank + 2), 1, 0)

    def _conv(self, x):
        x, pads = self._pad_input(self._to_torch(x), self.kernel_size, self.strides, self.dilation_rate,
                                  self.padding)
        conv = F.conv1d if self.rank == 1 else F.conv2d
        y = conv(x, self.weight, self.bias, self.strides, pads, self.dilation_rate, self.groups)
        return self._from_torch(y)

    def call(self, inputs):
        return self.activation(self._conv(inputs))

    def _logits_kind(self):
        return _activation_kind(self.activation)

    def _call_with_logits(self, inputs, training=False):
        logits = self._conv(inputs)
        return self.activation(logits), logits

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        spatial = [_window_out(n, k, s, d, self.padding) for n, k, s, d in
                   zip(self._spatial(input_shape), self.kernel_size, self.strides, self.dilation_rate)]
        return self._with(input_shape, spatial, self.filters)

    def get_weights(self):
        out = [np.ascontiguousarray(np.transpose(self.weight._data, np.argsort(self._torch_axes())))]
        if self.use_bias:
            out.append(self.bias._data.copy())
        return out

    def set_weights(self, weights):
        weights = list(weights)
        self._check_weights(weights, [w.shape for w in self.get_weights()])
        self.weight._data[...] = np.transpose(np.asarray(weights[0]), self._torch_axes())
        if self.use_bias:
            self.bias._data[...] = weights[1]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate), "groups": self.groups,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": _init_config(self._init_names[0]),
                "bias_initializer": _init_config(self._init_names[1]),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer)}

    def extra_repr(self):
        return (f"name={self.name!r}, filters={self.filters}, kernel_size={self.kernel_size}, "
                f"strides={self.strides}, padding={self.padding!r}, data_format={self.data_format!r}")


class Conv2D(_Conv):
    """2-D convolution: (batch, rows, cols, channels) -> (batch, new_rows, new_cols, filters) (channels_last,
    Keras's default; channels_first: (batch, channels, rows, cols)), then ``activation``.

    ``padding``: "valid" (none) or "same" (TensorFlow's: output ceil(size / stride), an odd padding's extra
    row/column at the end). kernel: (kh, kw, in / groups, filters) glorot_uniform, bias zeros, as Keras;
    stored as PyTorch's ``weight`` (filters, in / groups, kh, kw) and run by pyengine's ``F.conv2d``.

    >>> Conv2D(8, 3, padding="same", activation="relu")(np.zeros((2, 28, 28, 1), np.float32)).shape
    pyengine.Size([2, 28, 28, 8])
    """

    rank = 2


class Conv1D(_Conv):
    """1-D convolution over steps: (batch, steps, channels) -> (batch, new_steps, filters) (channels_last), then
    ``activation``. ``padding``: "valid", "same" or "causal" (output t sees inputs <= t). kernel: (k, in /
    groups, filters), as Keras; runs pyengine's ``F.conv1d``.

    >>> Conv1D(4, 3)(np.zeros((2, 10, 6), np.float32)).shape
    pyengine.Size([2, 8, 4])
    """

    rank = 1


class _Pool(_SpatialLayer):
    """What the max and average pooling layers share: pool_size, strides (default pool_size), padding
    ('valid' or 'same', TensorFlow's: padded positions never count, neither in a max nor in a mean)."""

    _mode = "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        kind = type(self).__name__
        self.pool_size = _int_tuple(kind, "pool_size", pool_size, self.rank)
        self.strides = self.pool_size if strides is None else _int_tuple(kind, "strides", strides, self.rank)
        self.padding = _padding_arg(kind, padding)
        self.data_format = _data_format(kind, data_format)

    def call(self, inputs):
        x = self._to_torch(inputs)
        if self.rank == 1:
            x = x.unsqueeze(2)                                   # (N, C, 1, L): a 2-D pool of height 1
        k, s = (1,) * (2 - self.rank) + self.pool_size, (1,) * (2 - self.rank) + self.strides
        pads = [_window_pads(n, kk, ss, 1, self.padding) for n, kk, ss in zip(x.shape[2:], k, s)]
        if self._mode == "max":
            if any(pads):
                x = F.pad(x, [pads[1][0], pads[1][1], pads[0][0], pads[0][1]], value=-np.inf)
            y = F.max_pool2d(x, k, s)
        elif not any(b or a for b, a in pads):
            y = F.avg_pool2d(x, k, s)
        else:
            # the mean over the real positions of each window: a zero-padded mean over the padded mean of ones
            flat = [pads[1][0], pads[1][1], pads[0][0], pads[0][1]]
            y = F.avg_pool2d(F.pad(x, flat), k, s)
            with pe.no_grad():
                ones = pe.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype)
                share = F.avg_pool2d(F.pad(ones, flat), k, s)
            y = y / share
        if self.rank == 1:
            y = y.squeeze(2)
        return self._from_torch(y)

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        spatial = [_window_out(n, k, s, 1, self.padding)
                   for n, k, s in zip(self._spatial(input_shape), self.pool_size, self.strides)]
        return self._with(input_shape, spatial, self._channels(input_shape))

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling2D(_Pool):
    """The maximum over pool_size windows (default 2x2, strides = pool_size): (batch, rows, cols, channels)
    -> (batch, rows', cols', channels) (channels_last; or channels_first). Runs pyengine's ``F.max_pool2d``.

    >>> MaxPooling2D()(np.zeros((2, 28, 28, 8), np.float32)).shape
    pyengine.Size([2, 14, 14, 8])
    """

    rank, _mode = 2, "max"


class AveragePooling2D(_Pool):
    """The mean over pool_size windows (as MaxPooling2D; with padding='same' only real positions count)."""

    rank, _mode = 2, "avg"


class MaxPooling1D(_Pool):
    """The maximum over windows of steps: (batch, steps, channels) -> (batch, steps', channels)."""

    rank, _mode = 1, "max"


class AveragePooling1D(_Pool):
    """The mean over windows of steps: (batch, steps, channels) -> (batch, steps', channels)."""

    rank, _mode = 1, "avg"


class _GlobalPool2D(_SpatialLayer):
    rank = 2

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = _data_format(type(self).__name__, data_format)
        self.keepdims = bool(keepdims)

    def _dims(self):
        return (1, 2) if self.data_format == "channels_last" else (2, 3)

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        if self.keepdims:
            return self._with(input_shape, (1, 1), self._channels(input_shape))
        return (input_shape[0], self._channels(input_shape))

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPool2D):
    """(batch, rows, cols, channels) -> (batch, channels): the mean over rows and columns (``keepdims``:
    (batch, 1, 1, channels))."""

    def call(self, inputs):
        self._check_rank(inputs.shape)
        return inputs.mean(dim=self._dims(), keepdim=self.keepdims)


class GlobalMaxPooling2D(_GlobalPool2D):
    """(batch, rows, cols, channels) -> (batch, channels): the maximum over rows and columns."""

    def call(self, inputs):
        self._check_rank(inputs.shape)
        return inputs.amax(dim=self._dims(), keepdim=self.keepdims)


class BatchNormalization(Layer):
    """Normalise each feature (channel) with the statistics of the batch in training and the moving ones in
    inference, then scale (gamma) and shift (beta) (Ioffe & Szegedy 2015), with Keras's conventions:

    * ``axis=-1`` (the channels of channels_last data) is the feature axis; the statistics run over all others;
    * ``momentum=0.99`` weighs the old moving value: moving = momentum * moving + (1 - momentum) * batch
      (PyTorch's momentum is 1 - Keras's), with the batch's biased variance (as Keras 3);
    * ``epsilon=1e-3``; weights [gamma, beta, moving_mean, moving_variance], the last two not trainable;
    * training mode only inside ``fit`` (or ``training=True``); a frozen layer (``trainable=False``) always
      runs in inference mode, as Keras.

    The normalisation is pyengine's ``F.batch_norm`` kernel with the features moved to axis 1 when needed.

    >>> BatchNormalization()(np.ones((4, 3), np.float32), training=True).shape
    pyengine.Size([4, 3])
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
            raise NotImplementedError(f"BatchNormalization: axis must be one integer, got {axis!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNormalization: momentum must be in [0, 1], got {momentum!r}")
        if epsilon <= 0:
            raise ValueError(f"BatchNormalization: epsilon must be positive, got {epsilon!r}")
        if beta_constraint is not None or gamma_constraint is not None or synchronized:
            raise NotImplementedError("BatchNormalization: constraints and synchronized are not supported")
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self._init_names = (beta_initializer, gamma_initializer, moving_mean_initializer, moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def build(self, input_shape):
        axis = self.axis + len(input_shape) if self.axis < 0 else self.axis
        if not 0 < axis < len(input_shape) or input_shape[axis] is None:
            raise ValueError(f"BatchNormalization '{self.name}': axis {self.axis} is not a known feature axis of "
                             f"inputs of shape {tuple(input_shape)}")
        self._axis = axis
        C = (input_shape[axis],)
        beta_i, gamma_i, mean_i, var_i = (initializers.get(n) for n in self._init_names)
        self.gamma = self._add_param("gamma", gamma_i(C), regularizer=self.gamma_regularizer) if self.scale else None
        self.beta = self._add_param("beta", beta_i(C), regularizer=self.beta_regularizer) if self.center else None
        self._add_param("moving_mean", mean_i(C), trainable=False)
        self._add_param("moving_variance", var_i(C), trainable=False)

    @property
    def trainable_weights(self):
        return [w for w in (self.gamma, self.beta) if w is not None] if self._trainable else []

    @Layer.trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        for w in (self.gamma, self.beta) if self.built else ():
            if w is not None:
                w.requires_grad_(self._trainable)

    def call(self, inputs, training=False):
        x, axis, ndim = inputs, self._axis, inputs.ndim
        if ndim != len(self._build_input_shape):
            raise ValueError(f"BatchNormalization '{self.name}': expected inputs of {len(self._build_input_shape)} "
                             f"dims, got shape {tuple(x.shape)}")
        training = bool(training) and self._trainable
        # to (N, C, *) for F.batch_norm: the last axis reshapes to (N, C) for free; another axis moves to 1
        if axis == ndim - 1:
            y = x.reshape(-1, x.shape[-1])
        elif axis == 1:
            y = x
        else:
            y = x.movedim(axis, 1)
        out = F.batch_norm(y, self.moving_mean, self.moving_variance, self.gamma, self.beta, training=training,
                           momentum=0.0, eps=self.epsilon) if not training else \
            F.batch_norm(y, None, None, self.gamma, self.beta, training=True, eps=self.epsilon)
        if training:
            with pe.no_grad():   # Keras's update: moving = momentum * moving + (1 - momentum) * batch (biased)
                dims = [d for d in range(y.ndim) if d != 1]
                mean = y.detach().mean(dim=dims)
                var = y.detach().var(dim=dims, unbiased=False)
                m = self.momentum
                self.moving_mean._data[...] = m * self.moving_mean._data + (1 - m) * mean._data
                self.moving_variance._data[...] = m * self.moving_variance._data + (1 - m) * var._data
        if axis == ndim - 1:
            return out.reshape(x.shape)
        return out if axis == 1 else out.movedim(1, axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": _init_config(self._init_names[0]),
                "gamma_initializer": _init_config(self._init_names[1]),
                "moving_mean_initializer": _init_config(self._init_names[2]),
                "moving_variance_initializer": _init_config(self._init_names[3]),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer)}


class ZeroPadding2D(_SpatialLayer):
    """Zeros around the rows and columns: ``padding`` an int, (rows, cols) or ((top, bottom), (left, right))."""

    rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, numbers.Integral):
            padding = ((padding, padding), (padding, padding))
        elif all(isinstance(p, numbers.Integral) for p in padding):
            padding = ((padding[0], padding[0]), (padding[1], padding[1]))
        self.padding = tuple(tuple(int(v) for v in p) for p in padding)
        if len(self.padding) != 2 or any(len(p) != 2 or min(p) < 0 for p in self.padding):
            raise ValueError(f"ZeroPadding2D: padding must be an int, 2 ints or 2 pairs of ints >= 0, got {padding!r}")
        self.data_format = _data_format("ZeroPadding2D", data_format)

    def call(self, inputs):
        (t, b), (left, r) = self.padding
        return self._from_torch(F.pad(self._to_torch(inputs), [left, r, t, b]))

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        spatial = [None if n is None else n + sum(p) for n, p in zip(self._spatial(input_shape), self.padding)]
        return self._with(input_shape, spatial, self._channels(input_shape))

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding], "data_format": self.data_format}


class Conv2DTranspose(_Conv):
    """Transposed 2-D convolution (the gradient of Conv2D in its input, a learnt upsampling):
    (batch, rows, cols, channels) -> (batch, rows', cols', filters), rows' = rows * stride with
    padding="same", rows * stride + max(kernel - stride, 0) with "valid" (TensorFlow's sizes).

    kernel: (kh, kw, filters, in) as Keras (the same array as the Conv2D it transposes: filters there are
    its inputs); stored as PyTorch's ``weight`` (in, filters, kh, kw) for ``F.conv_transpose2d``.

    >>> Conv2DTranspose(4, 3, strides=2, padding="same")(np.zeros((1, 5, 5, 2), np.float32)).shape
    pyengine.Size([1, 10, 10, 4])
    """

    rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias, **kwargs)
        if output_padding is not None or self.dilation_rate != (1, 1):
            raise NotImplementedError("Conv2DTranspose: output_padding and dilation_rate are not supported")

    def build(self, input_shape):
        self._check_rank(input_shape)
        channels = self._channels(input_shape)
        if channels is None:
            raise ValueError(f"Conv2DTranspose '{self.name}': the channel dimension of the inputs must be known, "
                             f"got shape {tuple(input_shape)}")
        kernel = self.kernel_initializer(self.kernel_size + (self.filters, channels))
        self._add_param("weight", np.transpose(kernel, self._torch_axes()), regularizer=self.kernel_regularizer)
        if self.use_bias:
            self._add_param("bias", self.bias_initializer((self.filters,)), regularizer=self.bias_regularizer)
        else:
            self.bias = None

    def _sizes(self, n, k, s):
        """(output size, crop before) of one dim: the conv this transposes pads (before, after) TensorFlow's way."""
        if n is None:
            return None, 0
        if self.padding == "same":
            out = n * s
            return out, _window_pads(out, k, s, 1, "same")[0]
        return n * s + max(k - s, 0), 0

    def _conv(self, x):
        x = self._to_torch(x)
        sizes = [self._sizes(n, k, s) for n, k, s in zip(x.shape[2:], self.kernel_size, self.strides)]
        full = [(n - 1) * s + k for n, k, s in zip(x.shape[2:], self.kernel_size, self.strides)]
        extra = tuple(max(out + before - f, 0) for (out, before), f in zip(sizes, full))   # < stride
        y = F.conv_transpose2d(x, self.weight, self.bias, self.strides, 0, extra)
        (h, top), (w, left) = sizes
        return self._from_torch(y[:, :, top:top + h, left:left + w])

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        spatial = [self._sizes(n, k, s)[0] for n, k, s in
                   zip(self._spatial(input_shape), self.kernel_size, self.strides)]
        return self._with(input_shape, spatial, self.filters)

    def get_config(self):
        config = super().get_config()
        del config["groups"]
        return config


class DepthwiseConv2D(_Conv):
    """Each input channel convolved with its own ``depth_multiplier`` filters: (batch, rows, cols, C) ->
    (batch, rows', cols', C * depth_multiplier), output channel c * depth_multiplier + m from channel c.

    kernel: (kh, kw, C, depth_multiplier) as Keras (``get_weights``: [depthwise_kernel, bias]); runs
    ``F.conv2d`` with groups = C.
    """

    rank = 2

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        if isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, numbers.Integral) or \
                depth_multiplier <= 0:
            raise ValueError(f"DepthwiseConv2D: depth_multiplier must be a positive integer, got {depth_multiplier!r}")
        super().__init__(1, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         kernel_initializer=depthwise_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=depthwise_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, kernel_constraint=depthwise_constraint,
                         bias_constraint=bias_constraint, **kwargs)
        self.depth_multiplier = int(depth_multiplier)

    def build(self, input_shape):
        self._check_rank(input_shape)
        C = self._channels(input_shape)
        if C is None:
            raise ValueError(f"DepthwiseConv2D '{self.name}': the channel dimension of the inputs must be known, "
                             f"got shape {tuple(input_shape)}")
        self.groups, self.filters = C, C * self.depth_multiplier
        kernel = self.kernel_initializer(self.kernel_size + (C, self.depth_multiplier))
        self._add_param("weight", self._depthwise_to_torch(kernel), regularizer=self.kernel_regularizer)
        if self.use_bias:
            self._add_param("bias", self.bias_initializer((self.filters,)), regularizer=self.bias_regularizer)
        else:
            self.bias = None

    @staticmethod
    def _depthwise_to_torch(kernel):
        kh, kw, C, M = kernel.shape
        return np.ascontiguousarray(np.transpose(kernel, (2, 3, 0, 1)).reshape(C * M, 1, kh, kw))

    @property
    def kernel(self):
        raise AttributeError("DepthwiseConv2D has depthwise_kernel, not kernel")

    @property
    def depthwise_kernel(self):
        """The kernel in Keras's layout (kh, kw, C, depth_multiplier) (a view of ``weight``)."""
        kh, kw = self.kernel_size
        return self.weight.reshape(self.groups, self.depth_multiplier, kh, kw).permute(2, 3, 0, 1)

    def get_weights(self):
        out = [self.depthwise_kernel.detach().numpy().copy()]
        if self.use_bias:
            out.append(self.bias._data.copy())
        return out

    def set_weights(self, weights):
        weights = list(weights)
        self._check_weights(weights, [w.shape for w in self.get_weights()])
        self.weight._data[...] = self._depthwise_to_torch(np.asarray(weights[0], np.float32))
        if self.use_bias:
            self.bias._data[...] = weights[1]

    def get_config(self):
        config = super().get_config()
        for k in ("filters", "groups"):
            del config[k]
        config["depthwise_initializer"] = config.pop("kernel_initializer")
        config["depthwise_regularizer"] = config.pop("kernel_regularizer")
        return {**config, "depth_multiplier": self.depth_multiplier}


class UpSampling2D(_SpatialLayer):
    """Repeat rows and columns ``size`` times (interpolation="nearest") or resize bilinearly (half-pixel
    centres, as TensorFlow 2's resize and PyTorch's align_corners=False); runs ``F.interpolate``."""

    rank = 2

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = _int_tuple("UpSampling2D", "size", size, 2)
        if interpolation not in ("nearest", "bilinear"):
            raise NotImplementedError(f"UpSampling2D: interpolation must be 'nearest' or 'bilinear', got "
                                      f"{interpolation!r}")
        self.interpolation = interpolation
        self.data_format = _data_format("UpSampling2D", data_format)

    def call(self, inputs):
        x = self._to_torch(inputs)
        size = tuple(n * s for n, s in zip(x.shape[2:], self.size))
        kw = {} if self.interpolation == "nearest" else {"align_corners": False}
        return self._from_torch(F.interpolate(x, size=size, mode=self.interpolation, **kw))

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        spatial = [None if n is None else n * s for n, s in zip(self._spatial(input_shape), self.size)]
        return self._with(input_shape, spatial, self._channels(input_shape))

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "data_format": self.data_format,
                "interpolation": self.interpolation}


# ---------------------------------------------------------------------- shape-preserving and reshaping layers


class Dropout(Layer):
    """In training, zero each input with probability ``rate`` and scale the rest by 1 / (1 - rate);
    the identity in inference (Srivastava et al. 2014).

    >>> Dropout(0.5)(np.ones((2, 2), np.float32))      # inference: unchanged
    """

    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"Dropout: rate must be a number in [0, 1], got {rate!r}")
        if noise_shape is not None:
            raise NotImplementedError("Dropout: noise_shape is not supported")
        self.rate = float(rate)
        self.seed = seed

    def call(self, inputs, training=False):
        return F.dropout(inputs, self.rate, training)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class Activation(Layer):
    """Apply an activation by name or function: ``Activation("softmax")``."""

    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs):
        return self.activation(inputs)

    def _logits_kind(self):
        return _activation_kind(self.activation)

    def _call_with_logits(self, inputs, training=False):
        return self.activation(inputs), inputs

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)."""

    def call(self, inputs):
        return inputs.reshape(inputs.shape[0], -1)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if any(d is None for d in rest) else int(np.prod(rest)))


class Reshape(Layer):
    """(batch, ...) -> (batch, *target_shape); one entry may be -1."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)

    def call(self, inputs):
        return inputs.reshape(inputs.shape[0], *self.target_shape)

    def compute_output_shape(self, input_shape):
        shape = list(self.target_shape)
        if -1 in shape:
            rest = input_shape[1:]
            known = int(np.prod([d for d in shape if d != -1]))
            shape[shape.index(-1)] = None if any(d is None for d in rest) else int(np.prod(rest)) // known
        return (input_shape[0],) + tuple(shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Lambda(Layer):
    """Wrap a function of Tensors as a layer: ``Lambda(lambda x: x * 2)`` (not saved by ``save``)."""

    def __init__(self, function, output_shape=None, **kwargs):
        super().__init__(**kwargs)
        self.function = function
        self._output_shape = output_shape

    def call(self, inputs):
        return self.function(inputs)

    def compute_output_shape(self, input_shape):
        if self._output_shape is None:
            return input_shape
        if callable(self._output_shape):
            return self._output_shape(input_shape)
        return (input_shape[0],) + tuple(self._output_shape)

    def get_config(self):
        raise NotImplementedError(f"Lambda layer '{self.name}' cannot be saved (its function is Python code); "
                                  "write a Layer subclass instead")


class LayerNormalization(Layer):
    """Normalise each sample over the last axis, then scale (gamma) and shift (beta) (Ba et al. 2016).

    Keras's default epsilon is 1e-3.
    """

    supports_masking = True

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        if axis not in (-1,) and not isinstance(axis, numbers.Integral):
            raise NotImplementedError("LayerNormalization: only one axis is supported")
        self.axis, self.epsilon, self.center, self.scale = axis, float(epsilon), center, scale

    def build(self, input_shape):
        axis = self.axis if self.axis >= 0 else len(input_shape) + self.axis
        if axis != len(input_shape) - 1:
            raise NotImplementedError("LayerNormalization: only the last axis is supported")
        C = input_shape[-1]
        self.gamma = self._add_param("gamma", np.ones(C)) if self.scale else None
        self.beta = self._add_param("beta", np.zeros(C)) if self.center else None

    def call(self, inputs):
        return F.layer_norm(inputs, (inputs.shape[-1],), self.gamma, self.beta, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale}


class GlobalAveragePooling1D(Layer):
    """(batch, steps, features) -> (batch, features): the mean over steps (over unmasked steps with a mask)."""

    def call(self, inputs, mask=None):
        if mask is None:
            return inputs.mean(dim=1)
        m = np.asarray(mask._data if isinstance(mask, Tensor) else mask, dtype=np.float32)[..., None]  # (B, T, 1)
        weights = m / np.maximum(m.sum(axis=1, keepdims=True), 1.0)
        return (inputs * pe.from_numpy(weights)).sum(dim=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


class GlobalMaxPooling1D(Layer):
    """(batch, steps, features) -> (batch, features): the max over steps."""

    def call(self, inputs):
        return inputs.max(dim=1)[0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


class Concatenate(Layer):
    """Join a list of tensors along ``axis`` (the last by default)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, inputs):
        return pe.cat(list(inputs), dim=self.axis)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape[0])
        dims = [s[self.axis] for s in input_shape]
        shape[self.axis] = None if any(d is None for d in dims) else sum(dims)
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Add(Layer):
    """The elementwise sum of a list of tensors of one shape."""

    def call(self, inputs):
        out = inputs[0]
        for t in inputs[1:]:
            out = out + t
        return out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])


# ---------------------------------------------------------------------- (de)serialisation


def get_layer_class(class_name, custom_objects=None):
    """The layer class named ``class_name`` (built-in, or from ``custom_objects``)."""
    if custom_objects and class_name in custom_objects:
        return custom_objects[class_name]
    cls = globals().get(class_name)
    if isinstance(cls, type) and issubclass(cls, Layer):
        return cls
    raise ValueError(f"Unknown layer: '{class_name}'. Pass custom_objects={{'{class_name}': {class_name}}} "
                     "to load_model if it is your own Layer subclass")


def serialize(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config, custom_objects=None):
    return get_layer_class(config["class_name"], custom_objects).from_config(dict(config["config"]))
