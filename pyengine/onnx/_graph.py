"""A small ONNX graph builder on onnx.helper: named nodes, weights as initializers, and the pieces pyengine's
modules are made of (Linear, LayerNorm, GELU), each written once for every exporter here."""
import math

import numpy as np

OPSET = 17


def onnx_modules():
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'pyengine[onnx]'") from None
    return onnx, TensorProto, helper, numpy_helper


def arr(p):
    """A parameter's values as a float32 array (None stays None)."""
    return None if p is None else np.ascontiguousarray(np.asarray(p._data), dtype=np.float32)


class Graph:
    def __init__(self):
        self.onnx, self.TP, self.helper, self.nh = onnx_modules()
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint, value):
        n = self.name(hint)
        self.inits.append(self.nh.from_array(np.asarray(value), n))
        return n

    def op(self, op_type, inputs, hint=None, **attrs):
        out = self.name(hint or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def layer_norm(self, x, ln):
        """nn.LayerNorm over its normalized_shape (the last len(normalized_shape) axes)."""
        k = len(getattr(ln, "normalized_shape", (0,)))
        weight = arr(ln.weight) if ln.weight is not None else np.ones(ln.normalized_shape, np.float32)
        inputs = [x, self.const("ln_w", weight)]
        if getattr(ln, "bias", None) is not None:
            inputs.append(self.const("ln_b", arr(ln.bias)))
        return self.op("LayerNormalization", inputs, "ln", axis=-k, epsilon=float(ln.eps))

    def linear(self, x, lin):
        """nn.Linear: x @ W^T + b (W^T stored as the initializer)."""
        y = self.op("MatMul", [x, self.const("w", arr(lin.weight).T.copy())], "matmul")
        return self.op("Add", [y, self.const("b", arr(lin.bias))], "add") if lin.bias is not None else y

    def gelu(self, x, approximate):
        """GELU, the tanh approximation or the exact erf form (opset 17 has no Gelu op)."""
        half, one = self.const("half", np.float32(0.5)), self.const("one", np.float32(1.0))
        if approximate == "tanh":
            x3 = self.op("Mul", [self.op("Mul", [x, x]), x])
            inner = self.op("Add", [x, self.op("Mul", [x3, self.const("c", np.float32(0.044715))])])
            t = self.op("Tanh", [self.op("Mul", [inner, self.const("k", np.float32(math.sqrt(2.0 / math.pi)))])])
        else:
            t = self.op("Erf", [self.op("Mul", [x, self.const("rsqrt2", np.float32(1.0 / math.sqrt(2.0)))])])
        return self.op("Mul", [self.op("Mul", [x, half]), self.op("Add", [t, one])], "gelu")

    def model(self, name, inputs, outputs, doc=""):
        """The checked ModelProto of the nodes so far; inputs/outputs: value infos."""
        graph = self.helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits)
        proto = self.helper.make_model(graph, opset_imports=[self.helper.make_opsetid("", OPSET)],
                                       producer_name="pyengine", doc_string=doc)
        proto.ir_version = min(proto.ir_version, 8)  # readable by onnxruntime releases of the last years
        self.onnx.checker.check_model(proto)
        return proto
