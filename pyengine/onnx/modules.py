"""ONNX graphs of feed-forward pyengine.nn models: Sequential stacks (nested too) of the modules in WRITERS.

float32 input of the example's shape (``dynamic_axes`` frees axes) -> float32 output; weights are written as
float32. Any other module, at any depth, is refused by its path in the model.
"""
import numpy as np

from .. import nn


def _flatten(g, x, m):
    if m.end_dim != -1:
        raise NotImplementedError("pyengine.onnx: Flatten is exported with end_dim=-1 only")
    if m.start_dim < 0:
        raise NotImplementedError("pyengine.onnx: Flatten is exported with start_dim >= 0 only")
    lead = g.op("Slice", [g.op("Shape", [x]), g.const("zero", np.array([0], np.int64)),
                          g.const("start", np.array([m.start_dim], np.int64))])
    shape = g.op("Concat", [lead, g.const("minus_one", np.array([-1], np.int64))], axis=0)
    return g.op("Reshape", [x, shape], "flatten")


def _softmax(g, x, m):
    if m.dim is None:
        raise NotImplementedError("pyengine.onnx: Softmax needs an explicit dim to be exported")
    return g.op("Softmax", [x], "softmax", axis=int(m.dim))


def _silu(g, x, m):
    return g.op("Mul", [x, g.op("Sigmoid", [x])], "silu")


WRITERS = {
    nn.Linear: lambda g, x, m: g.linear(x, m),
    nn.LayerNorm: lambda g, x, m: g.layer_norm(x, m),
    nn.ReLU: lambda g, x, m: g.op("Relu", [x]),
    nn.LeakyReLU: lambda g, x, m: g.op("LeakyRelu", [x], alpha=float(m.negative_slope)),
    nn.GELU: lambda g, x, m: g.gelu(x, m.approximate),
    nn.Tanh: lambda g, x, m: g.op("Tanh", [x]),
    nn.Sigmoid: lambda g, x, m: g.op("Sigmoid", [x]),
    nn.SiLU: _silu,
    nn.Softmax: _softmax,
    nn.Flatten: _flatten,
    nn.Identity: lambda g, x, m: x,
    nn.Dropout: lambda g, x, m: x,  # inference graph: dropout is the identity
}


def supported_names():
    return ["Sequential"] + sorted(t.__name__ for t in WRITERS)


def check(module, path="model"):
    """Raise NotImplementedError naming the first module (by its path) no writer covers."""
    if isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            check(child, f"{path}.{name}" if path != "model" else name)
        return
    if type(module) not in WRITERS:
        raise NotImplementedError(
            f"pyengine.onnx.export: {type(module).__module__}.{type(module).__name__} (at {path!r}) is not "
            f"supported; supported: GPT (pyengine.models.gpt), {', '.join(supported_names())}")


def write(g, x, module):
    if isinstance(module, nn.Sequential):
        for child in module.children():
            x = write(g, x, child)
        return x
    return WRITERS[type(module)](g, x, module)


def export_module(g, module, shape, input_name, output_name, output_shape):
    """The ModelProto of ``module`` for inputs of ``shape`` (ints, or strings for dynamic axes)."""
    check(module)
    y = write(g, input_name, module)
    g.nodes.append(g.helper.make_node("Identity", [y], [output_name], name="output"))
    return g.model(f"pyengine_{type(module).__name__}",
                   [g.helper.make_tensor_value_info(input_name, g.TP.FLOAT, list(shape))],
                   [g.helper.make_tensor_value_info(output_name, g.TP.FLOAT, list(output_shape))])


__all__ = ["WRITERS", "check", "export_module", "supported_names"]
