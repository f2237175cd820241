"""PyTorch compatibility of module paths, namespaces and legacy APIs (docs/pytorch_compat.md): each behaviour
is compared with torch (installed for the tests) where it is observable on a machine without a GPU."""
import pickle
import warnings

import numpy as np
import pytest
import torch

import pyengine as pe
from pyengine import nn
from pyengine.nn import functional as F

RNG = np.random.default_rng(7)


def _raises_like(fn_pe, fn_torch):
    """Both raise, the same exception type; returns pyengine's exception."""
    with pytest.raises(Exception) as et:
        fn_torch()
    with pytest.raises(Exception) as ep:
        fn_pe()
    assert isinstance(ep.value, et.type), (ep.value, et.value)
    return ep.value


# ---------------------------------------------------------------------- pyengine.cuda, accelerator, backends


def test_cuda_queries_match_torch_without_gpu():
    assert pe.cuda.is_available() is torch.cuda.is_available() is False
    assert pe.cuda.device_count() == torch.cuda.device_count() == 0
    assert pe.cuda.is_bf16_supported() is torch.cuda.is_bf16_supported() is False
    assert pe.cuda.is_initialized() is False
    for f in ("manual_seed", "manual_seed_all"):
        getattr(pe.cuda, f)(123)
        getattr(torch.cuda, f)(123)
    pe.cuda.empty_cache()
    assert pe.cuda.memory_allocated() == torch.cuda.memory_allocated() == 0
    assert pe.cuda.max_memory_allocated() == 0


@pytest.mark.parametrize("name", ["synchronize", "current_device", "get_device_name", "get_device_capability",
                                  "init"])
def test_cuda_calls_that_need_a_device_raise_like_torch(name):
    e = _raises_like(getattr(pe.cuda, name), getattr(torch.cuda, name))
    assert "pyengine not compiled with CUDA enabled" in str(e)


def test_cuda_set_device():
    pe.cuda.set_device(-1)  # a negative index is a no-op, as torch
    torch.cuda.set_device(-1)
    _raises_like(lambda: pe.cuda.set_device("cpu"), lambda: torch.cuda.set_device("cpu"))
    with pytest.raises(AssertionError, match="not compiled with CUDA"):
        pe.cuda.set_device(0)  # torch (CPU build) raises an internal AttributeError here
    with pytest.raises(AssertionError):
        with pe.cuda.device(0):
            pass
    with pe.cuda.device(-1):
        pass


@pytest.mark.parametrize("make", [
    lambda L: L.ones(2, device="cuda"),
    lambda L: L.zeros(3, 1, device="cuda:0"),
    lambda L: L.tensor([1.0], device="cuda"),
    lambda L: L.ones(2).cuda(),
    lambda L: L.ones(2).to("cuda"),
    lambda L: L.ones(2).to(L.device("cuda")),
    lambda L: L.nn.Linear(2, 3).cuda(),
    lambda L: L.nn.Linear(2, 3).to("cuda"),
])
def test_asking_for_a_cuda_tensor_raises_like_torch(make):
    e = _raises_like(lambda: make(pe), lambda: make(torch))
    assert isinstance(e, AssertionError) and isinstance(e, RuntimeError)
    assert "pyengine not compiled with CUDA enabled" in str(e)


def test_cuda_legacy_tensor_types():
    for name in ("FloatTensor", "LongTensor", "DoubleTensor", "HalfTensor", "ByteTensor", "BoolTensor"):
        _raises_like(lambda: getattr(pe.cuda, name)(2), lambda: getattr(torch.cuda, name)(2))
        assert not isinstance(pe.ones(2), getattr(pe.cuda, name))
        assert isinstance(torch.ones(2), getattr(torch.cuda, name)) is False


def test_accelerator_and_backends():
    assert pe.accelerator.is_available() is torch.accelerator.is_available() is False
    assert pe.accelerator.current_accelerator() is torch.accelerator.current_accelerator() is None
    assert pe.accelerator.device_count() == torch.accelerator.device_count() == 0
    _raises_like(pe.accelerator.synchronize, torch.accelerator.synchronize)
    _raises_like(pe.accelerator.current_device_index, torch.accelerator.current_device_index)
    for mod in ("cudnn", "mkldnn"):
        for flag in ("enabled", "benchmark", "deterministic", "allow_tf32"):
            if hasattr(getattr(torch.backends, mod), flag) and flag in vars(getattr(pe.backends, mod)):
                assert getattr(getattr(pe.backends, mod), flag) == getattr(getattr(torch.backends, mod), flag)
    assert pe.backends.cuda.matmul.allow_tf32 is torch.backends.cuda.matmul.allow_tf32
    assert pe.backends.mps.is_available() is torch.backends.mps.is_available() is False
    assert pe.backends.cudnn.is_available() is False and pe.backends.cuda.is_built() is False
    assert pe.backends.cpu.get_cpu_capability() in ("AVX512", "AVX2", "DEFAULT")
    # plain settable flags
    pe.backends.cudnn.benchmark = True
    pe.backends.cuda.matmul.allow_tf32 = True
    pe.backends.cudnn.deterministic = True
    try:
        assert pe.backends.cudnn.benchmark and pe.backends.cuda.matmul.allow_tf32
        with pe.backends.cudnn.flags(enabled=False):
            assert pe.backends.cudnn.enabled is False
        assert pe.backends.cudnn.enabled is True
    finally:
        pe.backends.cudnn.benchmark = False
        pe.backends.cudnn.deterministic = False
        pe.backends.cuda.matmul.allow_tf32 = False


# ---------------------------------------------------------------------- amp


def test_cuda_amp_gradscaler_disabled_is_a_pass_through():
    with pytest.warns(FutureWarning, match="deprecated"):
        s = pe.cuda.amp.GradScaler(enabled=False)
    lin = nn.Linear(3, 2)
    opt = pe.optim.SGD(lin.parameters(), lr=0.1)
    loss = lin(pe.randn(4, 3)).pow(2).mean()
    assert s.scale(loss) is loss
    s.scale(loss).backward()
    s.unscale_(opt)
    w = lin.weight.detach().numpy().copy()
    g = lin.weight.grad.numpy().copy()
    s.step(opt)
    s.update()
    np.testing.assert_allclose(lin.weight.detach().numpy(), w - 0.1 * g, rtol=1e-6)
    assert s.state_dict() == {} and s.get_scale() == 1.0 and not s.is_enabled()
    s.load_state_dict({})


def test_gradscaler_enabled_without_cuda_warns_and_disables_like_torch():
    with warnings.catch_warnings(record=True) as wt:
        warnings.simplefilter("always")
        t = torch.amp.GradScaler()
    with warnings.catch_warnings(record=True) as wp:
        warnings.simplefilter("always")
        p = pe.amp.GradScaler()
    assert [w.category for w in wp] == [w.category for w in wt] == [UserWarning]
    assert "CUDA is not available" in str(wp[0].message)
    assert p.is_enabled() is t.is_enabled() is False
    with pytest.warns(UserWarning, match="Disabling"):
        assert not pe.cuda.amp.GradScaler().is_enabled()


def test_gradscaler_on_cpu_matches_torch():
    W0 = RNG.standard_normal((3, 5)).astype(np.float32)
    X = RNG.standard_normal((7, 5)).astype(np.float32)
    res = {}
    for L in (pe, torch):
        w = L.tensor(W0.copy(), requires_grad=True)
        opt = L.optim.SGD([w], lr=0.05)
        s = L.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=2)
        scales = []
        for i in range(5):
            opt.zero_grad()
            loss = (L.tensor(X) @ w.T).pow(2).mean()
            if i == 2:
                loss = loss * float("inf")  # an overflowing step: skipped, the scale halves
            s.scale(loss).backward()
            s.unscale_(opt)
            s.step(opt)
            s.update()
            scales.append(s.get_scale())
        res[L] = (w.detach().numpy().copy(), scales, s.state_dict())
    np.testing.assert_allclose(res[pe][0], res[torch][0], rtol=1e-5, atol=1e-6)
    assert res[pe][1] == res[torch][1]
    assert res[pe][2] == res[torch][2]
    s = pe.amp.GradScaler("cpu")
    opt = pe.optim.SGD([pe.ones(1, requires_grad=True)], lr=0.1)
    s.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        s.unscale_(opt)


def test_autocast_accepted_with_torchs_signature():
    x = pe.randn(3, 4)
    lin = nn.Linear(4, 2)
    for ctx_pe, ctx_t in ((pe.autocast("cpu"), torch.autocast("cpu")),
                          (pe.amp.autocast(device_type="cpu", dtype=pe.bfloat16),
                           torch.amp.autocast(device_type="cpu", dtype=torch.bfloat16))):
        with ctx_pe, ctx_t:
            assert pe.is_autocast_enabled("cpu") is torch.is_autocast_enabled("cpu") is True
            y = lin(x)  # PyTorch's policy: linear runs in bfloat16 (tests/test_bf16.py checks the values)
            yt = torch.nn.functional.linear(torch.tensor(x.numpy()), torch.tensor(lin.weight.detach().numpy()),
                                            torch.tensor(lin.bias.detach().numpy()))
        assert y.dtype == pe.bfloat16 and yt.dtype == torch.bfloat16
        assert lin(x).dtype == pe.float32  # outside the region nothing changes
        assert pe.is_autocast_enabled("cpu") is torch.is_autocast_enabled("cpu") is False

    @pe.autocast("cpu", enabled=False)
    def f(a):
        return pe.is_autocast_enabled("cpu"), a * 2
    assert f(x)[0] is False
    with pytest.warns(UserWarning, match="CUDA is not available"):
        with pe.autocast("cuda"):
            assert not pe.is_autocast_enabled("cuda")
    with pytest.raises(RuntimeError):
        pe.autocast("gpu")


# ---------------------------------------------------------------------- inference_mode, compile, settings


def test_inference_mode_like_no_grad():
    x = pe.ones(2, requires_grad=True)
    with pe.inference_mode():
        assert pe.is_inference_mode_enabled() and not pe.is_grad_enabled()
        assert not (x * 2).requires_grad
    assert pe.is_grad_enabled() and not pe.is_inference_mode_enabled()
    with pe.inference_mode(False):
        assert (x * 2).requires_grad

    @pe.inference_mode()
    def f(a):
        return a * 2

    @pe.inference_mode
    def g(a):
        return a * 2
    assert not f(x).requires_grad and not g(x).requires_grad and (x * 2).requires_grad
    with torch.inference_mode():
        assert not torch.is_grad_enabled()


def test_compile_returns_the_model_unchanged():
    m = nn.Linear(3, 2)
    assert pe.compile(m) is m
    assert pe.compile(m, mode="max-autotune", fullgraph=True, dynamic=False) is m

    def fn(a):
        return a + 1
    assert pe.compile(fn) is fn
    assert pe.compile(mode="reduce-overhead")(fn) is fn
    assert pe.get_float32_matmul_precision() == torch.get_float32_matmul_precision() == "highest"
    pe.set_float32_matmul_precision("high")
    assert pe.get_float32_matmul_precision() == "high"
    with pytest.warns(UserWarning):
        pe.set_float32_matmul_precision("bad")
    pe.set_float32_matmul_precision("highest")


def test_onnx_module_path():
    import pyengine.onnx
    assert pyengine.onnx is pe.onnx and callable(pe.onnx.export)  # the exporter: tests/test_export.py


# ---------------------------------------------------------------------- legacy API


def test_variable():
    from pyengine.autograd import Variable
    t = pe.ones(2)
    v = Variable(t, requires_grad=True)
    tv = torch.autograd.Variable(torch.ones(2), requires_grad=True)
    assert v is not t and v.requires_grad and v.is_leaf and not t.requires_grad and tv.is_leaf
    v.data.add_(1)
    assert t.tolist() == [2.0, 2.0]  # shares memory
    a = pe.ones(2, requires_grad=True)
    b = Variable(a * 2)
    assert b.is_leaf and not b.requires_grad
    assert isinstance(t, Variable) and isinstance(torch.ones(1), torch.autograd.Variable)
    _raises_like(lambda: Variable([1, 2]), lambda: torch.autograd.Variable([1, 2]))
    _raises_like(lambda: Variable(pe.arange(3), requires_grad=True),
                 lambda: torch.autograd.Variable(torch.arange(3), requires_grad=True))
    with pytest.warns(UserWarning, match="volatile"):
        Variable(t, volatile=True)


LEGACY_ARGS = [(), (2, 3), (1,), (0,), ([1, 2],), ([[1.5, 2.25]],), ((2, 3),), ([],),
               ("size", (3, 1, 2)), ("nd", np.array([1, 2], np.int64)), ("nd", np.arange(6.0).reshape(2, 3))]


def _args(L, spec):
    if spec[:1] == ("size",):
        return (L.Size(spec[1]),)
    if spec[:1] == ("nd",):
        return (spec[1].copy(),)
    return spec


@pytest.mark.parametrize("spec", LEGACY_ARGS, ids=str)
@pytest.mark.parametrize("cls", ["Tensor", "FloatTensor", "LongTensor", "DoubleTensor", "IntTensor",
                                 "ByteTensor", "BoolTensor", "HalfTensor", "BFloat16Tensor"])
def test_legacy_constructors_match_torch(cls, spec):
    if cls == "BoolTensor" and spec[:1] == ("nd",):
        pytest.importorskip("numpy")  # noqa (bool of floats: both engines agree below anyway)
    t = getattr(torch, cls)(*_args(torch, spec))
    p = getattr(pe, cls)(*_args(pe, spec))
    assert tuple(p.shape) == tuple(t.shape)
    assert p.dtype.name == str(t.dtype).split(".")[1]
    if spec and not all(isinstance(a, int) for a in spec) and spec[:1] != ("size",):
        np.testing.assert_array_equal(p.float().numpy(), t.float().numpy())
    else:
        assert not p.numpy().any()  # pyengine zero-fills what torch leaves uninitialised


def test_legacy_constructor_errors_and_sharing():
    for bad in ((2.5,), ("ab",), (2, 3.5), (np.float32(2.0),)):
        _raises_like(lambda: pe.Tensor(*bad), lambda: torch.Tensor(*bad))
    _raises_like(lambda: pe.FloatTensor(-1), lambda: torch.FloatTensor(-1))
    _raises_like(lambda: pe.FloatTensor(pe.ones(2, dtype=pe.int64)),
                 lambda: torch.FloatTensor(torch.ones(2, dtype=torch.int64)))
    x = pe.ones(3)
    y = pe.Tensor(x)
    assert y is not x and y.data_ptr() == x.data_ptr()
    i = pe.Tensor(pe.arange(3))  # a tensor keeps its dtype, as torch.Tensor(int tensor)
    assert i.dtype == pe.int64 and torch.Tensor(torch.arange(3)).dtype == torch.int64
    a = np.ones(3, np.float32)
    assert pe.Tensor(a).data_ptr() != a.ctypes.data  # a copy, as torch
    assert pe.Tensor([1, 2], dtype=pe.float64).dtype == pe.float64  # pyengine's extension, kept
    assert pe.Tensor([1.0], requires_grad=True).requires_grad
    assert isinstance(pe.ones(2), pe.FloatTensor) and isinstance(pe.ones(2).long(), pe.LongTensor)
    assert not isinstance(pe.ones(2), pe.LongTensor) and not isinstance(np.ones(2), pe.FloatTensor)
    t = pe.ones(2, dtype=pe.int64)
    assert t.new(2, 3).dtype == pe.int64 and t.new([1, 2]).tolist() == [1, 2]
    assert tuple(torch.ones(2, dtype=torch.int64).new(2, 3).shape) == (2, 3)


@pytest.mark.parametrize("dt", ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8",
                                "uint8", "bool"])
def test_tensor_type_string_and_casts(dt):
    p, t = pe.zeros(2, dtype=getattr(pe, dt)), torch.zeros(2, dtype=getattr(torch, dt))
    assert p.type() == t.type()
    assert p.type(pe.float64).dtype == pe.float64
    assert p.type("torch.LongTensor").dtype == pe.int64 and p.type("pyengine.LongTensor").dtype == pe.int64
    assert p.type(pe.DoubleTensor).dtype == pe.float64
    assert t.type(torch.DoubleTensor).dtype == torch.float64
    with pytest.raises(AssertionError, match="not compiled with CUDA"):
        p.type(pe.cuda.FloatTensor)
    with pytest.raises(ValueError):
        p.type("float")


def test_device_properties_pin_memory_and_storage():
    p, t = pe.arange(6.0).reshape(2, 3), torch.arange(6.0).reshape(2, 3)
    for attr in ("is_cuda", "is_cpu", "is_xpu", "is_mps", "is_meta", "is_sparse", "is_quantized"):
        assert getattr(p, attr) == getattr(t, attr), attr
    assert p.get_device() == t.get_device() == -1
    assert p.nbytes == t.nbytes and p.itemsize == t.itemsize
    e = _raises_like(p.pin_memory, t.pin_memory)
    assert str(e) == "Cannot access accelerator device when none is available."
    assert p.is_pinned() is t.is_pinned() is False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = t[:, 1].storage()
    ps = p[:, 1].storage()
    assert ps.tolist() == ts.tolist() and len(ps) == len(ts) and ps[4] == ts[4]
    assert ps.dtype == pe.float32
    assert p.untyped_storage().nbytes() == t.untyped_storage().nbytes() == 24
    assert p[1].untyped_storage().data_ptr() == p.data_ptr()


def test_module_legacy_dtype_methods():
    pm, tm = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    for method, args in (("double", ()), ("half", ()), ("bfloat16", ()), ("float", ()),
                         ("type", (pe.DoubleTensor,)), ("type", ("torch.FloatTensor",))):
        targs = tuple(torch.DoubleTensor if a is pe.DoubleTensor else a for a in args)
        assert getattr(pm, method)(*args) is pm
        getattr(tm, method)(*targs)
        assert pm.weight.dtype.name == str(tm.weight.dtype).split(".")[1], method
        assert isinstance(pm.weight, nn.Parameter)
    _raises_like(lambda: nn.Linear(2, 2).type(pe.LongTensor), lambda: torch.nn.Linear(2, 2).type(torch.LongTensor))


# ---------------------------------------------------------------------- legacy size_average / reduce


LOSSES = [  # (functional name, module name, make input, make target)
    ("mse_loss", "MSELoss", lambda: RNG.standard_normal((5, 3)), lambda: RNG.standard_normal((5, 3))),
    ("l1_loss", "L1Loss", lambda: RNG.standard_normal((5, 3)), lambda: RNG.standard_normal((5, 3))),
    ("binary_cross_entropy", "BCELoss", lambda: RNG.uniform(0.05, 0.95, (7,)), lambda: RNG.uniform(0, 1, (7,))),
    ("binary_cross_entropy_with_logits", "BCEWithLogitsLoss", lambda: RNG.standard_normal((3, 2)),
     lambda: RNG.uniform(0, 1, (3, 2))),
    ("cross_entropy", "CrossEntropyLoss", lambda: RNG.standard_normal((5, 4)), lambda: RNG.integers(0, 4, 5)),
    ("nll_loss", "NLLLoss", lambda: np.log(RNG.dirichlet(np.ones(4), 5)), lambda: RNG.integers(0, 4, 5)),
]
LEGACY = [(None, None), (False, None), (True, None), (None, False), (False, False), (True, True), (False, True)]


@pytest.mark.parametrize("fname,mname,mk_x,mk_y", LOSSES, ids=[loss[0] for loss in LOSSES])
@pytest.mark.parametrize("size_average,reduce", LEGACY)
def test_legacy_size_average_reduce(fname, mname, mk_x, mk_y, size_average, reduce):
    x, y = mk_x(), mk_y()
    xdt = np.float32
    ydt = np.int64 if y.dtype.kind == "i" else np.float32
    kw = {k: v for k, v in (("size_average", size_average), ("reduce", reduce)) if v is not None}
    px = pe.tensor(x.astype(xdt), requires_grad=True)
    tx = torch.tensor(x.astype(xdt), requires_grad=True)
    with warnings.catch_warnings(record=True) as wp:
        warnings.simplefilter("always")
        p_f = getattr(F, fname)(px, pe.tensor(y.astype(ydt)), **kw)
        p_m = getattr(nn, mname)(**kw)(px, pe.tensor(y.astype(ydt)))
    with warnings.catch_warnings(record=True) as wt:
        warnings.simplefilter("always")
        t_f = getattr(torch.nn.functional, fname)(tx, torch.tensor(y.astype(ydt)), **kw)
        t_m = getattr(torch.nn, mname)(**kw)(tx, torch.tensor(y.astype(ydt)))
    assert [str(w.message) for w in wp] == [str(w.message) for w in wt]
    assert [w.category for w in wp] == [w.category for w in wt]
    for p, t in ((p_f, t_f), (p_m, t_m)):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-5, atol=1e-6)
    (p_f.sum() + p_m.sum()).backward()
    (t_f.sum() + t_m.sum()).backward()
    np.testing.assert_allclose(px.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_nll_loss_positional_weight_like_torch():
    x = np.log(RNG.dirichlet(np.ones(3), (4, 5)).transpose(0, 2, 1)).astype(np.float32)  # (N, C, d)
    y = RNG.integers(0, 3, (4, 5))
    w = RNG.uniform(0.5, 2, 3).astype(np.float32)
    p = F.nll_loss(pe.tensor(x), pe.tensor(y), pe.tensor(w))
    t = torch.nn.functional.nll_loss(torch.tensor(x), torch.tensor(y), torch.tensor(w))
    np.testing.assert_allclose(p.item(), t.item(), rtol=1e-5)


# ---------------------------------------------------------------------- bfloat16 and float16


@pytest.mark.parametrize("dt", ["bfloat16", "float16"])
def test_low_precision_storage_casts_factories(dt):
    pd, td = getattr(pe, dt), getattr(torch, dt)
    x = RNG.standard_normal((3, 5)).astype(np.float32)
    p, t = pe.tensor(x).to(pd), torch.tensor(x).to(td)
    assert p.dtype == pd and p.element_size() == 2 and p.is_floating_point() and pd.is_floating_point
    np.testing.assert_array_equal(p.float().numpy(), t.float().numpy())  # the same rounding (to nearest even)
    assert getattr(pe.tensor(x), dt if dt == "bfloat16" else "half")().dtype == pd
    for make in (lambda L, d: L.zeros(2, 3, dtype=d), lambda L, d: L.ones(4, dtype=d),
                 lambda L, d: L.full((2,), 1.5, dtype=d), lambda L, d: L.arange(5, dtype=d),
                 lambda L, d: L.tensor([1.0, 2.5], dtype=d), lambda L, d: L.eye(3, dtype=d)):
        a, b = make(pe, pd), make(torch, td)
        assert a.dtype == pd
        np.testing.assert_array_equal(a.float().numpy(), b.float().numpy())
    assert pe.randn(3, dtype=pd).dtype == pd
    assert repr(pe.tensor([1.5, 2.0], dtype=pd)) == repr(pe.tensor([1.5, 2.0]))[:-1] + f", dtype=pyengine.{dt})"
    assert p.double().dtype == pe.float64 and p.to(pe.int64).dtype == pe.int64


@pytest.mark.parametrize("dt", ["bfloat16", "float16"])
def test_low_precision_linear_forward_and_gradients_match_torch(dt):
    pd, td = getattr(pe, dt), getattr(torch, dt)
    x = RNG.standard_normal((7, 5)).astype(np.float32)
    w = RNG.standard_normal((3, 5)).astype(np.float32)
    b = RNG.standard_normal(3).astype(np.float32)
    res = []
    for L, d in ((pe, pd), (torch, td)):
        lin = L.nn.Linear(5, 3)
        lin.load_state_dict({"weight": L.tensor(w), "bias": L.tensor(b)})
        lin = lin.to(d)
        xi = L.tensor(x).to(d).requires_grad_(True)
        y = lin(xi)
        loss = (y.float() * y.float()).sum()
        loss.backward()
        assert y.dtype == d and lin.weight.grad.dtype == d and xi.grad.dtype == d
        res.append([a.detach().float().numpy() for a in (y, lin.weight.grad, lin.bias.grad, xi.grad)])
    tol = 2e-2 if dt == "bfloat16" else 2e-3
    for a, c in zip(*res):
        np.testing.assert_allclose(a, c, rtol=tol, atol=tol * np.abs(c).max())


@pytest.mark.parametrize("dt", ["bfloat16", "float16"])
def test_low_precision_ops_compute_through_float32(dt):
    pd, td = getattr(pe, dt), getattr(torch, dt)
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    p = pe.tensor(x).to(pd).requires_grad_(True)
    t = torch.tensor(x).to(td).requires_grad_(True)
    for f in (lambda a: (a * 2 + 1).exp().sum(), lambda a: a.softmax(-1)[:, 1].sum(),
              lambda a: a.relu().mean(), lambda a: (a @ a.T).tanh().sum(), lambda a: a.T.reshape(-1)[2:].sum()):
        p.grad, t.grad = None, None
        yp, yt = f(p), f(t)
        assert yp.dtype == pd, f
        yp.backward()
        yt.backward()
        np.testing.assert_allclose(yp.float().item(), yt.float().item(), rtol=3e-2, atol=3e-2)
        np.testing.assert_allclose(p.grad.float().numpy(), t.grad.float().numpy(), rtol=3e-2, atol=3e-2)
    # promotion: with float32 the result is float32, as torch
    assert (p + pe.ones(3)).dtype == pe.float32 and (t + torch.ones(3)).dtype == torch.float32
    assert (p * 2).dtype == pd
    with pytest.raises(ValueError, match="float32 and float64 parameters only"):
        pe.optim.SGD([pe.ones(2, dtype=pd, requires_grad=True)], lr=0.1)


def test_low_precision_save_load(tmp_path):
    sd = {"b": pe.randn(3, 2).bfloat16(), "h": pe.randn(4).half()}
    pe.save(sd, tmp_path / "x.safetensors")
    back = pe.load(tmp_path / "x.safetensors")
    for k in sd:
        assert back[k].dtype == sd[k].dtype
        np.testing.assert_array_equal(back[k].float().numpy(), sd[k].float().numpy())
    from safetensors.torch import load_file
    tb = load_file(str(tmp_path / "x.safetensors"))
    assert tb["b"].dtype == torch.bfloat16  # PyTorch reads the bfloat16 tensor as its own
    np.testing.assert_array_equal(tb["b"].float().numpy(), sd["b"].float().numpy())
    m = nn.Linear(3, 2).bfloat16()
    pe.save(m.state_dict(), tmp_path / "m.safetensors")
    m2 = nn.Linear(3, 2).bfloat16()
    m2.load_state_dict(pe.load(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(m2.weight.detach().float().numpy(), m.weight.detach().float().numpy())


# ---------------------------------------------------------------------- serialization


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.register_buffer("steps", pe.zeros(1, dtype=pe.int64))

    def forward(self, x):
        return self.fc(x)


def test_tensors_and_modules_pickle():
    t = pe.randn(3, requires_grad=True)
    u = pickle.loads(pickle.dumps(t))
    assert u.requires_grad and u.is_leaf and u.tolist() == t.tolist()
    m = _Net()
    m2 = pickle.loads(pickle.dumps(m))
    assert isinstance(m2.fc.weight, nn.Parameter) and m2.fc.weight.requires_grad
    np.testing.assert_array_equal(m2(pe.ones(1, 3)).detach().numpy(), m(pe.ones(1, 3)).detach().numpy())


def test_save_whole_module_and_weights_only(tmp_path):
    m = _Net()
    opt = pe.optim.Adam(m.parameters(), lr=1e-3)
    m(pe.ones(2, 3)).sum().backward()
    opt.step()
    path = tmp_path / "whole.pt"
    pe.save({"model": m, "opt": opt, "extra": {1, 2}, "np": np.float32(1.5)}, path)
    with pytest.raises(Exception) as e:
        pe.load(path)  # weights_only=True by default, as PyTorch >= 2.6
    msg = str(e.value)
    assert "weights_only=False" in msg and "add_safe_globals" in msg and "_Net" in msg
    with pytest.raises(ValueError, match="weights_only=False"):
        pe.io.load(path)  # the strict state-dict loader names the way out too
    d = pe.load(path, weights_only=False)
    m2, opt2 = d["model"], d["opt"]
    assert d["extra"] == {1, 2} and d["np"] == np.float32(1.5)
    assert opt2.param_groups[0]["params"][0] is m2.fc.weight  # shared tensors stay shared
    np.testing.assert_array_equal(m2.fc.weight.detach().numpy(), m.fc.weight.detach().numpy())
    assert m2.steps.dtype == pe.int64
    x = pe.ones(2, 3)
    opt2.zero_grad(), opt.zero_grad()
    m2(x).sum().backward(), m(x).sum().backward()
    opt2.step(), opt.step()
    np.testing.assert_array_equal(m2.fc.weight.detach().numpy(), m.fc.weight.detach().numpy())


def test_safe_globals(tmp_path):
    m = _Net()
    path = tmp_path / "m.pt"
    pe.save(m, path)
    with pe.serialization.safe_globals([_Net, nn.Linear]):
        assert _Net in pe.serialization.get_safe_globals()
        m2 = pe.load(path)
    assert isinstance(m2, _Net) and _Net not in pe.serialization.get_safe_globals()
    with pytest.raises(Exception, match="weights_only"):
        pe.load(path)
    pe.serialization.add_safe_globals([_Net, nn.Linear])
    try:
        assert isinstance(pe.load(path), _Net)
    finally:
        pe.serialization.clear_safe_globals()
    assert pe.serialization.get_safe_globals() == []
    # state dicts keep the safe format (no pickle), and load with weights_only as before
    pe.save(m.state_dict(), tmp_path / "sd.pt")
    assert set(pe.load(tmp_path / "sd.pt", weights_only=True)) == {"fc.weight", "fc.bias", "steps"}
    with pytest.raises(RuntimeError, match="pickle_module"):
        pe.load(path, pickle_module=pickle)
    # PyTorch's callable and dict map_location forms (old programs' "load on the CPU")
    assert set(pe.load(tmp_path / "sd.pt", map_location=lambda storage, loc: storage)) == {"fc.weight", "fc.bias",
                                                                                           "steps"}
    assert set(pe.load(tmp_path / "sd.pt", map_location={"cuda:0": "cpu"})) == {"fc.weight", "fc.bias", "steps"}


def test_failed_pickled_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    pe.save(_Net(), path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        pe.save({"m": _Net(), "f": lambda: 0}, path)  # a lambda cannot be pickled
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


# ---------------------------------------------------------------------- module paths


def test_tensorboard_import_like_torch():
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError) as et:
            import torch.utils.tensorboard  # noqa: F401
        with pytest.raises(ImportError) as ep:
            import pyengine.utils.tensorboard  # noqa: F401
        assert type(ep.value) is type(et.value) and str(ep.value) == str(et.value)
        return
    import tempfile
    from pyengine.utils.tensorboard import SummaryWriter
    with tempfile.TemporaryDirectory() as d, SummaryWriter(d) as w:
        w.add_scalar("loss", pe.tensor(1.5), 0)
        w.add_scalars("m", {"a": 1.0, "b": 2.0}, 1)
        w.add_histogram("h", pe.randn(100), 0)
        w.add_text("t", "hello", 0)
        w.flush()
        import os
        assert any(f.startswith("events.out.tfevents") for f in os.listdir(d))


def test_nn_parallel_on_cpu_like_torch():
    from pyengine.nn.parallel import DataParallel, DistributedDataParallel, data_parallel
    from pyengine.distributed import DistributedDataParallel as DDP
    assert DistributedDataParallel is DDP
    m = nn.Linear(3, 2)
    dp = DataParallel(m)
    x = pe.randn(4, 3)
    np.testing.assert_array_equal(dp(x).detach().numpy(), m(x).detach().numpy())
    tdp = torch.nn.DataParallel(torch.nn.Linear(3, 2))
    assert list(dp.state_dict()) == list(tdp.state_dict()) == ["module.weight", "module.bias"]
    assert dp.device_ids == tdp.device_ids == []
    _raises_like(lambda: data_parallel(m, x), lambda: torch.nn.parallel.data_parallel(torch.nn.Linear(3, 2),
                                                                                      torch.randn(4, 3)))


def test_utils_data_module_paths():
    from pyengine.utils.data.dataloader import DataLoader
    from pyengine.utils.data.dataset import Dataset, IterableDataset, TensorDataset
    import pyengine.utils.data as D
    assert DataLoader is D.DataLoader and IterableDataset is D.IterableDataset and Dataset is D.Dataset
    assert len(TensorDataset(pe.ones(3, 2))) == 3


# ---------------------------------------------------------------------- Adadelta, LBFGS


def _problem(L, W0, b0, X, Y, convex):
    W, b = L.tensor(W0.copy(), requires_grad=True), L.tensor(b0.copy(), requires_grad=True)
    x, y = L.tensor(X), L.tensor(Y)

    def loss_fn():
        z = x @ W.T + b
        return (((z if convex else z.tanh()) - y) ** 2).mean() + 0.01 * (W ** 4).sum()
    return [W, b], loss_fn


def _run(L, make_opt, steps, use_closure, data, convex=False):
    """On a non-convex problem rounding differences (1e-16) grow through L-BFGS' many iterations until the two
    engines' trajectories part: L-BFGS is compared on a convex one."""
    params, loss_fn = _problem(L, *data, convex)
    opt = make_opt(L, params)
    losses = []
    for _ in range(steps):
        def closure():
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss
        if use_closure:
            losses.append(float(opt.step(closure).detach()))
        else:
            closure()
            opt.step()
    return [p.detach().numpy().copy() for p in params], losses


def _data(dtype):
    r = np.random.default_rng(3)
    return (r.standard_normal((5, 3)).astype(dtype), r.standard_normal(5).astype(dtype),
            r.standard_normal((11, 3)).astype(dtype), (0.5 * r.standard_normal((11, 5))).astype(dtype))


@pytest.mark.parametrize("kw", [dict(), dict(lr=0.5, rho=0.7, eps=1e-5, weight_decay=0.1), dict(maximize=True)],
                         ids=str)
def test_adadelta_matches_torch(kw):
    data = _data(np.float64)
    a, _ = _run(pe, lambda L, p: L.optim.Adadelta(p, **kw), 6, False, data)
    b, _ = _run(torch, lambda L, p: L.optim.Adadelta(p, **kw), 6, False, data)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)
    opt = pe.optim.Adadelta([pe.ones(2, requires_grad=True)])
    assert opt.defaults["lr"] == 1.0
    with pytest.raises(ValueError, match="rho"):
        pe.optim.Adadelta([pe.ones(2, requires_grad=True)], rho=1.5)


@pytest.mark.parametrize("kw", [dict(lr=0.8, history_size=3), dict(lr=1, max_iter=7),
                                dict(line_search_fn="strong_wolfe", history_size=4, max_iter=9),
                                dict(line_search_fn="strong_wolfe", lr=0.3, tolerance_change=1e-6)], ids=str)
def test_lbfgs_matches_torch(kw):
    data = _data(np.float64)
    a, la = _run(pe, lambda L, p: L.optim.LBFGS(p, **kw), 3, True, data, convex=True)
    b, lb = _run(torch, lambda L, p: L.optim.LBFGS(p, **kw), 3, True, data, convex=True)
    np.testing.assert_allclose(la, lb, rtol=1e-9)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-8, atol=1e-10)


def test_lbfgs_state_and_errors():
    p = pe.ones(3, requires_grad=True)
    opt = pe.optim.LBFGS([p], history_size=2)

    def closure():
        opt.zero_grad()
        loss = ((p - pe.tensor([1.0, 2.0, 3.0])) ** 2).sum()
        loss.backward()
        return loss
    for _ in range(3):
        opt.step(closure)
    np.testing.assert_allclose(p.detach().numpy(), [1, 2, 3], atol=1e-5)
    st = opt.state[p]
    assert st["n_iter"] >= 1 and len(st["old_dirs"]) <= 2 and st["func_evals"] >= st["n_iter"]
    with pytest.raises(ValueError, match="parameter groups"):
        pe.optim.LBFGS([{"params": [pe.ones(1, requires_grad=True)]}, {"params": [pe.ones(1, requires_grad=True)]}])
    with pytest.raises(RuntimeError, match="strong_wolfe"):
        pe.optim.LBFGS([p], line_search_fn="armijo")


BF16_OPS = {  # every op of _checks.KERNEL_OPS, on bfloat16: computed through float32, bfloat16 out
    "linear": lambda x: F.linear(x, x), "cross_entropy": lambda x: F.cross_entropy(x, pe.tensor([0, 1, 2, 0])),
    "nll_loss": lambda x: F.nll_loss(x.log_softmax(1), pe.tensor([0, 1, 2, 0])),
    "mse_loss": lambda x: F.mse_loss(x, x * 0.5), "l1_loss": lambda x: F.l1_loss(x, x * 0.5),
    "binary_cross_entropy": lambda x: F.binary_cross_entropy(x.sigmoid(), x.sigmoid() * 0 + 0.5),
    "binary_cross_entropy_with_logits": lambda x: F.binary_cross_entropy_with_logits(x, x * 0 + 0.5),
    "layer_norm": lambda x: F.layer_norm(x, (4,)), "embedding": lambda x: F.embedding(pe.tensor([1, 3]), x),
    "scaled_dot_product_attention": lambda x: F.scaled_dot_product_attention(x[None], x[None], x[None]),
    "leaky_relu": lambda x: F.leaky_relu(x), "smooth_l1_loss": lambda x: F.smooth_l1_loss(x, x * 0.5),
    "huber_loss": lambda x: F.huber_loss(x, x * 0.5), "kl_div": lambda x: F.kl_div(x, x.softmax(1), reduction="sum"),
    "cosine_similarity": lambda x: F.cosine_similarity(x, x * 2), "gumbel_softmax": lambda x: F.gumbel_softmax(x),
    "margin_ranking_loss": lambda x: F.margin_ranking_loss(x, x * 2, pe.ones(4, 4, dtype=x.dtype)),
    "normalize": lambda x: F.normalize(x), "pairwise_distance": lambda x: F.pairwise_distance(x, x * 2),
    "triplet_margin_loss": lambda x: F.triplet_margin_loss(x, x * 2, x * 3),
    "cosine_embedding_loss": lambda x: F.cosine_embedding_loss(x, x * 2, pe.ones(4, dtype=x.dtype)),
    "relu": lambda x: x.relu(), "gelu": lambda x: F.gelu(x), "celu": lambda x: F.celu(x), "elu": lambda x: F.elu(x),
    "hardsigmoid": lambda x: F.hardsigmoid(x), "hardswish": lambda x: F.hardswish(x),
    "hardtanh": lambda x: F.hardtanh(x), "lerp": lambda x: pe.lerp(x, x * 2, 0.25),
    "logsigmoid": lambda x: F.logsigmoid(x), "mish": lambda x: F.mish(x), "relu6": lambda x: F.relu6(x),
    "selu": lambda x: F.selu(x), "softplus": lambda x: F.softplus(x), "softsign": lambda x: F.softsign(x),
    "tanhshrink": lambda x: F.tanhshrink(x), "softmax": lambda x: x.softmax(1), "log_softmax": lambda x: x.log_softmax(1),
    "mean": lambda x: x.mean(), "logsumexp": lambda x: x.logsumexp(1), "cdist": lambda x: pe.cdist(x, x * 2),
    "matrix_norm": lambda x: pe.linalg.matrix_norm(x), "norm": lambda x: x.norm(), "norm_linalg": lambda x: pe.linalg.norm(x),
    "vector_norm": lambda x: pe.linalg.vector_norm(x), "histc": lambda x: pe.histc(x),
}


def test_every_kernel_op_covers_bfloat16():
    from pyengine._checks import KERNEL_OPS
    assert {k.rsplit(".", 1)[1] for k in KERNEL_OPS} == set(BF16_OPS)


@pytest.mark.parametrize("name", sorted(BF16_OPS))
def test_kernel_ops_on_bfloat16(name):
    xs = RNG.standard_normal((4, 4)).astype(np.float32)
    x = pe.tensor(xs).bfloat16().requires_grad_(True)
    y = BF16_OPS[name](x)
    ref = BF16_OPS[name](pe.tensor(x.detach().float().numpy()))  # the same values in float32
    assert y.dtype == pe.bfloat16, name
    if name != "gumbel_softmax":  # random
        np.testing.assert_allclose(y.detach().float().numpy(), ref.detach().numpy(), rtol=2e-2, atol=2e-2)
    if y.requires_grad:
        y.float().sum().backward()
        assert x.grad is not None and x.grad.dtype == pe.bfloat16
