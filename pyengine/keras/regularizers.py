"""Weight penalties added to the training loss: ``Dense(64, kernel_regularizer=regularizers.l2(1e-4))``.

    L1(l1)         l1 * sum(|w|)
    L2(l2)         l2 * sum(w^2)          (Keras's L2: no factor 1/2)
    L1L2(l1, l2)   both

The model adds every layer's penalties to the loss in ``train_step`` (``model.losses`` lists them).
"""
import pyengine as pe

__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get", "serialize"]


class Regularizer:
    def __call__(self, w):
        raise NotImplementedError

    def get_config(self):
        return {}


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w):
        total = None
        if self.l1:
            total = pe.abs(w).sum() * self.l1
        if self.l2:
            p = (w * w).sum() * self.l2
            total = p if total is None else total + p
        return total if total is not None else pe.zeros(())

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2
_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}


def get(identifier):
    if identifier is None or isinstance(identifier, Regularizer) or callable(identifier):
        return identifier
    if isinstance(identifier, str):
        key = {"l1": "L1", "l2": "L2", "l1_l2": "L1L2"}.get(identifier.lower(), identifier)
        if key in _CLASSES:
            return _CLASSES[key]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]](**identifier.get("config", {}))
    raise ValueError(f"Unknown regularizer: {identifier!r}")


def serialize(reg):
    if reg is None:
        return None
    if isinstance(reg, Regularizer):
        return {"class_name": type(reg).__name__, "config": reg.get_config()}
    return getattr(reg, "__name__", repr(reg))
