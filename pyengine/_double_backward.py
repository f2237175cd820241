"""``autograd.grad(..., create_graph=True)``: gradients that are themselves differentiable (WGAN-GP's gradient
penalty, double backward).

The first-order engine (autograd.run_backward) computes on arrays. With ``create_graph`` the pass here walks the
same graph but computes each node's backward with pyengine's differentiable ops on Tensors, so the gradients it
returns carry a graph back to the parameters (and to the graph's inputs), and ``.backward()`` of an expression of
them gives second derivatives. Each Function needs its backward written in ops once: RULES below. A graph with a
node that has no rule raises NotImplementedError naming it (nothing is approximated).

The node's inputs are rebuilt as Tensors from what its Function saved: a leaf input is the leaf itself, an input
made by another node is a Tensor over the saved array whose grad_fn is that node (so second-order gradients flow
on through the original graph, which is retained).
"""
from .tensor import Tensor, _wrap


def _input(node, i, arr):
    """Input ``i`` of ``node`` as a Tensor in the graph (a constant when it does not require grad)."""
    e = node.edges[i]
    if e is None:
        return arr if not hasattr(arr, "shape") else _wrap(arr)
    if type(e) is not tuple:
        return e  # a leaf
    return _wrap(arr, e[0], e[1])


def _sum_to(g, shape):
    """g summed over its broadcast dims down to ``shape`` (Tensor ops: differentiable)."""
    if shape is None or tuple(g.shape) == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(dim=tuple(range(lead)))
    dims = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if dims:
        g = g.sum(dim=dims, keepdim=True)
    return g


def _linear(fn, node, g, need):
    x, w = _input(node, 0, fn.x), _input(node, 1, fn.weight)
    out = g.shape[-1]
    g2 = g.reshape(-1, out)
    return (g.matmul(w) if need[0] else None,
            g2.t().matmul(x.reshape(-1, x.shape[-1])) if need[1] else None,
            g2.sum(0) if need[2] else None)


def _add(fn, node, g, need):
    return (_sum_to(g, node.shapes[0]) if need[0] else None, _sum_to(g, node.shapes[1]) if need[1] else None)


def _sub(fn, node, g, need):
    return (_sum_to(g, node.shapes[0]) if need[0] else None, -_sum_to(g, node.shapes[1]) if need[1] else None)


def _mul(fn, node, g, need):
    a, b = _input(node, 0, fn.a), _input(node, 1, fn.b)
    return (_sum_to(g * b, node.shapes[0]) if need[0] else None, _sum_to(g * a, node.shapes[1]) if need[1] else None)


def _div(fn, node, g, need):
    a, b = _input(node, 0, fn.a), _input(node, 1, fn.b)
    return (_sum_to(g / b, node.shapes[0]) if need[0] else None,
            _sum_to(-g * a / (b * b), node.shapes[1]) if need[1] else None)


def _pow(fn, node, g, need):
    if need[1]:
        raise NotImplementedError("autograd.grad(create_graph=True): pow with a tensor exponent that requires grad")
    a, b = _input(node, 0, fn.a), fn.b
    b = b.item() if hasattr(b, "ndim") and b.ndim == 0 else (_wrap(b) if hasattr(b, "shape") else b)
    return (_sum_to(g * b * a ** (b - 1), node.shapes[0]), None)


def _where(fn, node, g, need):
    from .ops import where
    from .tensor import zeros_like
    cond = _wrap(fn.cond)
    z = zeros_like(g)
    return (None, _sum_to(where(cond, g, z), node.shapes[1]) if need[1] else None,
            _sum_to(where(cond, z, g), node.shapes[2]) if need[2] else None)


def _neg(fn, node, g, need):
    return (-g,)


def _relu(fn, node, g, need):
    return (g * _wrap((fn.x > 0).astype(fn.x.dtype)),)


def _output(node, fn):
    """The node's own output as a Tensor in the graph (grad_fn: the node), for backward rules written in terms of
    the output (tanh, sigmoid, exp): its gradient flows through the node's first-order backward."""
    return _wrap(fn.y, node, 0)


def _tanh(fn, node, g, need):
    y = _output(node, fn)
    return (g * (1 - y * y),)


def _sigmoid(fn, node, g, need):
    y = _output(node, fn)
    return (g * y * (1 - y),)


def _exp(fn, node, g, need):
    return (g * _output(node, fn),)


def _reshape(fn, node, g, need):
    return (g.reshape(node.shapes[0]), None)


def _sum(fn, node, g, need):
    if not fn.keepdim:
        for a in sorted(fn.axes):
            g = g.unsqueeze(a)
    return (g.expand(*fn.shape), None, None)


def _mean(fn, node, g, need):
    (gs, _, _) = _sum(fn, node, g, need)
    return (gs / fn.n, None, None)


_RULES = None


def _rules():
    global _RULES
    if _RULES is None:
        from .nn.functional import Linear
        from .ops.elementwise import Add, Div, Exp, Mul, Neg, Pow, PowConstExponent, Relu, Sigmoid, Sub, Tanh, Where
        from .ops.reduction import Mean, Sum
        from .ops.shape import Reshape
        _RULES = {Linear: _linear, Add: _add, Sub: _sub, Mul: _mul, Div: _div, Pow: _pow, PowConstExponent: _pow,
                  Where: _where,
                  Neg: _neg, Relu: _relu, Tanh: _tanh, Sigmoid: _sigmoid, Exp: _exp, Reshape: _reshape,
                  Sum: _sum, Mean: _mean}
    return _RULES


def grad(outputs, inputs, grad_outputs, allow_unused):
    """autograd.grad with create_graph=True (see the module's docstring). ``grad_outputs``: Tensors or None."""
    from .autograd import _topological_order
    from .tensor import ones_like
    rules = _rules()
    wanted = {id(t) for t in inputs if t.grad_fn is None}
    captures = {}
    for t in inputs:
        if t.grad_fn is not None:
            captures.setdefault(t.grad_fn, []).append(t)
    node_grads, leaf_grads, captured = {}, {}, {}
    starts = []
    for o, g in zip(outputs, grad_outputs):
        if g is None:
            if o._data.size != 1:
                raise RuntimeError("grad: grad can be implicitly created only for scalar outputs")
            g = ones_like(o)
        elif not isinstance(g, Tensor):
            g = _wrap(g)
        if o.grad_fn is None:
            if id(o) in wanted:
                leaf_grads[id(o)] = g if id(o) not in leaf_grads else leaf_grads[id(o)] + g
            continue
        slots = node_grads.get(o.grad_fn)
        if slots is None:
            slots = node_grads[o.grad_fn] = [None] * o.grad_fn.n_outputs
            starts.append(o.grad_fn)
        i = o._out_index
        slots[i] = g if slots[i] is None else slots[i] + g
    order = _topological_order(starts)
    # the nodes from which a wanted input is reachable (order lists a node after the nodes its edges lead to)
    relevant = set()
    for node in order:
        if node in captures or any(e is not None and (id(e) in wanted if type(e) is not tuple else e[0] in relevant)
                                   for e in node.edges):
            relevant.add(node)
    for node in reversed(order):
        slots = node_grads.pop(node, None)
        if slots is None or node not in relevant:
            continue
        for t in captures.get(node, ()):
            g = slots[t._out_index]
            if g is not None:
                captured[id(t)] = g
        need = [e is not None and (id(e) in wanted if type(e) is not tuple else e[0] in relevant) for e in node.edges]
        if not any(need):
            continue
        if node.n_outputs != 1:
            raise NotImplementedError(f"autograd.grad(create_graph=True): {node.name} has several outputs")
        rule = rules.get(type(node.fn))
        if rule is None:
            raise NotImplementedError(
                f"autograd.grad(create_graph=True): {node.name} has no differentiable backward in pyengine yet "
                f"(supported: {', '.join(sorted(c.__name__ for c in rules))})")
        if slots[0] is None:
            continue
        grads = rule(node.fn, node, slots[0], need)
        for e, gi, n in zip(node.edges, grads, need):
            if not n or gi is None:
                continue
            if type(e) is tuple:
                s = node_grads.get(e[0])
                if s is None:
                    s = node_grads[e[0]] = [None] * e[0].n_outputs
                s[e[1]] = gi if s[e[1]] is None else s[e[1]] + gi
            else:
                leaf_grads[id(e)] = gi if id(e) not in leaf_grads else leaf_grads[id(e)] + gi
    out = []
    for t in inputs:
        g = leaf_grads.get(id(t)) if t.grad_fn is None else captured.get(id(t))
        if g is None and not allow_unused:
            raise RuntimeError("grad: one of the differentiated Tensors appears to not have been used in the graph. "
                               "Set allow_unused=True if this is the desired behavior.")
        if g is not None and tuple(g.shape) != tuple(t.shape):
            g = g.expand(*t.shape) if g.ndim <= t.ndim else _sum_to(g, t.shape)
        out.append(g)
    return tuple(out)

