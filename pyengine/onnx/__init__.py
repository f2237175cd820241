"""ONNX export for pyengine models (``pip install 'pyengine[onnx]'``; run the file with onnxruntime).

>>> import pyengine.onnx
>>> pyengine.onnx.export(model, idx, "gpt.onnx", input_names=["input_ids"], output_names=["logits"],
...                      dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}})

``export`` has ``torch.onnx.export``'s signature. The graph is written node by node from the model's
weights with ``onnx.helper`` (nothing is traced), opset 17:

- pyengine's GPT (``pyengine/onnx/gpt.py``): (B, T) int64 token ids -> (B, T, V) logits, causal attention
  for any T up to the block size;
- feed-forward models (``pyengine/onnx/modules.py``): ``nn.Sequential`` stacks, nested or not, of Linear,
  LayerNorm, ReLU, LeakyReLU, GELU, Tanh, Sigmoid, SiLU, Softmax, Flatten, Identity, Dropout (the identity:
  inference graphs); float32 in and out.

Any other module is refused with NotImplementedError naming it and where it sits in the model.
"""
import numpy as np

from ._graph import OPSET, Graph
from .gpt import export_gpt
from .modules import supported_names

__all__ = ["export", "export_gpt", "supported_names"]


def export(model, args, f, export_params=True, verbose=False, training=None, input_names=None,
           output_names=None, opset_version=None, do_constant_folding=True, dynamic_axes=None,
           keep_initializers_as_inputs=None, **kwargs):
    """Write ``model`` as an ONNX graph to ``f`` (a path or a binary file object); returns the ModelProto.

    args: an example input (a Tensor or array, or a tuple holding one): its shape fixes the graph's input
    shape except the axes ``dynamic_axes`` names ({name: {axis: "name"}} or {name: [axes]}), as in
    torch.onnx.export. A GPT takes (B, T) token ids, only axes 0 and 1 of which can be dynamic.
    input_names / output_names: one each (default ["input_ids"]/["logits"] for a GPT, ["input"]/["output"]
    otherwise). opset_version: 17 or newer (17 is written). export_params must be True and training off:
    the graph holds the weights and is for inference. do_constant_folding is accepted (nothing to fold).
    """
    from .. import nn
    from ..models.gpt import GPT
    from . import modules
    if kwargs:
        raise TypeError(f"pyengine.onnx.export: unsupported arguments {sorted(kwargs)}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"pyengine.onnx.export: expected a pyengine nn.Module, got {type(model).__name__}")
    is_gpt = isinstance(model, GPT)
    if not is_gpt:
        modules.check(model)  # an unsupported module is named before anything else is looked at
    if not export_params:
        raise ValueError("pyengine.onnx.export: export_params=False is not supported (the graph holds the weights)")
    if training not in (None, False) and str(training).split(".")[-1] not in ("EVAL", "PRESERVE"):
        raise ValueError("pyengine.onnx.export: only inference graphs are written (training mode is not supported)")
    if keep_initializers_as_inputs:
        raise ValueError("pyengine.onnx.export: keep_initializers_as_inputs is not supported")
    if opset_version is not None and opset_version < OPSET:
        raise ValueError(f"pyengine.onnx.export: opset_version must be >= {OPSET}, got {opset_version}")
    example = args[0] if isinstance(args, (tuple, list)) and len(args) == 1 else args
    if isinstance(example, (tuple, list)):
        raise ValueError(f"pyengine.onnx.export: models with one input are supported, got {len(example)} inputs")
    shape = tuple(int(d) for d in getattr(example, "shape", ()))
    input_names = list(input_names or (["input_ids"] if is_gpt else ["input"]))
    output_names = list(output_names or (["logits"] if is_gpt else ["output"]))
    if len(input_names) != 1 or len(output_names) != 1:
        raise ValueError("pyengine.onnx.export: one input name and one output name, please")
    unknown = set(dynamic_axes or {}) - {input_names[0], output_names[0]}
    if unknown:
        raise ValueError(f"pyengine.onnx.export: dynamic_axes names unknown inputs/outputs {sorted(unknown)}")
    dyn_in, dyn_out = _dynamic(dynamic_axes, input_names[0]), _dynamic(dynamic_axes, output_names[0])
    if is_gpt:
        if len(shape) != 2:
            raise ValueError(f"pyengine.onnx.export: a GPT takes (B, T) token ids, got an example of shape {shape}")
        if any(a not in (0, 1) for a in list(dyn_in) + list(dyn_out)):
            raise ValueError("pyengine.onnx.export: only axes 0 (batch) and 1 (sequence) of a GPT can be dynamic")
        batch = dyn_in.get(0) or dyn_out.get(0) or shape[0]
        seq = dyn_in.get(1) or dyn_out.get(1) or shape[1]
        proto = export_gpt(model, None, batch=batch, seq_len=seq, input_name=input_names[0],
                           output_name=output_names[0])
    else:
        out_shape = _example_output_shape(model, example)
        if any(not -len(shape) <= a < len(shape) for a in dyn_in) or \
                any(not -len(out_shape) <= a < len(out_shape) for a in dyn_out):
            raise ValueError(f"pyengine.onnx.export: a dynamic axis is out of range (input rank {len(shape)}, "
                             f"output rank {len(out_shape)})")
        in_dims = [dyn_in.get(i, dyn_in.get(i - len(shape), d)) for i, d in enumerate(shape)]
        out_dims = [dyn_out.get(i, dyn_out.get(i - len(out_shape), None if dyn_in else d))
                    for i, d in enumerate(out_shape)]
        proto = modules.export_module(Graph(), model, in_dims, input_names[0], output_names[0], out_dims)
    data = proto.SerializeToString()
    if hasattr(f, "write"):
        f.write(data)
    else:
        with open(f, "wb") as fh:
            fh.write(data)
    if verbose:
        print(f"pyengine.onnx.export: {len(proto.graph.node)} nodes, {len(data):,} bytes")
    return proto


def _example_output_shape(model, example):
    from ..autograd import no_grad
    from ..tensor import Tensor, tensor
    x = example if isinstance(example, Tensor) else tensor(np.asarray(example, dtype=np.float32))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            return tuple(int(d) for d in model(x).shape)
    finally:
        model.train(was_training)


def _dynamic(dynamic_axes, name):
    spec = (dynamic_axes or {}).get(name)
    if spec is None:
        return {}
    if isinstance(spec, dict):
        return {int(a): str(n) for a, n in spec.items()}
    return {int(a): f"{name}_dynamic_axes_{i + 1}" for i, a in enumerate(spec)}
