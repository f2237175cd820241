"""ONNX export for pyengine models (``pip install 'pyengine[onnx]'``; run the file with onnxruntime).

>>> import pyengine.onnx
>>> pyengine.onnx.export(model, idx, "gpt.onnx", input_names=["input_ids"], output_names=["logits"],
...                      dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}})

``export`` has ``torch.onnx.export``'s signature. The graph is written node by node from the model's
weights with ``onnx.helper`` (nothing is traced): what it supports is listed in SUPPORTED, and any other
module is refused by name. See ``pyengine/onnx/gpt.py`` for the GPT graph.
"""
from .gpt import export_gpt

SUPPORTED = ("pyengine.models.gpt.GPT",)
OPSET = 17

__all__ = ["export", "export_gpt", "SUPPORTED"]


def export(model, args, f, export_params=True, verbose=False, training=None, input_names=None,
           output_names=None, opset_version=None, do_constant_folding=True, dynamic_axes=None,
           keep_initializers_as_inputs=None, **kwargs):
    """Write ``model`` as an ONNX graph to ``f`` (a path or a binary file object).

    args: an example input (for a GPT: (B, T) token ids, a Tensor or array, or a tuple holding it); its
    shape fixes the graph's input shape except the axes ``dynamic_axes`` names, as torch.onnx.export does.
    input_names / output_names: default ["input_ids"] / ["logits"]. opset_version: 17 or newer (17 is
    written: LayerNormalization). export_params must be True, training must be off: the graph holds the
    weights and is for inference. Returns the ``onnx.ModelProto``.
    """
    from ..models.gpt import GPT
    if kwargs:
        raise TypeError(f"pyengine.onnx.export: unsupported arguments {sorted(kwargs)}")
    if not isinstance(model, GPT):
        raise NotImplementedError(f"pyengine.onnx.export: {type(model).__module__}.{type(model).__name__} is not "
                                  f"supported; supported models: {', '.join(SUPPORTED)}")
    if not export_params:
        raise ValueError("pyengine.onnx.export: export_params=False is not supported (the graph holds the weights)")
    if training not in (None, False) and str(training).split(".")[-1] not in ("EVAL", "PRESERVE"):
        raise ValueError("pyengine.onnx.export: only inference graphs are written (training mode is not supported)")
    if keep_initializers_as_inputs:
        raise ValueError("pyengine.onnx.export: keep_initializers_as_inputs is not supported")
    if opset_version is not None and opset_version < OPSET:
        raise ValueError(f"pyengine.onnx.export: opset_version must be >= {OPSET}, got {opset_version}")
    example = args[0] if isinstance(args, (tuple, list)) else args
    shape = tuple(getattr(example, "shape", ()))
    if len(shape) != 2:
        raise ValueError(f"pyengine.onnx.export: a GPT takes (B, T) token ids, got an example of shape {shape}")
    input_names = list(input_names or ["input_ids"])
    output_names = list(output_names or ["logits"])
    if len(input_names) != 1 or len(output_names) != 1:
        raise ValueError("pyengine.onnx.export: a GPT has one input (token ids) and one output (logits)")
    dyn_in, dyn_out = _dynamic(dynamic_axes, input_names[0]), _dynamic(dynamic_axes, output_names[0])
    unknown = set(dynamic_axes or {}) - {input_names[0], output_names[0]}
    if unknown:
        raise ValueError(f"pyengine.onnx.export: dynamic_axes names unknown inputs/outputs {sorted(unknown)}")
    if any(a not in (0, 1) for a in dyn_in) or any(a not in (0, 1) for a in dyn_out):
        raise ValueError("pyengine.onnx.export: only axes 0 (batch) and 1 (sequence) can be dynamic")
    batch = dyn_in.get(0) or dyn_out.get(0) or int(shape[0])
    seq = dyn_in.get(1) or dyn_out.get(1) or int(shape[1])
    proto = export_gpt(model, None, batch=batch, seq_len=seq, input_name=input_names[0],
                       output_name=output_names[0])
    data = proto.SerializeToString()
    if hasattr(f, "write"):
        f.write(data)
    else:
        with open(f, "wb") as fh:
            fh.write(data)
    if verbose:
        print(f"pyengine.onnx.export: {len(proto.graph.node)} nodes, {len(data):,} bytes")
    return proto


def _dynamic(dynamic_axes, name):
    spec = (dynamic_axes or {}).get(name)
    if spec is None:
        return {}
    if isinstance(spec, dict):
        return {int(a): str(n) for a, n in spec.items()}
    return {int(a): f"{name}_dynamic_axes_{i + 1}" for i, a in enumerate(spec)}
