"""Optimizer: the base class of SGD, Adam, AdamW, RMSprop and Adagrad (PyTorch's names and semantics).

An optimizer holds ``param_groups`` (a list of dicts: ``"params"`` plus the group's options,
such as ``lr``) and ``state`` (a dict from parameter to that parameter's buffers). A subclass
implements ``step()``: it collects, for each group, the arrays of the parameters that have a
gradient and makes ONE call to the backend's update kernel for them (see
``pyengine/backend/reference/optim.py`` for the kernels' specification).

``state_dict()`` has PyTorch's layout::

    {"state": {0: {"step": tensor(3.), "exp_avg": tensor(...), ...}, 1: {...}},
     "param_groups": [{"lr": 0.001, ..., "params": [0, 1]}, ...]}

where the integers number the parameters in group order.
"""
import copy
import functools
import numbers
from collections import defaultdict

import numpy as np

from .._checks import named_init
from ..autograd import enable_grad
from ..tensor import Tensor, _wrap

__all__ = ["Optimizer", "required"]


class _Required:
    """Marks an option that has no default: every param group must give it."""

    def __repr__(self):
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base class of all optimizers.

    Args:
        params: an iterable of Tensors, of ``(name, Tensor)`` pairs, or of dicts (param groups:
            ``{"params": [...], "lr": 0.1, ...}``; options a group leaves out come from
            ``defaults``).
        defaults: the optimizer's default options.

    Example::

        opt = pyengine.optim.SGD([{"params": model.body.parameters()},
                                  {"params": model.head.parameters(), "lr": 1e-2}],
                                 lr=1e-3, momentum=0.9)
        opt.zero_grad(); loss.backward(); opt.step()
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # pyengine's optimizers: an error from a constructor names the optimizer ("Adam: ...")
        init = cls.__dict__.get("__init__")
        if init is not None and cls.__module__.startswith("pyengine."):
            cls.__init__ = named_init(init)
        step = cls.__dict__.get("step")
        if step is not None and not getattr(step, "_marks_opt_called", False):
            cls.step = _marking_step_called(step)

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got a Tensor")
        if isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        if isinstance(params, (str, bytes, dict)) or not hasattr(params, "__iter__"):
            raise TypeError(f"params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got {type(params).__name__}")
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ param groups
    def add_param_group(self, param_group):
        """Add a group (a dict with ``"params"`` and any per-group options) to ``param_groups``.

        Useful when fine-tuning: unfreeze layers and add their parameters as training goes on.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param_group must have a 'params' entry")
        group = param_group  # as in PyTorch, the caller's dict becomes the group (defaults filled in)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        else:
            params = list(params)

        names = []
        tensors = []
        for p in params:
            if isinstance(p, tuple) and len(p) == 2:  # from named_parameters()
                names.append(p[0])
                tensors.append(p[1])
            else:
                tensors.append(p)
        if names and len(names) != len(tensors):
            raise ValueError("all optimizer params should be with/without names. Some param names are missing")
        group["params"] = tensors
        if names:
            group["param_names"] = names

        for i, p in enumerate(tensors):
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but parameter {i} of the group is a "
                                f"{type(p).__name__}")
            if p.grad_fn is not None:
                raise ValueError(f"can't optimize a non-leaf Tensor (parameter {i} of the group was made by "
                                 f"{type(p.grad_fn).__name__}); optimize the leaf it was computed from, "
                                 "or detach() it and set requires_grad=True")
            if p._data.dtype.kind != "f" and p.dtype.name != "bfloat16":
                raise ValueError(f"can only optimize floating point Tensors, but parameter {i} of the group has "
                                 f"dtype {p.dtype}")
            if p._data.itemsize == 2:
                raise ValueError(f"parameter {i} of the group is {p.dtype}: the optimizers update float32 and "
                                 "float64 parameters only (yet); keep float32 weights (model.float()) and compute in "
                                 f"{p.dtype} by casting activations")

        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            group.setdefault(name, default)

        ids = [id(p) for p in tensors]
        if len(set(ids)) != len(ids):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if not seen.isdisjoint(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        for g in self.param_groups:
            if ("param_names" in g) != ("param_names" in group):
                raise ValueError("all optimizer param groups should be with/without names")

        self._validate_group(group)
        self.param_groups.append(group)

    def _validate_group(self, group):
        """Raise ValueError for invalid option values (overridden by each optimizer)."""

    # ------------------------------------------------------------------ step
    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all optimized parameters.

        ``set_to_none=True`` (the default, as in PyTorch) sets ``p.grad = None``: less memory, and a
        parameter that then receives no gradient is skipped by ``step()``. ``set_to_none=False``
        fills the existing gradients with zeros in place (such a parameter still steps: weight
        decay and momentum still move it).
        """
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if g.grad_fn is not None:
                        g.detach_()
                    else:
                        g.requires_grad = False
                    if g._data.flags.writeable:
                        g._data.fill(0)
                    else:
                        g._data = np.zeros(g._data.shape, dtype=g._data.dtype)

    def step(self, closure=None):
        """Perform one optimization step; ``closure`` (optional) re-evaluates the model and returns the loss."""
        raise NotImplementedError

    @staticmethod
    def _eval_closure(closure):
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def _stepping(self, group):
        """(p, state) for each parameter of ``group`` that has a gradient; ``state`` is ``self.state[p]``
        (an empty dict at the parameter's first step)."""
        for p in group["params"]:
            if p.grad is not None:
                yield p, self.state[p]

    @staticmethod
    def _buffer(p, fill=0.0):
        """A state buffer: a Tensor of ``p``'s shape and dtype, filled with ``fill``."""
        return _wrap(np.full(p._data.shape, fill, dtype=p._data.dtype))

    @staticmethod
    def _grad_array(p):
        """``p``'s gradient as a C-contiguous array of ``p``'s dtype and shape (what the kernels need)."""
        g = p.grad._data
        if g.shape != p._data.shape:
            raise RuntimeError(f"optimizer step: the gradient of a parameter of shape {tuple(p._data.shape)} has "
                               f"shape {tuple(g.shape)}")
        if g.dtype != p._data.dtype or not g.flags.c_contiguous:
            g = np.ascontiguousarray(g, dtype=p._data.dtype)
        return g

    @staticmethod
    def _param_array(p, write_back):
        """``p._data`` if it is C-contiguous and writeable; else a contiguous copy, recorded in ``write_back``
        so that ``_write_back`` copies the update into ``p._data`` after the kernel ran."""
        a = p._data
        if a.flags.c_contiguous and a.flags.writeable:
            return a
        tmp = np.ascontiguousarray(a)
        if tmp is a:
            tmp = a.copy()
        write_back.append((p, tmp))
        return tmp

    @staticmethod
    def _write_back(write_back):
        for p, tmp in write_back:
            if p._data.flags.writeable:
                p._data[...] = tmp
            else:
                p._data = tmp

    # ------------------------------------------------------------------ state dict
    def state_dict(self):
        """The optimizer's state as a dict, in PyTorch's layout.

        ``"state"`` maps each parameter's index (counting through the groups in order) to its
        state dict (``"step"`` as a 0-d float32 Tensor, buffers such as ``"exp_avg"`` as Tensors);
        ``"param_groups"`` is the list of group options with ``"params"`` replaced by indices.

        As in PyTorch, the buffers are the optimizer's own Tensors, not copies: training on
        changes them. Save the dict at once, or ``copy.deepcopy`` it to keep a snapshot.
        """
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            if not s or id(p) not in index:
                continue
            state[index[id(p)]] = {k: (_wrap(np.array(float(v), dtype=np.float32)) if k == "step" else v)
                          for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a state saved by ``state_dict()`` (the optimizer must have the same group sizes).

        Buffers are copied (cast to each parameter's dtype), so the loaded optimizer shares
        no memory with ``state_dict``. Group options (``lr``, ...) are taken from the dict.
        """
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("load_state_dict: expected a dict with 'state' and 'param_groups' entries "
                             "(as returned by Optimizer.state_dict())")
        groups = self.param_groups
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError(f"loaded state dict has a different number of parameter groups: "
                             f"{len(saved_groups)} saved, {len(groups)} in this optimizer")
        for i, (g, sg) in enumerate(zip(groups, saved_groups)):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError(f"loaded state dict contains a parameter group that doesn't match the size of "
                                 f"optimizer's group: group {i} has {len(sg['params'])} saved parameters, "
                                 f"{len(g['params'])} in this optimizer")
        id_map = {}
        for g, sg in zip(groups, saved_groups):
            for saved_id, p in zip(sg["params"], g["params"]):
                id_map[saved_id] = p

        new_state = defaultdict(dict)
        for key, saved in state_dict["state"].items():
            if key not in id_map and isinstance(key, str) and key.isdigit():
                key = int(key)  # a state dict whose keys went through a text format
            if key not in id_map:
                raise ValueError(f"loaded state dict has state for parameter {key!r}, which no parameter group "
                                 f"lists")
            p = id_map[key]
            new_state[p] = {name: self._load_state_value(p, key, name, value) for name, value in saved.items()}

        for g, sg in zip(groups, saved_groups):
            sg["params"] = g["params"]
            if "param_names" in g and "param_names" not in sg:
                sg["param_names"] = g["param_names"]
            for name, default in self.defaults.items():
                sg.setdefault(name, default)
        for i, sg in enumerate(saved_groups):
            try:
                self._validate_group(sg)
            except ValueError as e:
                raise ValueError(f"load_state_dict: param group {i}: {e}") from None
        self.state = new_state
        self.param_groups = saved_groups

    @staticmethod
    def _load_state_value(p, index, name, value):
        if name == "step":
            if isinstance(value, Tensor):
                value = value.item()
            elif isinstance(value, np.ndarray):
                value = value.item()
            if not isinstance(value, numbers.Real):
                raise TypeError(f"load_state_dict: state['step'] of parameter {index} must be a number or a "
                                f"one-element Tensor, got {type(value).__name__}")
            return int(value)
        if value is None:
            return None
        if isinstance(value, (Tensor, np.ndarray)):
            arr = value._data if isinstance(value, Tensor) else value
            if arr.shape != p._data.shape:
                raise ValueError(f"load_state_dict: state[{name!r}] of parameter {index} has shape "
                                 f"{tuple(arr.shape)}, but the parameter has shape {tuple(p._data.shape)}")
            return _wrap(np.array(arr, dtype=p._data.dtype, order="C", copy=True))
        return copy.deepcopy(value)

    # ------------------------------------------------------------------ misc
    def __repr__(self):
        lines = [self.__class__.__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)


def _marking_step_called(step):
    """Wrap a subclass's ``step`` so that it records that it ran: ``LRScheduler.step`` warns when it
    is called before the optimizer ever stepped (the classic ordering mistake; PyTorch warns too)."""
    @functools.wraps(step)
    def step_and_mark(self, *args, **kwargs):
        self._opt_called = True
        return step(self, *args, **kwargs)
    step_and_mark._marks_opt_called = True
    return step_and_mark


def _check_real(opt_name, name, value):
    if isinstance(value, Tensor):
        value = value.item()
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{opt_name}: {name} must be a real number, got {type(value).__name__}")
    return value


def _check_nonnegative(opt_name, name, value):
    """``value`` (a real number, or a one-element Tensor) if it is >= 0; else TypeError / ValueError naming
    the optimizer and the option, e.g. "RMSprop: invalid alpha=-0.1; expected alpha >= 0"."""
    value = _check_real(opt_name, name, value)
    if not value >= 0.0:  # NaN too, as PyTorch's "not 0.0 <= value" (a NaN momentum picked no kernel path)
        what = "learning rate lr" if name == "lr" else name
        raise ValueError(f"{opt_name}: invalid {what}={value}; expected {name} >= 0")
    return value
