"""pyengine.optim: SGD, Adam, AdamW and the lr schedulers.

Every optimizer trajectory is checked step by step, in float64, against (a) a NumPy
implementation written here from the published formulas and (b) torch.optim when PyTorch is
installed. The problem is a tiny MLP, loss = mean((tanh(X W + b) V - Y)^2), whose gradients
come from pyengine's autograd (pyengine), from an analytic NumPy gradient (reference) and from
torch.autograd (torch). Schedulers are checked against closed forms and against torch.
"""
import copy
import math
import warnings
from bisect import bisect_right

import numpy as np
import pytest

import pyengine as pe
from pyengine import optim
from pyengine.optim import lr_scheduler

TOL = 1e-12  # float64 trajectories over <= 20 steps

# --------------------------------------------------------------------------- the problem

_rng = np.random.default_rng(0)
X = _rng.standard_normal((8, 3))
Y = _rng.standard_normal((8, 2))
INIT = [0.5 * _rng.standard_normal((3, 4)), 0.1 * _rng.standard_normal(4), 0.5 * _rng.standard_normal((4, 2))]


def loss_pyengine(params):
    W, b, V = params
    r = pe.tanh(pe.tensor(X) @ W + b) @ V - pe.tensor(Y)
    return (r * r).mean()


def grads_numpy(params):
    """Analytic gradient of the MLP loss."""
    W, b, V = params
    h = np.tanh(X @ W + b)
    r = h @ V - Y
    d_out = 2.0 * r / r.size
    dV = h.T @ d_out
    dz = (d_out @ V.T) * (1.0 - h * h)
    return [X.T @ dz, dz.sum(0), dV]


def loss_torch(torch, params):
    W, b, V = params
    r = torch.tanh(torch.from_numpy(X) @ W + b) @ V - torch.from_numpy(Y)
    return (r * r).mean()


def _active(has_grad, step, i):
    return has_grad is None or has_grad(step, i)


def run_pyengine(make_opt, steps, has_grad=None, init=INIT):
    """Train with a pyengine optimizer; ``has_grad(step, i)`` False leaves param i's grad None."""
    params = [pe.tensor(a.copy(), requires_grad=True) for a in init]
    opt = make_opt(optim, params)
    traj = []
    for k in range(steps):
        opt.zero_grad()
        loss_pyengine(params).backward()
        for i, p in enumerate(params):
            if not _active(has_grad, k, i):
                p.grad = None
        opt.step()
        traj.append([p._data.copy() for p in params])
    return traj


def run_torch(torch, make_opt, steps, has_grad=None, init=INIT):
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = make_opt(torch.optim, params)
    traj = []
    for k in range(steps):
        opt.zero_grad()
        loss_torch(torch, params).backward()
        for i, p in enumerate(params):
            if not _active(has_grad, k, i):
                p.grad = None
        opt.step()
        traj.append([p.detach().numpy().copy() for p in params])
    return traj


def run_reference(ref_opt, steps, has_grad=None, init=INIT):
    params = [a.copy() for a in init]
    traj = []
    for k in range(steps):
        grads = grads_numpy(params)
        grads = [g if _active(has_grad, k, i) else None for i, g in enumerate(grads)]
        ref_opt.step(params, grads)
        traj.append([p.copy() for p in params])
    return traj


def assert_same_trajectory(a, b, tol=TOL):
    assert len(a) == len(b)
    for k, (pa, pb) in enumerate(zip(a, b)):
        for i, (x, y) in enumerate(zip(pa, pb)):
            np.testing.assert_allclose(x, y, rtol=tol, atol=tol, err_msg=f"step {k + 1}, parameter {i}")


# --------------------------------------------------------------------------- reference optimizers (from the papers)

class RefSGD:
    """SGD with momentum as PyTorch documents it (Sutskever et al. 2013 form)."""

    def __init__(self, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False,
                 lrs=None):
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.weight_decay, self.nesterov, self.maximize = weight_decay, nesterov, maximize
        self.lrs = lrs  # per-parameter lr (param groups)
        self.buf = {}

    def step(self, params, grads):
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                continue
            lr = self.lr if self.lrs is None else self.lrs[i]
            d = -g if self.maximize else g
            d = d + self.weight_decay * p
            if self.momentum:
                if i not in self.buf:
                    self.buf[i] = d.copy()
                else:
                    self.buf[i] = self.momentum * self.buf[i] + (1 - self.dampening) * d
                d = d + self.momentum * self.buf[i] if self.nesterov else self.buf[i]
            p -= lr * d


class RefAdam:
    """Adam (Kingma & Ba 2015, Algorithm 1), L2 or decoupled (Loshchilov & Hutter 2019) weight decay,
    AMSGrad (Reddi et al. 2018, PyTorch's variant: max of the raw second moments)."""

    def __init__(self, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
                 decoupled=False, lrs=None):
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.weight_decay, self.amsgrad, self.maximize, self.decoupled = weight_decay, amsgrad, maximize, decoupled
        self.lrs = lrs
        self.t, self.m, self.v, self.v_max = {}, {}, {}, {}

    def step(self, params, grads):
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                continue
            lr = self.lr if self.lrs is None else self.lrs[i]
            t = self.t[i] = self.t.get(i, 0) + 1
            m, v = self.m.get(i, np.zeros_like(p)), self.v.get(i, np.zeros_like(p))
            if self.maximize:
                g = -g
            if self.decoupled:
                p *= 1 - lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
            m = self.beta1 * m + (1 - self.beta1) * g
            v = self.beta2 * v + (1 - self.beta2) * g * g
            self.m[i], self.v[i] = m, v
            if self.amsgrad:
                v = self.v_max[i] = np.maximum(self.v_max.get(i, np.zeros_like(p)), v)
            m_hat = m / (1 - self.beta1 ** t)
            v_hat = v / (1 - self.beta2 ** t)
            p -= lr * m_hat / (np.sqrt(v_hat) + self.eps)


# --------------------------------------------------------------------------- SGD

SGD_CASES = [  # momentum, dampening, nesterov, weight_decay, maximize
    (0.0, 0.0, False, 0.0, False),
    (0.9, 0.0, False, 0.0, False),
    (0.9, 0.1, False, 0.01, False),
    (0.8, 0.0, True, 0.0, False),
    (0.9, 0.0, True, 0.05, False),
    (0.0, 0.0, False, 0.1, True),
    (0.9, 0.2, False, 0.05, True),
    (0.7, 0.0, True, 0.02, True),
]


def _sgd_maker(momentum, dampening, nesterov, weight_decay, maximize, lr=0.1):
    return lambda mod, ps: mod.SGD(ps, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                   nesterov=nesterov, maximize=maximize)


@pytest.mark.parametrize("case", SGD_CASES, ids=lambda c: "mom{}-damp{}-nest{}-wd{}-max{}".format(*c))
def test_sgd_matches_reference(case):
    traj = run_pyengine(_sgd_maker(*case), 15)
    momentum, dampening, nesterov, weight_decay, maximize = case
    ref = RefSGD(0.1, momentum, dampening, weight_decay, nesterov, maximize)
    assert_same_trajectory(traj, run_reference(ref, 15))


@pytest.mark.parametrize("case", SGD_CASES, ids=lambda c: "mom{}-damp{}-nest{}-wd{}-max{}".format(*c))
def test_sgd_matches_torch(case):
    torch = pytest.importorskip("torch")
    assert_same_trajectory(run_pyengine(_sgd_maker(*case), 15), run_torch(torch, _sgd_maker(*case), 15))


# --------------------------------------------------------------------------- Adam / AdamW

ADAM_CASES = [  # class, weight_decay, amsgrad, maximize
    ("Adam", 0.0, False, False),
    ("Adam", 0.1, False, False),
    ("Adam", 0.1, False, True),
    ("Adam", 0.0, True, False),
    ("Adam", 0.05, True, True),
    ("AdamW", None, False, False),  # default weight_decay=1e-2
    ("AdamW", 0.3, False, True),
    ("AdamW", 0.1, True, False),
]


def _adam_maker(cls, weight_decay, amsgrad, maximize, lr=0.05, betas=(0.8, 0.95), eps=1e-8):
    def make(mod, ps):
        kw = {} if weight_decay is None else {"weight_decay": weight_decay}
        return getattr(mod, cls)(ps, lr=lr, betas=betas, eps=eps, amsgrad=amsgrad, maximize=maximize, **kw)
    return make


def _ref_adam(cls, weight_decay, amsgrad, maximize, **kw):
    if weight_decay is None:
        weight_decay = 1e-2
    return RefAdam(0.05, (0.8, 0.95), 1e-8, weight_decay, amsgrad, maximize, decoupled=cls == "AdamW", **kw)


@pytest.mark.parametrize("case", ADAM_CASES, ids=lambda c: "{}-wd{}-ams{}-max{}".format(*c))
def test_adam_matches_reference(case):
    assert_same_trajectory(run_pyengine(_adam_maker(*case), 20), run_reference(_ref_adam(*case), 20))


@pytest.mark.parametrize("case", ADAM_CASES, ids=lambda c: "{}-wd{}-ams{}-max{}".format(*c))
def test_adam_matches_torch(case):
    torch = pytest.importorskip("torch")
    assert_same_trajectory(run_pyengine(_adam_maker(*case), 20), run_torch(torch, _adam_maker(*case), 20))


# --------------------------------------------------------------------------- RMSprop / Adagrad


class RefRMSprop:
    """RMSprop as torch.optim.RMSprop's docs write the algorithm (Tieleman & Hinton 2012; centered:
    Graves 2013): eps outside the root, momentum buffer of g / avg, lr applied to the buffer."""

    def __init__(self, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False):
        self.lr, self.alpha, self.eps, self.weight_decay = lr, alpha, eps, weight_decay
        self.momentum, self.centered, self.maximize = momentum, centered, maximize
        self.v, self.g_ave, self.b = {}, {}, {}

    def step(self, params, grads):
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                continue
            if self.maximize:
                g = -g
            g = g + self.weight_decay * p
            v = self.v[i] = self.alpha * self.v.get(i, 0.0) + (1 - self.alpha) * g ** 2
            if self.centered:
                g_ave = self.g_ave[i] = self.alpha * self.g_ave.get(i, 0.0) + (1 - self.alpha) * g
                v = v - g_ave ** 2
            if self.momentum > 0:
                b = self.b[i] = self.momentum * self.b.get(i, 0.0) + g / (np.sqrt(v) + self.eps)
                p -= self.lr * b
            else:
                p -= self.lr * g / (np.sqrt(v) + self.eps)


class RefAdagrad:
    """Adagrad as torch.optim.Adagrad's docs write the algorithm (Duchi et al. 2011) with lr decay."""

    def __init__(self, lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 maximize=False):
        self.lr, self.lr_decay, self.weight_decay, self.eps = lr, lr_decay, weight_decay, eps
        self.init, self.maximize = initial_accumulator_value, maximize
        self.t, self.sum = {}, {}

    def step(self, params, grads):
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                continue
            t = self.t[i] = self.t.get(i, 0) + 1
            if self.maximize:
                g = -g
            g = g + self.weight_decay * p
            lr_t = self.lr / (1 + (t - 1) * self.lr_decay)
            s = self.sum[i] = self.sum.get(i, self.init) + g * g
            p -= lr_t * g / (np.sqrt(s) + self.eps)


RMSPROP_CASES = [  # alpha, weight_decay, momentum, centered, maximize
    (0.99, 0.0, 0.0, False, False),
    (0.9, 0.1, 0.0, False, False),
    (0.9, 0.0, 0.9, False, True),
    (0.8, 0.0, 0.0, True, False),
    (0.95, 0.05, 0.7, True, True),
]
ADAGRAD_CASES = [  # lr_decay, weight_decay, initial_accumulator_value, maximize
    (0.0, 0.0, 0.0, False),
    (0.1, 0.0, 0.1, False),
    (0.0, 0.1, 0.0, True),
    (0.05, 0.05, 0.5, True),
]


def _rmsprop_maker(alpha, weight_decay, momentum, centered, maximize):
    return lambda mod, ps: mod.RMSprop(ps, lr=0.01, alpha=alpha, eps=1e-8, weight_decay=weight_decay,
                                       momentum=momentum, centered=centered, maximize=maximize)


def _adagrad_maker(lr_decay, weight_decay, initial_accumulator_value, maximize):
    return lambda mod, ps: mod.Adagrad(ps, lr=0.1, lr_decay=lr_decay, weight_decay=weight_decay,
                                       initial_accumulator_value=initial_accumulator_value, maximize=maximize)


@pytest.mark.parametrize("case", RMSPROP_CASES, ids=lambda c: "alpha{}-wd{}-mom{}-cent{}-max{}".format(*c))
def test_rmsprop_matches_reference_and_torch(case):
    traj = run_pyengine(_rmsprop_maker(*case), 20)
    alpha, weight_decay, momentum, centered, maximize = case
    assert_same_trajectory(traj, run_reference(RefRMSprop(0.01, alpha, 1e-8, weight_decay, momentum, centered,
                                                          maximize), 20))
    torch = pytest.importorskip("torch")
    assert_same_trajectory(traj, run_torch(torch, _rmsprop_maker(*case), 20))


@pytest.mark.parametrize("case", ADAGRAD_CASES, ids=lambda c: "lrdecay{}-wd{}-init{}-max{}".format(*c))
def test_adagrad_matches_reference_and_torch(case):
    traj = run_pyengine(_adagrad_maker(*case), 20)
    assert_same_trajectory(traj, run_reference(RefAdagrad(0.1, *case[:3], 1e-10, case[3]), 20))
    torch = pytest.importorskip("torch")
    assert_same_trajectory(traj, run_torch(torch, _adagrad_maker(*case), 20))


def test_rmsprop_adagrad_skip_parameters_without_gradient():
    """Steps are counted per parameter (Adagrad's lr decay uses its own t), as torch.optim does."""
    rms, ada = _rmsprop_maker(*RMSPROP_CASES[4]), _adagrad_maker(*ADAGRAD_CASES[3])
    traj_rms = run_pyengine(rms, 15, has_grad=late)
    traj_ada = run_pyengine(ada, 15, has_grad=late)
    assert_same_trajectory(traj_ada, run_reference(RefAdagrad(0.1, 0.05, 0.05, 0.5, 1e-10, True), 15, has_grad=late))
    torch = pytest.importorskip("torch")
    assert_same_trajectory(traj_rms, run_torch(torch, rms, 15, has_grad=late))
    assert_same_trajectory(traj_ada, run_torch(torch, ada, 15, has_grad=late))


def test_rmsprop_adagrad_float32_match_torch():
    torch = pytest.importorskip("torch")
    for cls, kw in (("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)), ("Adagrad", dict(lr=0.1, lr_decay=0.01))):
        _float32_matches_torch(torch, lambda mod, ps: getattr(mod, cls)(ps, **kw))


def test_rmsprop_adagrad_state_has_torch_keys():
    torch = pytest.importorskip("torch")
    for make in (_rmsprop_maker(0.9, 0.0, 0.9, True, False), _rmsprop_maker(0.9, 0.0, 0.0, False, False),
                 _adagrad_maker(0.1, 0.0, 0.2, False)):
        ours = [pe.tensor(a.copy(), requires_grad=True) for a in INIT]
        theirs = [torch.tensor(a.copy(), requires_grad=True) for a in INIT]
        opt, topt = make(optim, ours), make(torch.optim, theirs)
        assert set(opt.state_dict()["state"]) == set(topt.state_dict()["state"])  # Adagrad: made at construction
        _train(opt, ours, 2)
        topt.zero_grad()
        loss_torch(torch, theirs).backward()
        topt.step()
        topt.step()
        sd, tsd = opt.state_dict(), topt.state_dict()
        for i in tsd["state"]:
            assert set(sd["state"][i]) == set(tsd["state"][i])
            assert sd["state"][i]["step"].item() == 2
        assert set(sd["param_groups"][0]) <= set(tsd["param_groups"][0])


def test_rmsprop_adagrad_one_kernel_call_per_group(monkeypatch):
    calls = _count_kernel_calls(monkeypatch, "rmsprop_update")
    run_pyengine(lambda mod, ps: mod.RMSprop([{"params": ps[:2]}, {"params": ps[2:], "centered": True}]), 3)
    assert calls == [2, 1] * 3
    calls = _count_kernel_calls(monkeypatch, "adagrad_update")
    run_pyengine(lambda mod, ps: mod.Adagrad(ps), 3)
    assert calls == [3] * 3


def test_adamw_defaults_and_is_adam_with_decoupled_decay():
    w = pe.tensor(np.ones(3), requires_grad=True)
    opt = optim.AdamW([w])
    g = opt.param_groups[0]
    assert g["weight_decay"] == 1e-2 and g["decoupled_weight_decay"] is True and g["lr"] == 1e-3
    assert isinstance(opt, optim.Adam)
    assert optim.Adam([w]).param_groups[0]["weight_decay"] == 0


# --------------------------------------------------------------------------- groups, late starters, kernel calls

def test_param_groups_with_different_options():
    def make(mod, ps):
        return mod.SGD([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.02, "momentum": 0.5}], lr=0.1, momentum=0.9)
    traj = run_pyengine(make, 12)
    # the reference: two optimizers, one per group
    params = [a.copy() for a in INIT]
    ref_a, ref_b = RefSGD(0.1, 0.9), RefSGD(0.02, 0.5)
    ref = []
    for _ in range(12):
        grads = grads_numpy(params)
        ref_a.step(params[:2], grads[:2])
        ref_b.step(params[2:], grads[2:])
        ref.append([p.copy() for p in params])
    assert_same_trajectory(traj, ref)


def test_param_groups_adam_different_lrs():
    def make(mod, ps):
        return mod.Adam([{"params": [ps[0]], "lr": 0.01}, {"params": ps[1:]}], lr=0.05, betas=(0.8, 0.95))
    ref = RefAdam(0.05, (0.8, 0.95), lrs=[0.01, 0.05, 0.05])
    assert_same_trajectory(run_pyengine(make, 15), run_reference(ref, 15))


def test_param_groups_match_torch():
    torch = pytest.importorskip("torch")

    def make(mod, ps):
        return mod.AdamW([{"params": [ps[0], ps[2]], "lr": 0.01, "weight_decay": 0.5},
                          {"params": [ps[1]], "betas": (0.5, 0.9), "amsgrad": True}], lr=0.05)
    assert_same_trajectory(run_pyengine(make, 15), run_torch(torch, make, 15))


def late(step, i):
    """Parameter 0 gets no gradient for the first 4 steps, parameter 2 none at steps 6-7."""
    return not ((i == 0 and step < 4) or (i == 2 and step in (6, 7)))


@pytest.mark.parametrize("case", [ADAM_CASES[1], ADAM_CASES[4], ADAM_CASES[6]], ids=lambda c: c[0])
def test_adam_step_counts_are_per_parameter(case):
    traj = run_pyengine(_adam_maker(*case), 15, has_grad=late)
    assert_same_trajectory(traj, run_reference(_ref_adam(*case), 15, has_grad=late))
    torch = pytest.importorskip("torch")
    assert_same_trajectory(traj, run_torch(torch, _adam_maker(*case), 15, has_grad=late))


def test_sgd_momentum_buffer_starts_with_first_gradient():
    case = (0.9, 0.3, False, 0.01, False)
    traj = run_pyengine(_sgd_maker(*case), 12, has_grad=late)
    assert_same_trajectory(traj, run_reference(RefSGD(0.1, 0.9, 0.3, 0.01), 12, has_grad=late))
    torch = pytest.importorskip("torch")
    assert_same_trajectory(traj, run_torch(torch, _sgd_maker(*case), 12, has_grad=late))


def _count_kernel_calls(monkeypatch, name):
    backend = pe.get_backend("cpu")
    calls = []
    kernel = getattr(backend, name)

    def counting(params, *args, **kwargs):
        calls.append(len(params))
        return kernel(params, *args, **kwargs)

    monkeypatch.setattr(backend, name, counting)
    return calls


def test_one_kernel_call_per_group_and_step(monkeypatch):
    calls = _count_kernel_calls(monkeypatch, "adam_update")
    run_pyengine(lambda mod, ps: mod.Adam([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.1}]), 3)
    assert calls == [2, 1] * 3
    calls.clear()
    # parameter 0 starts 4 steps late: its group needs one call per distinct step count while they differ
    run_pyengine(lambda mod, ps: mod.Adam(ps), 6, has_grad=lambda k, i: i != 0 or k >= 4)
    assert calls == [2, 2, 2, 2, 1, 2, 1, 2]  # steps 1-4: params 1, 2 only; steps 5-6: two step counts

    calls = _count_kernel_calls(monkeypatch, "sgd_update")
    run_pyengine(lambda mod, ps: mod.SGD(ps, lr=0.1, momentum=0.9), 3)
    assert calls == [3, 3, 3]


def test_kernels_come_from_the_active_backend(monkeypatch):
    from pyengine.backend import reference
    previous = pe.get_backend("cpu").name
    pe.set_backend("cpu")  # loads the cpu backend (which may copy reference kernels) before the patch
    calls = []
    monkeypatch.setattr(reference, "sgd_update", lambda params, *a, **k: calls.append(len(params)))
    w = pe.tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([w], lr=0.1)  # built before the switch: the kernel is looked up at step time
    pe.set_backend("reference")
    try:
        w.grad = pe.ones(3, dtype=pe.float64)
        opt.step()
    finally:
        pe.set_backend(previous)
    assert calls == [1]
    np.testing.assert_array_equal(w._data, np.ones(3))  # the stub did nothing


def test_add_param_group_mid_training_matches_torch():
    torch = pytest.importorskip("torch")

    def train(mod, params):
        opt = mod.Adam(params[:2], lr=0.05)
        out = []
        for k in range(10):
            if k == 4:
                opt.add_param_group({"params": [params[2]], "lr": 0.02, "weight_decay": 0.1})
            opt.zero_grad()
            loss = loss_pyengine(params) if mod is optim else loss_torch(torch, params)
            loss.backward()
            if k < 4:
                params[2].grad = None
            opt.step()
            out.append([np.array(p.detach().numpy() if mod is not optim else p._data) for p in params])
        return out

    a = train(optim, [pe.tensor(x.copy(), requires_grad=True) for x in INIT])
    b = train(torch.optim, [torch.tensor(x.copy(), requires_grad=True) for x in INIT])
    assert_same_trajectory(a, b)


def _float32_matches_torch(torch, make):
    """10 steps on float32 parameters with ``make(optim module, params)``: pyengine equals torch to float32's
    precision, and the parameters stay float32."""
    init32 = [a.astype(np.float32) for a in INIT]
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)

    def train(mod, params, as_tensor, tanh):
        opt = make(mod, params)
        for _ in range(10):
            opt.zero_grad()
            W, b, V = params
            r = tanh(as_tensor(X32) @ W + b) @ V - as_tensor(Y32)
            (r * r).mean().backward()
            opt.step()
        return [np.array(p.detach().numpy() if mod is not optim else p._data) for p in params]

    a = train(optim, [pe.tensor(x.copy(), requires_grad=True) for x in init32], pe.tensor, pe.tanh)
    b = train(torch.optim, [torch.tensor(x.copy(), requires_grad=True) for x in init32], torch.from_numpy,
              torch.tanh)
    for x, y in zip(a, b):
        assert x.dtype == np.float32
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_float32_parameters_match_torch():
    torch = pytest.importorskip("torch")
    _float32_matches_torch(torch, lambda mod, ps: mod.AdamW(ps, lr=0.02, weight_decay=0.1))


# --------------------------------------------------------------------------- gradients and parameters of any layout

def test_gradient_of_other_dtype_or_layout_is_converted():
    def one_step(grad):
        w = pe.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
        opt = optim.Adam([w], lr=0.1)
        w.grad = grad
        opt.step()
        assert opt.state[w]["exp_avg"]._data.dtype == np.float64
        return w._data.copy()

    g = np.linspace(-1, 1, 6).reshape(2, 3)
    expected = one_step(pe.tensor(g))
    np.testing.assert_array_equal(one_step(pe.from_numpy(np.asfortranarray(g))), expected)  # not C-contiguous
    grad32 = pe.tensor(g.astype(np.float32))
    assert grad32.dtype == pe.float32
    np.testing.assert_allclose(one_step(grad32), expected, rtol=0, atol=1e-7)
    w = pe.tensor(np.ones(3), requires_grad=True)
    w.grad = pe.tensor(np.ones(3, dtype=np.float32))
    optim.SGD([w], lr=0.5).step()
    assert w._data.dtype == np.float64 and np.allclose(w._data, 0.5)


def test_non_contiguous_parameter_is_updated_in_place_of_its_data():
    base = np.arange(12.0).reshape(3, 4)
    w = pe.from_numpy(base.T.copy().T)  # Fortran-ordered: not C-contiguous
    assert not w._data.flags.c_contiguous
    w.requires_grad_()
    v = pe.tensor(base.copy(), requires_grad=True)
    opts = [optim.SGD([w], lr=0.1, momentum=0.9), optim.SGD([v], lr=0.1, momentum=0.9)]
    for _ in range(3):
        for p, opt in zip((w, v), opts):
            p.grad = pe.tensor(np.full((3, 4), 0.5))
            opt.step()
    np.testing.assert_array_equal(w._data, v._data)


def test_gradient_of_wrong_shape_raises():
    w = pe.tensor(np.ones(3), requires_grad=True)
    w.grad = pe.tensor(np.ones(4))
    with pytest.raises(RuntimeError, match=r"shape \(3,\).*shape \(4,\)"):
        optim.SGD([w], lr=0.1).step()


# --------------------------------------------------------------------------- zero_grad, closure, skipping

def test_zero_grad_set_to_none_and_skip():
    w = pe.tensor(np.ones(3), requires_grad=True)
    v = pe.tensor(np.ones(2), requires_grad=True)
    opt = optim.Adam([w, v], lr=0.1)
    (w.sum() * 2 + v.sum()).backward()
    opt.zero_grad()  # set_to_none=True by default
    assert w.grad is None and v.grad is None
    w.grad = pe.tensor(np.ones(3))
    opt.step()  # v has no grad: unchanged, no state
    np.testing.assert_array_equal(v._data, np.ones(2))
    assert v not in opt.state or not opt.state[v]
    assert opt.state[w]["step"] == 1
    assert not np.array_equal(w._data, np.ones(3))


def test_zero_grad_keep_tensors():
    w = pe.tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([w], lr=0.1, weight_decay=0.5)
    (w * 3).sum().backward()
    g = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is g and np.array_equal(g._data, np.zeros(3))
    opt.step()  # a zero gradient still steps: weight decay moves w, as in PyTorch
    np.testing.assert_allclose(w._data, np.full(3, 1 - 0.1 * 0.5))


def test_step_with_closure_returns_loss():
    params = [pe.tensor(a.copy(), requires_grad=True) for a in INIT]
    opt = optim.SGD(params, lr=0.1)

    def closure():
        opt.zero_grad()
        loss = loss_pyengine(params)
        loss.backward()
        return loss

    with pe.no_grad():
        loss = opt.step(closure)  # the closure runs with grad enabled
    assert isinstance(loss, pe.Tensor)
    assert_same_trajectory([[p._data for p in params]], run_reference(RefSGD(0.1), 1))


# --------------------------------------------------------------------------- state dicts

def _train(opt, params, steps):
    for _ in range(steps):
        opt.zero_grad()
        loss_pyengine(params).backward()
        opt.step()


MAKERS = {
    "sgd": lambda mod, ps: mod.SGD([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.02}], lr=0.1, momentum=0.9,
                                   nesterov=True),
    "adam": lambda mod, ps: mod.Adam([{"params": ps[:1], "lr": 0.01}, {"params": ps[1:]}], lr=0.05),
    "adamw-amsgrad": lambda mod, ps: mod.AdamW(ps, lr=0.05, amsgrad=True, weight_decay=0.2),
    "rmsprop": lambda mod, ps: mod.RMSprop([{"params": ps[:1], "centered": True}, {"params": ps[1:]}], lr=0.01,
                                           momentum=0.9, weight_decay=0.1),
    "adagrad": lambda mod, ps: mod.Adagrad([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.05}], lr=0.1,
                                           lr_decay=0.1, initial_accumulator_value=0.1),
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_state_dict_round_trip_resumes_identically(name):
    make = MAKERS[name]
    params = [pe.tensor(a.copy(), requires_grad=True) for a in INIT]
    opt = make(optim, params)
    _train(opt, params, 5)
    saved = copy.deepcopy(opt.state_dict())
    resumed_params = [pe.tensor(p._data.copy(), requires_grad=True) for p in params]
    resumed = make(optim, resumed_params)
    resumed.load_state_dict(saved)
    for value in saved["state"].values():  # the loaded optimizer owns copies
        for k, t in value.items():
            if isinstance(t, pe.Tensor) and k != "step":
                t._data[...] = 1e6
    _train(opt, params, 5)
    _train(resumed, resumed_params, 5)
    for p, q in zip(params, resumed_params):
        np.testing.assert_array_equal(p._data, q._data)
    assert resumed.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_state_dict_layout():
    params = [pe.tensor(a.copy(), requires_grad=True) for a in INIT]
    opt = optim.Adam([{"params": params[:2], "lr": 0.01}, {"params": params[2:]}], lr=0.05)
    _train(opt, params, 3)
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][0]["lr"] == 0.01 and sd["param_groups"][1]["betas"] == (0.9, 0.999)
    assert set(sd["state"]) == {0, 1, 2}
    s0 = sd["state"][0]
    assert set(s0) == {"step", "exp_avg", "exp_avg_sq"}
    assert isinstance(s0["step"], pe.Tensor) and s0["step"].item() == 3 and s0["step"].dtype == pe.float32
    assert isinstance(s0["exp_avg"], pe.Tensor) and s0["exp_avg"].shape == (3, 4)
    assert s0["exp_avg"] is opt.state[params[0]]["exp_avg"]  # references, as in PyTorch
    sgd = optim.SGD(params, lr=0.1, momentum=0.9)
    _train(sgd, params, 1)
    assert set(sgd.state_dict()["state"][1]) == {"momentum_buffer"}
    assert optim.SGD(params, lr=0.1).state_dict()["state"] == {}


def test_state_dict_loads_into_torch_and_back():
    torch = pytest.importorskip("torch")
    make = MAKERS["adam"]
    params = [pe.tensor(a.copy(), requires_grad=True) for a in INIT]
    opt = make(optim, params)
    _train(opt, params, 4)
    sd = opt.state_dict()
    to_torch = {"state": {i: {k: torch.tensor(v._data.copy()) for k, v in s.items()} for i, s in sd["state"].items()},
                "param_groups": copy.deepcopy(sd["param_groups"])}
    tparams = [torch.tensor(p._data.copy(), requires_grad=True) for p in params]
    topt = make(torch.optim, tparams)
    topt.load_state_dict(to_torch)
    # and torch's state dict back into a fresh pyengine optimizer
    tsd = topt.state_dict()
    back = {"state": {i: {k: pe.tensor(v.detach().numpy().copy()) for k, v in s.items()}
                      for i, s in tsd["state"].items()},
            "param_groups": [{k: v for k, v in g.items() if k in sd["param_groups"][0] or k == "params"}
                             for g in tsd["param_groups"]]}
    params2 = [pe.tensor(p._data.copy(), requires_grad=True) for p in params]
    opt2 = make(optim, params2)
    opt2.load_state_dict(back)
    for _ in range(5):
        for o, ps in ((opt, params), (opt2, params2)):
            o.zero_grad()
            loss_pyengine(ps).backward()
            o.step()
        topt.zero_grad()
        loss_torch(torch, tparams).backward()
        topt.step()
        for p, q, t in zip(params, params2, tparams):
            np.testing.assert_array_equal(p._data, q._data)
            np.testing.assert_allclose(p._data, t.detach().numpy(), rtol=0, atol=TOL)


def test_load_state_dict_errors():
    params = [pe.tensor(a.copy(), requires_grad=True) for a in INIT]
    opt = optim.Adam([{"params": params[:2]}, {"params": params[2:]}])
    _train(opt, params, 1)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="different number of parameter groups: 2 saved, 1"):
        optim.Adam(params).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size"):
        optim.Adam([{"params": params[:1]}, {"params": params[1:]}]).load_state_dict(sd)
    swapped = [pe.tensor(a.copy(), requires_grad=True) for a in INIT]
    with pytest.raises(ValueError, match=r"state\['exp_avg'\] of parameter 0 has shape \(3, 4\).*shape \(4,\)"):
        optim.Adam([{"params": [swapped[1], swapped[0]]}, {"params": swapped[2:]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="expected a dict with 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})
    bad = copy.deepcopy(sd)
    bad["param_groups"][0]["lr"] = -1.0
    with pytest.raises(ValueError, match="param group 0.*learning rate"):
        optim.Adam([{"params": params[:2]}, {"params": params[2:]}]).load_state_dict(bad)


# --------------------------------------------------------------------------- errors and repr

def test_constructor_errors():
    w = pe.tensor(np.ones(3), requires_grad=True)
    v = pe.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [w]}, {"params": [v, w]}], lr=0.1)
    with pytest.raises(ValueError, match="duplicate"):
        optim.SGD([w, w], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([w * 2], lr=0.1)
    with pytest.raises(ValueError, match="learning rate lr=-0.1"):
        optim.SGD([w], lr=-0.1)
    with pytest.raises(ValueError, match="learning rate"):
        optim.Adam([{"params": [w], "lr": -1.0}])
    with pytest.raises(ValueError, match="beta parameter at index 0: 1.0"):
        optim.Adam([w], betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="beta parameter at index 1: -0.1"):
        optim.AdamW([w], betas=(0.9, -0.1))
    with pytest.raises(ValueError, match="eps=-1e-08"):
        optim.Adam([w], eps=-1e-8)
    with pytest.raises(ValueError, match="weight_decay"):
        optim.AdamW([w], weight_decay=-0.1)
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD([w], lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([w], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([w], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(TypeError, match="iterable of Tensors"):
        optim.SGD(w, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.Adam([np.ones(3)])
    with pytest.raises(TypeError, match="ordered collections"):
        optim.Adam({w})
    with pytest.raises(ValueError, match="floating point"):
        optim.Adam([pe.tensor([1, 2])])
    opt = optim.SGD([w], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": w})
    with pytest.raises(ValueError, match="betas must be a pair"):
        optim.Adam([w], betas=(0.9,))
    for option in ("lr", "alpha", "eps", "weight_decay", "momentum"):
        with pytest.raises(ValueError, match=rf"RMSprop: invalid .*{option}=-0.5; expected {option} >= 0"):
            optim.RMSprop([w], **{option: -0.5})
    for option in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
        with pytest.raises(ValueError, match=rf"Adagrad: invalid .*{option}=-0.5; expected {option} >= 0"):
            optim.Adagrad([w], **{option: -0.5})
    with pytest.raises(TypeError, match="RMSprop: alpha must be a real number"):
        optim.RMSprop([w], alpha="0.9")
    with pytest.raises(NotImplementedError, match="Adagrad: differentiable=True"):
        optim.Adagrad([w], differentiable=True)


def test_named_params_generators_and_repr():
    w = pe.tensor(np.ones(3), requires_grad=True)
    v = pe.tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD((p for p in [w, v]), lr=0.1, momentum=0.9)
    group_params = opt.param_groups[0]["params"]
    assert len(group_params) == 2 and group_params[0] is w and group_params[1] is v
    named = optim.Adam([("w", w), ("v", v)])
    assert named.param_groups[0]["param_names"] == ["w", "v"]
    text = repr(opt)
    assert text.startswith("SGD (") and "Parameter Group 0" in text and "    lr: 0.1" in text
    assert "momentum: 0.9" in text and "params" not in text


def test_dict_param_group_becomes_the_group():
    w = pe.tensor(np.ones(3), requires_grad=True)
    group = {"params": (p for p in [w]), "lr": 0.5}
    opt = optim.Adam([group])
    assert opt.param_groups[0] is group  # as in PyTorch: the defaults are filled into the caller's dict
    assert group["params"][0] is w and group["lr"] == 0.5 and group["eps"] == 1e-8


# --------------------------------------------------------------------------- lr schedulers

BASE_LRS = [0.1, 0.05]
EPOCHS = 50


def _sched_optimizer(mod, cls="SGD"):
    ps = [mod.ones(2, requires_grad=True) for _ in BASE_LRS]  # mod: pyengine or torch
    groups = [{"params": [p], "lr": lr} for p, lr in zip(ps, BASE_LRS)]
    opt_mod = optim if mod is pe else mod.optim
    if cls == "SGD":
        return opt_mod.SGD(groups, lr=1.0, momentum=0.9)
    return opt_mod.Adam(groups, lr=1.0)


def _lr_lambda(e):
    return 0.95 ** e * (e + 1) / (e + 2)


SCHEDULES = {  # name: (make(sched_module, optimizer), closed form lr(base_lr, epoch))
    "StepLR": (lambda m, o: m.StepLR(o, step_size=7, gamma=0.5), lambda b, e: b * 0.5 ** (e // 7)),
    "MultiStepLR": (lambda m, o: m.MultiStepLR(o, milestones=[5, 12, 12, 30], gamma=0.3),
                    lambda b, e: b * 0.3 ** bisect_right([5, 12, 12, 30], e)),
    "ExponentialLR": (lambda m, o: m.ExponentialLR(o, gamma=0.93), lambda b, e: b * 0.93 ** e),
    "CosineAnnealingLR": (lambda m, o: m.CosineAnnealingLR(o, T_max=20, eta_min=0.001),
                          lambda b, e: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * e / 20)) / 2),
    "CosineAnnealingLR-50": (lambda m, o: m.CosineAnnealingLR(o, T_max=50),
                             lambda b, e: b * (1 + math.cos(math.pi * e / 50)) / 2),
    "LambdaLR": (lambda m, o: m.LambdaLR(o, lr_lambda=_lr_lambda), lambda b, e: b * _lr_lambda(e)),
    "MultiplicativeLR": (lambda m, o: m.MultiplicativeLR(o, lr_lambda=lambda e: 0.9), lambda b, e: b * 0.9 ** e),
    "ConstantLR": (lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=8), lambda b, e: b * (0.25 if e < 8 else 1)),
    "LinearLR": (lambda m, o: m.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=15),
                 lambda b, e: b * (0.2 + 0.7 * min(e, 15) / 15)),
    "SequentialLR": (lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=5),
                                                     m.CosineAnnealingLR(o, T_max=45)], milestones=[5]),
                     lambda b, e: b * (0.1 + 0.9 * e / 5) if e < 5 else b * (1 + math.cos(math.pi * (e - 5) / 45)) / 2),
    "OneCycleLR": (lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=EPOCHS + 1),
                   None),  # closed form: test_one_cycle_closed_form
}


def _run_schedule(mod, make, epochs=EPOCHS):
    opt = _sched_optimizer(mod)
    sched = make(mod.optim.lr_scheduler if mod is not pe else lr_scheduler, opt)
    lrs = [list(sched.get_last_lr())]
    for _ in range(epochs):
        opt.step()
        sched.step()
        lrs.append(list(sched.get_last_lr()))
        assert lrs[-1] == [g["lr"] for g in opt.param_groups]
    return np.array(lrs)


@pytest.mark.parametrize("name", [n for n in SCHEDULES if SCHEDULES[n][1] is not None])
def test_scheduler_closed_form(name):
    make, closed = SCHEDULES[name]
    lrs = _run_schedule(pe, make)
    expected = np.array([[closed(b, e) for b in BASE_LRS] for e in range(EPOCHS + 1)])
    np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_scheduler_matches_torch(name):
    torch = pytest.importorskip("torch")
    make = SCHEDULES[name][0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(_run_schedule(pe, make), _run_schedule(torch, make))


def test_one_cycle_closed_form_and_momentum():
    n = 40
    opt = _sched_optimizer(pe)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.8, total_steps=n, pct_start=0.25)
    peak = 0.25 * n - 1

    def cos_anneal(start, end, pct):
        return end + (start - end) * (1 + math.cos(math.pi * pct)) / 2

    for e in range(n):
        if e <= peak:
            lr = cos_anneal(0.8 / 25, 0.8, e / peak)
            mom = cos_anneal(0.95, 0.85, e / peak)
        else:
            lr = cos_anneal(0.8, 0.8 / 25 / 1e4, (e - peak) / (n - 1 - peak))
            mom = cos_anneal(0.85, 0.95, (e - peak) / (n - 1 - peak))
        assert sched.get_last_lr()[0] == pytest.approx(lr, rel=1e-12)
        assert opt.param_groups[0]["momentum"] == pytest.approx(mom, rel=1e-12)
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match="total steps is 40"):
        sched.step()
    adam = _sched_optimizer(pe, "Adam")
    lr_scheduler.OneCycleLR(adam, max_lr=0.8, total_steps=n)
    assert adam.param_groups[0]["betas"] == (0.95, 0.999)


def test_one_cycle_with_adam_matches_torch():
    torch = pytest.importorskip("torch")

    def run(mod, sched_mod):
        opt = _sched_optimizer(mod, "Adam")
        sched = sched_mod.OneCycleLR(opt, max_lr=0.5, epochs=3, steps_per_epoch=7, three_phase=True,
                                     anneal_strategy="linear")
        out = []
        for _ in range(20):
            opt.step()
            sched.step()
            out.append([g["lr"] for g in opt.param_groups] + [g["betas"][0] for g in opt.param_groups])
        return np.array(out)

    np.testing.assert_array_equal(run(pe, lr_scheduler), run(torch, torch.optim.lr_scheduler))


@pytest.mark.parametrize("name", ["CosineAnnealingLR", "SequentialLR", "LambdaLR", "MultiStepLR"])
def test_scheduler_state_dict_round_trip(name):
    make = SCHEDULES[name][0]
    opt = _sched_optimizer(pe)
    sched = make(lr_scheduler, opt)
    for _ in range(17):
        opt.step()
        sched.step()
    opt_state, sched_state = copy.deepcopy(opt.state_dict()), copy.deepcopy(sched.state_dict())
    assert sched_state["last_epoch"] == 17 and "optimizer" not in sched_state
    # resume: build, then load the optimizer's state, then the scheduler's (PyTorch's order)
    opt2 = _sched_optimizer(pe)
    sched2 = make(lr_scheduler, opt2)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    for _ in range(20):
        for o, s in ((opt, sched), (opt2, sched2)):
            o.step()
            s.step()
        assert sched.get_last_lr() == sched2.get_last_lr()
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in opt2.param_groups]


def test_scheduler_drives_training_like_torch():
    torch = pytest.importorskip("torch")

    def run(mod, params, loss_fn):
        opt_mod = optim if mod is None else mod.optim
        opt = opt_mod.Adam(params, lr=0.05)
        sched = opt_mod.lr_scheduler.CosineAnnealingLR(opt, T_max=6, eta_min=0.005)
        out = []
        for _ in range(15):
            opt.zero_grad()
            loss_fn(params).backward()
            opt.step()
            sched.step()
            out.append([np.array(p._data if mod is None else p.detach().numpy()) for p in params])
        return out

    a = run(None, [pe.tensor(x.copy(), requires_grad=True) for x in INIT], loss_pyengine)
    b = run(torch, [torch.tensor(x.copy(), requires_grad=True) for x in INIT], lambda ps: loss_torch(torch, ps))
    assert_same_trajectory(a, b)


def test_scheduler_warnings_and_errors():
    opt = _sched_optimizer(pe)
    sched = lr_scheduler.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    opt2 = _sched_optimizer(pe)
    sched2 = lr_scheduler.StepLR(opt2, step_size=2)
    opt2.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched2.step()
        sched2.step()
    with pytest.warns(UserWarning, match="deprecated"):
        sched2.step(6)  # jumps with the closed form
    assert sched2.last_epoch == 6 and sched2.get_last_lr() == pytest.approx([b * 0.1 ** 3 for b in BASE_LRS])
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.ExponentialLR(_sched_optimizer(pe), gamma=0.9, last_epoch=3)
    with pytest.raises(TypeError, match="not an Optimizer"):
        lr_scheduler.StepLR(object(), step_size=2)
    with pytest.raises(ValueError, match="2 lr_lambdas"):
        lr_scheduler.LambdaLR(opt, [lambda e: 1.0])
    with pytest.raises(ValueError, match="one milestone fewer"):
        lr_scheduler.SequentialLR(opt, [sched], milestones=[3])
    with pytest.raises(ValueError, match="start_factor"):
        lr_scheduler.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="total_steps OR"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)


def _resume_with_last_epoch(mod, opt_mod, sched_mod):
    opt = _sched_optimizer(mod)
    sched = sched_mod.ExponentialLR(opt, gamma=0.9)
    for _ in range(5):
        opt.step()
        sched.step()
    opt2 = _sched_optimizer(mod)
    opt2.load_state_dict(opt.state_dict())  # carries initial_lr and the current lrs
    sched2 = sched_mod.ExponentialLR(opt2, gamma=0.9, last_epoch=5)
    out = [sched2.last_epoch, list(sched2.base_lrs), list(sched2.get_last_lr())]
    opt2.step()
    sched2.step()
    return out + [sched2.get_last_lr()]


def test_scheduler_resume_with_last_epoch():
    last_epoch, base_lrs, lrs, next_lrs = _resume_with_last_epoch(pe, optim, lr_scheduler)
    # as in PyTorch: the constructor's initial step advances last_epoch but keeps the loaded lrs
    assert last_epoch == 6 and base_lrs == BASE_LRS
    assert lrs == pytest.approx([b * 0.9 ** 5 for b in BASE_LRS], rel=1e-14)
    assert next_lrs == pytest.approx([b * 0.9 ** 6 for b in BASE_LRS], rel=1e-14)
    torch = pytest.importorskip("torch")
    assert _resume_with_last_epoch(torch, torch.optim, torch.optim.lr_scheduler) == [last_epoch, base_lrs, lrs,
                                                                                       next_lrs]


def _warmup_cosine(base_lr, e, warmup, total, ratio):
    """GPT-2 / nanoGPT's schedule, written out (lm.lr_at's formula before it moved into lr_scheduler)."""
    if e < warmup:
        return base_lr * (e + 1) / warmup
    progress = min(1.0, (e - warmup) / max(1, total - warmup))
    min_lr = base_lr * ratio
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (base_lr - min_lr)


@pytest.mark.parametrize("warmup,total,ratio", [(5, 40, 0.1), (0, 13, 0.0), (1, 1, 0.5), (7, 3, 0.1), (3, 29, 1.0)])
def test_warmup_cosine_lr_is_exact_and_resumes(warmup, total, ratio):
    make = lambda opt, last_epoch=-1: lr_scheduler.WarmupCosineLR(opt, warmup, total, ratio, last_epoch)  # noqa: E731
    lrs = _run_schedule(pe, lambda m, o: make(o), epochs=total + 5)
    expected = [[_warmup_cosine(b, e, warmup, total, ratio) for b in BASE_LRS] for e in range(total + 6)]
    assert lrs.tolist() == expected  # bit for bit: a closed form, no recursion
    assert lrs[total + 5].tolist() == [b * ratio for b in BASE_LRS] or warmup > total  # stays at min_lr
    # resumed at step k: a new scheduler with last_epoch=k-1, or a loaded state dict, continues exactly
    for k in (1, warmup, total // 2 + 1):
        opt = _sched_optimizer(pe)
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
        assert make(opt, last_epoch=k - 1).get_last_lr() == expected[k]
        fresh = _sched_optimizer(pe)
        sched = make(fresh)
        state = make(_sched_optimizer(pe)).state_dict()
        state["last_epoch"] = k
        sched.load_state_dict(state)
        fresh.step()
        sched.step()
        assert sched.get_last_lr() == expected[k + 1]


def test_warmup_cosine_lr_errors():
    opt = _sched_optimizer(pe)
    with pytest.raises(ValueError, match="WarmupCosineLR: warmup_steps and total_steps must be >= 0"):
        lr_scheduler.WarmupCosineLR(opt, -1, 10)
    with pytest.raises(ValueError, match=r"WarmupCosineLR: min_lr_ratio must be in \[0, 1\]"):
        lr_scheduler.WarmupCosineLR(opt, 1, 10, min_lr_ratio=1.5)
    assert lr_scheduler.WarmupCosineLR.lr_at(3, 0.2, 4, 10) == 0.2


def test_update_kernels_compare_dtypes_by_value():
    """A gradient whose float32 dtype is an equal but distinct descriptor (made by another kernel, or
    unpickled) is accepted (a DCGAN's ConvTranspose2d gradients were refused once); byte-swapped is not."""
    import numpy as np
    w = pe.nn.Parameter(pe.randn(3, 4))
    opt = pe.optim.Adam([w], lr=0.1)
    g = np.ones((3, 4), np.float32)
    w.grad = pe.from_numpy(g.view(np.dtype(np.float32).newbyteorder("=")))
    assert w.grad._data.dtype is not np.dtype(np.float32)
    before = w.detach().numpy().copy()
    opt.step()
    np.testing.assert_allclose(w.detach().numpy(), before - 0.1, rtol=1e-5)
