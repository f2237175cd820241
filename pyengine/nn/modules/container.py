"""Containers: Sequential, ModuleList, ModuleDict."""
import operator
from collections import OrderedDict

from .module import Module

__all__ = ["Sequential", "ModuleList", "ModuleDict"]


def _modules_arg(kind, modules):
    """The modules a container is built from: each must be a Module (None, a string, ... raise here, not when
    the container is first called)."""
    modules = list(modules)
    for i, m in enumerate(modules):
        if not isinstance(m, Module):
            raise TypeError(f"{kind}: element {i} is a {type(m).__name__}, not a Module")
    return modules


def _abs_index(idx, n, kind):
    idx = operator.index(idx)
    if not -n <= idx < n:
        raise IndexError(f"{kind}: index {idx} is out of range (length {n})")
    return idx + n if idx < 0 else idx


class Sequential(Module):
    """Modules applied one after the other: ``forward(x) = m_n(...m_1(x))``.

    Built from modules (named "0", "1", ...) or from an OrderedDict of name -> module.
    Supports indexing, slicing (a new Sequential sharing the modules), len, iteration, append.

    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    >>> net(pyengine.randn(2, 4)).shape
    pyengine.Size([2, 1])
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], (OrderedDict, dict)):
            for name, module in zip(args[0], _modules_arg("Sequential", args[0].values())):
                self.add_module(name, module)
        else:
            for i, module in enumerate(_modules_arg("Sequential", args)):
                self.add_module(str(i), module)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[_abs_index(idx, len(self), "Sequential")]

    def __setitem__(self, idx, module):
        key = list(self._modules)[_abs_index(idx, len(self), "Sequential")]
        setattr(self, key, module)

    def __delitem__(self, idx):
        keys = list(self._modules)
        targets = keys[idx] if isinstance(idx, slice) else [keys[_abs_index(idx, len(self), "Sequential")]]
        for k in targets:
            del self._modules[k]
        # renumber, as PyTorch does, so that indices stay 0..n-1
        items = list(self._modules.items())
        self._modules.clear()
        for i, (k, m) in enumerate(items):
            self._modules[str(i) if k.isdigit() else k] = m

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __add__(self, other):
        if not isinstance(other, Sequential):
            raise ValueError(f"add operator supports only objects of Sequential class, got {type(other).__name__}")
        return Sequential(*self, *other)

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index, module):
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._modules.clear()
        for i, m in enumerate(mods):
            self.add_module(str(i), m)
        return self

    def pop(self, idx):
        m = self[idx]
        del self[idx]
        return m

    def forward(self, input):
        for module in self._modules.values():
            input = module(input)
        return input


class ModuleList(Module):
    """A list of modules, registered (named "0", "1", ...) so their parameters are found.

    >>> layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
    >>> for layer in layers: x = layer(x)
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            if isinstance(modules, (str, bytes, Module)) or not hasattr(modules, "__iter__"):
                raise TypeError(f"ModuleList: expected an iterable of Modules, got {type(modules).__name__}")
            self.extend(_modules_arg("ModuleList", modules))

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return self._modules[str(_abs_index(idx, len(self), "ModuleList"))]

    def __setitem__(self, idx, module):
        setattr(self, str(_abs_index(idx, len(self), "ModuleList")), module)

    def __delitem__(self, idx):
        keys = list(self._modules)
        targets = keys[idx] if isinstance(idx, slice) else [keys[_abs_index(idx, len(self), "ModuleList")]]
        for k in targets:
            del self._modules[k]
        mods = list(self._modules.values())
        self._modules.clear()
        for i, m in enumerate(mods):
            self._modules[str(i)] = m

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __iadd__(self, modules):
        return self.extend(modules)

    def __add__(self, other):
        return ModuleList(list(self) + list(other))

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        if isinstance(modules, Module) and not isinstance(modules, (ModuleList, Sequential)):
            raise TypeError(f"ModuleList.extend should be called with an iterable, but got {type(modules).__name__}")
        for m in list(modules):
            self.append(m)
        return self

    def insert(self, index, module):
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._modules.clear()
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def pop(self, idx=-1):
        m = self[idx]
        del self[idx]
        return m


class ModuleDict(Module):
    """A dict of modules (insertion-ordered), registered so their parameters are found.

    >>> heads = nn.ModuleDict({"cls": nn.Linear(8, 3), "reg": nn.Linear(8, 1)})
    >>> heads["cls"](x)
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            if hasattr(modules, "values"):
                _modules_arg("ModuleDict", modules.values())
            elif isinstance(modules, (str, bytes)) or not hasattr(modules, "__iter__"):
                raise TypeError(f"ModuleDict: expected a mapping or an iterable of (key, module) pairs, got "
                                f"{type(modules).__name__}")
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def clear(self):
        self._modules.clear()

    def pop(self, key):
        m = self._modules[key]
        del self[key]
        return m

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def update(self, modules):
        items = modules.items() if hasattr(modules, "items") else modules
        for j, kv in enumerate(items):
            if not isinstance(kv, (tuple, list)) or len(kv) != 2:
                raise ValueError(f"ModuleDict.update: element #{j} should be a (key, module) pair")
            self[kv[0]] = kv[1]
