"""pyengine.onnx: PyTorch's ``torch.onnx`` module path. ``export`` is not implemented yet (a later issue
writes the exporter); it raises NotImplementedError saying so, so that a program reaching it fails clearly."""

__all__ = ["export", "is_in_onnx_export"]


def export(model, args=(), f=None, *pargs, **kwargs):
    """Export ``model`` to ONNX: not yet implemented in pyengine (raises NotImplementedError)."""
    raise NotImplementedError("pyengine.onnx.export is not yet implemented: ONNX export is planned for a later "
                              "pyengine release; save the weights with pyengine.save(model.state_dict(), path)")


def is_in_onnx_export():
    """False: no export is ever running."""
    return False
