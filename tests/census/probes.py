"""One probe per torch API the census programs use (docs/pytorch_api_census.md).

    python tests/census/probes.py tests/census/torch_reference.json        # real PyTorch: the reference
    python -m pyengine.as_torch tests/census/probes.py OUT.json            # pyengine, imported as torch

tests/test_api_census.py runs the second and compares it with the stored reference (compare_lib.diff). Each probe returns values (tensors are compared by
shape, dtype and numbers; grads included where the API is differentiable) or raises."""
import json, math, os, sys, tempfile, traceback
import numpy as np
import torch

R = np.random.RandomState(0)
A = lambda *s: R.randn(*s).astype(np.float32)
def t(a, rg=False, dt=None):
    x = torch.tensor(a) if dt is None else torch.tensor(a, dtype=dt)
    if rg:
        x.requires_grad_(True)
    return x
X23, X34, X234, X5 = A(2, 3), A(3, 4), A(2, 3, 4), A(5)
PROBES = {}
def probe(name, kind="value"):
    def deco(f):
        PROBES[name] = (f, kind)
        return f
    return deco

def grad_of(f, *arrs):
    xs = [t(a, rg=True) for a in arrs]
    y = f(*xs)
    (y if y.dim() == 0 else y.sum()).backward() if not isinstance(y, tuple) else sum(v.sum() for v in y).backward()
    return [y if not isinstance(y, tuple) else y[0]] + [x.grad for x in xs]

# ---------------- creation, dtypes, devices ----------------
probe("torch.tensor")(lambda: [t([[1, 2], [3, 4]]), t([1.5, 2.5]), torch.tensor(3.0), torch.tensor([1, 2], dtype=torch.long)])
probe("torch.zeros")(lambda: [torch.zeros(2, 3), torch.zeros((2, 3)), torch.zeros(2, 3, dtype=torch.double), torch.zeros(1, 1, 3, device="cpu")])
probe("torch.ones")(lambda: [torch.ones(2, 3), torch.ones(3, dtype=torch.long)])
probe("torch.full")(lambda: [torch.full((2,), 3.0), torch.full((), 0.3, dtype=torch.float, requires_grad=True), torch.full((3,), 1, dtype=torch.float32)])
probe("torch.arange")(lambda: [torch.arange(5), torch.arange(0, 10, 2), torch.arange(0, 5, dtype=torch.float), torch.arange(0, 4, dtype=torch.long, device="cpu")])
probe("torch.linspace")(lambda: [torch.linspace(-math.pi, math.pi, 7), torch.linspace(0, 1, 5, dtype=torch.float)])
probe("torch.empty", "shape")(lambda: [torch.empty(2, 3), torch.empty((4,), dtype=torch.int64)])
probe("torch.zeros_like/ones_like")(lambda: [torch.zeros_like(t(X23)), torch.ones_like(t(X23))])
probe("torch.randn_like", "shape")(lambda: [torch.randn_like(t(X23))])
probe("torch.randn", "shape")(lambda: [torch.randn(2, 3), torch.randn((4,)), torch.randn(2, 3, 1, 1, device="cpu")])
probe("torch.rand", "shape")(lambda: [torch.rand(2, 3), torch.rand(5, 1)])
probe("torch.randint", "shape")(lambda: [torch.randint(10, (4,)), torch.randint(0, 5, (2, 3)), torch.randint(7, size=(1,))])
probe("torch.randperm", "shape")(lambda: [torch.randperm(6)])
probe("torch.manual_seed (same seed, same draw)")(lambda: [(torch.manual_seed(3), torch.randn(3))[1].sub((torch.manual_seed(3), torch.randn(3))[1])])
probe("torch.from_numpy")(lambda: [torch.from_numpy(np.arange(6).reshape(2, 3)), torch.from_numpy(X23.astype(np.float64))])
probe("torch.LongTensor (legacy ctor)")(lambda: [torch.LongTensor([1, 2, 3]), torch.LongTensor(3).zero_()])
probe("torch.FloatTensor (legacy ctor)")(lambda: [torch.FloatTensor([1.0, 2.0])])
probe("torch.Tensor (legacy ctor)")(lambda: [torch.Tensor([0]), torch.Tensor(np.array([1.0, 2.0])), torch.Tensor(1, 5).fill_(-10000.0)])
probe("torch.autograd.Variable")(lambda: [torch.autograd.Variable(t(X23)), torch.autograd.Variable(torch.LongTensor([1]))])
probe("dtypes torch.float/long/double/float32/int64/bool/float16/bfloat16")(lambda: [str(d).replace("pyengine", "torch") for d in
      (torch.float, torch.long, torch.double, torch.float32, torch.int64, torch.bool, torch.float16, torch.bfloat16)])
probe("torch.device")(lambda: [str(torch.device("cpu")), torch.device("cpu").type, str(t(X23).device)])
probe("torch.cuda.is_available")(lambda: [torch.cuda.is_available()])
probe("torch.cuda.manual_seed_all")(lambda: [torch.cuda.manual_seed_all(1) is None])
probe("torch.accelerator.is_available")(lambda: [torch.accelerator.is_available()])
probe("torch.backends.cudnn.benchmark (settable)")(lambda: [setattr(torch.backends.cudnn, "benchmark", True) is None])
probe("torch.backends.cuda.matmul.allow_tf32 (settable)")(lambda: [setattr(torch.backends.cuda.matmul, "allow_tf32", True) is None])
probe("torch.is_tensor / isinstance(x, torch.Tensor)")(lambda: [torch.is_tensor(t(X5)), isinstance(t(X5), torch.Tensor)])
probe("torch.numel")(lambda: [torch.numel(t(X234))])
# ---------------- elementwise & reductions ----------------
def _un(name, fn, arr=X23):
    probe(name)(lambda: grad_of(fn, arr))
_un("torch.exp", lambda x: torch.exp(x))
_un("torch.log", lambda x: torch.log(x.abs() + 0.5))
_un("torch.log of zeros (-inf)", lambda x: torch.log(torch.tril(torch.ones(3, 3))) + 0 * x.sum())
_un("torch.log1p", lambda x: torch.log1p(x.abs()))
_un("torch.sin/cos", lambda x: torch.sin(x) + torch.cos(x))
_un("torch.tanh", lambda x: torch.tanh(x))
_un("torch.sigmoid", lambda x: torch.sigmoid(x))
_un("torch.sqrt", lambda x: torch.sqrt(x.abs() + 1))
_un("torch.abs", lambda x: torch.abs(x))
_un("torch.clamp", lambda x: torch.clamp(x, -0.5, 0.5) + x.clamp(min=0))
_un("Tensor.pow / ** (tensor exponent, scalar exponent, rpow)", lambda x: x.pow(2) + x ** 3 + 2 ** x + x.unsqueeze(-1).pow(t([1.0, 2.0, 3.0])).sum(-1))
_un("operators + - * / @ with scalars (radd/rsub/rmul/rtruediv)", lambda x: (1 + x) * 2 - (3 - x) / 4 + 1 / (x.abs() + 1) + 0.5 * x)
_un("unary minus / __neg__", lambda x: -x)
_un("torch.sum / Tensor.sum(dim, keepdim)", lambda x: torch.sum(x) + x.sum(1).sum() + x.sum(dim=0, keepdim=True).sum() + x.sum(-1, keepdim=True).sum())
_un("torch.mean / Tensor.mean(dim)", lambda x: torch.mean(x, 1, keepdim=True).sum() + x.mean() + x.mean(0).sum())
_un("Tensor.norm(p, dim, keepdim)", lambda x: x.norm(2, 1, keepdim=True).sum() + x.norm())
_un("Tensor.var/std", lambda x: x.var() + x.std(1).sum())
_un("torch.logsumexp", lambda x: torch.logsumexp(x, dim=1).sum())
_un("torch.softmax / Tensor.softmax", lambda x: (torch.softmax(x, dim=1) * t(X23)).sum() + (x.softmax(-1) * t(X23)).sum())
_un("torch.max(x) full reduction", lambda x: torch.max(x))
probe("torch.max(x, dim) -> (values, indices)")(lambda: [torch.max(t(X23), 1)[0], torch.max(t(X23), 1)[1], t(X23).max(dim=1).values, t(X23).max(-1).indices])
probe("torch.min / Tensor.min(dim)")(lambda: [torch.min(t(X23)), t(X23).min(1)[0], t(X23).min(0).indices])
probe("torch.argmax / Tensor.argmax(dim, keepdim)")(lambda: [torch.argmax(t(X23)), t(X23).argmax(1), t(X23).argmax(dim=1, keepdim=True)])
probe("torch.topk / Tensor.topk(k, dim, largest)")(lambda: [torch.topk(t(X23), 2)[0], torch.topk(t(X23), 2)[1], t(X23).topk(1)[1], t(X23).topk(2, 1, True)[0]])
probe("torch.multinomial", "shape")(lambda: [torch.multinomial(torch.softmax(t(X23), -1), num_samples=1), torch.multinomial(t([0.0, 1.0, 0.0]), 1)])
probe("torch.sort / Tensor.sort")(lambda: [torch.sort(t(X5))[0], t(X5).sort(descending=True)[1]])
probe("comparisons == != < > <= >= (tensor/scalar)")(lambda: [t(X23) > 0, t(X23) == t(X23), t(X5) < 0.1, (t(X23) != 0), t([1, 2]) >= 2])
probe("Tensor.eq/ne/lt + .sum().item() accuracy idiom")(lambda: [t([1, 2, 3]).eq(t([1, 0, 3])).sum().item(), (t([1, 2]) == t([1, 2])).type(torch.float).sum().item(),
      t([1, 2, 3]).eq(t([1, 0, 3]).view_as(t([1, 2, 3]))).float().mean().item()])
probe("torch.where")(lambda: grad_of(lambda x: torch.where(x > 0, x, x * 0.1), X23))
probe("Tensor.masked_fill(mask, -inf) then softmax")(lambda: grad_of(lambda x: torch.softmax(x.masked_fill(torch.tril(torch.ones(3, 3)) == 0, float("-inf")), -1) * t(A(3, 3)), A(3, 3)))
# ---------------- shape ops & indexing ----------------
_un("Tensor.view / view(-1) / reshape", lambda x: x.view(-1).sum() * 0 + x.view(3, 2) @ t(A(2, 2)) + x.reshape(6, 1)[:3].sum())
_un("Tensor.transpose/permute/t/T/contiguous", lambda x: x.transpose(0, 1).contiguous() @ t(A(2, 2)) + x.t() @ t(A(2, 2)) + x.T.sum() + x.permute(1, 0).sum())
_un("Tensor.unsqueeze/squeeze/expand/expand_as/repeat", lambda x: x.unsqueeze(0).expand(4, 2, 3).sum(0) + x.unsqueeze(1).squeeze(1) + x[:1].expand_as(x) + x.repeat(1, 2)[:, :3])
_un("Tensor.flatten / torch.flatten(x, 1)", lambda x: torch.flatten(x.view(2, 3, 1), 1) + x.flatten().view(2, 3))
_un("Tensor.narrow", lambda x: x.narrow(1, 0, 2))
_un("Tensor.split(size, dim) / chunk", lambda x: x.split(1, dim=1)[0] * 2 + x.split(2, 1)[1].sum(1, keepdim=True) + x.chunk(3, 1)[2])
_un("torch.cat / torch.stack", lambda x: torch.cat([x, x * 2], 1).sum(1) + torch.cat((x, x), dim=0)[:2].sum(1) + torch.stack([x, x]).sum(0).sum(1))
_un("torch.bmm / torch.mm / matmul / @", lambda x: torch.bmm(x.unsqueeze(0), t(A(1, 3, 2))).squeeze(0) + torch.mm(x, t(A(3, 2))) + x @ t(A(3, 2)) + torch.matmul(x, t(A(3, 2))))
_un("Tensor.gather", lambda x: x.gather(1, t([[0], [2]])))
_un("torch.tril/triu", lambda x: torch.tril(x) + torch.triu(x, diagonal=1))
_un("torch.roll", lambda x: torch.roll(x, 1, 1))
_un("__getitem__ basic slices, ints, negative, step", lambda x: x[0] + x[-1] + x[:, 0:3:2].sum() + x[..., 1:].sum())
_un("__getitem__ with list index x[:, [-1], :]", lambda x: x.view(2, 3, 1)[:, [-1], :].sum() + x[[0, 1], [2, 0]].sum())
_un("__getitem__ with LongTensor index / 0-dim tensor index", lambda x: x[t([1, 0])].sum() + x[t([0, 1]), t([1, 2])].sum() + x[torch.tensor(1)].sum())
_un("__getitem__ with bool mask", lambda x: x[x > 0].sum())
_un("__getitem__ with range(...) and tensor", lambda x: x[range(2), t([0, 2])].sum())
probe("__setitem__ slices with step (pe[:, 0::2] = ...)")(lambda: [(lambda pe: (pe.__setitem__((slice(None), slice(0, None, 2)), t(A(4, 2))), pe.__setitem__((slice(None), slice(1, None, 2)), t(A(4, 2))), pe)[-1])(torch.zeros(4, 4))])
probe("__setitem__ int chain x[0][i] = 1 (one-hot)")(lambda: [(lambda z: (z[0][0].__setitem__(2, 1), z[1][0].__setitem__(1, 1), z)[-1])(torch.zeros(2, 1, 3))])
probe("__setitem__ bool mask = -inf (top-k filter)")(lambda: [(lambda l: (l.__setitem__(l < t([[0.1], [0.2]]), -float("Inf")), l)[-1])(t(X23))])
probe("__setitem__ with list/range + tensor index")(lambda: [(lambda z: (z.__setitem__((range(2), t([0, 2])), 5.0), z)[-1])(torch.zeros(2, 3))])
probe("__setitem__ on a row keeps autograd (encoder_outputs[ei] = out[0, 0])")(lambda: grad_of(lambda x: (lambda buf: (buf.__setitem__(0, x[0]), buf.__setitem__(1, x[1] * 2), buf)[-1])(torch.zeros(3, 3)), X23))
probe("augmented in-place += on slices (confusion[i][j] += 1)")(lambda: [(lambda z: (z[1].__setitem__(2, z[1][2] + 1), z.__setitem__(0, z[0] / 2), z)[-1])(torch.ones(2, 3))])
# ---------------- tensor methods ----------------
probe("Tensor.item / tolist / numpy / size / shape / dim / numel / len")(lambda: [t([2.5]).item(), t(X23).tolist(), t(X23).numpy(), list(t(X234).size()), t(X234).size(1),
      t(X234).size()[0], list(t(X234).shape), t(X234).shape[-1], t(X234).dim(), t(X234).ndim, t(X234).numel(), len(t(X234))])
probe("Tensor.detach / clone / data / grad / requires_grad / is_leaf")(lambda: (lambda x: (lambda y: [y.detach(), x.clone(), x.data, x.grad, x.requires_grad, y.requires_grad, x.is_leaf, y.is_leaf])((x * 2).sum()))(t(X23, rg=True)))
probe("Tensor.to(dtype/device) / float() / long() / double() / int() / bool() / type(torch.float)")(lambda: [t([1.7]).to(torch.long), t([1]).float(), t([1.5]).long(), t([1.5]).double(),
      t([1.5]).to("cpu"), t([1, 0]).bool(), t([1]).type(torch.float), t([2.5]).int(), str(t([1]).to(torch.float64).dtype).replace("pyengine", "torch")])
probe("Tensor.cpu()")(lambda: [t(X23).cpu()])
probe("Tensor.is_cuda / device.type")(lambda: [t(X23).is_cuda, t(X23).device.type])
probe("Tensor.fill_ / zero_ / copy_ / uniform_ range / normal_ stats")(lambda: [torch.zeros(3).fill_(2.0), t(X5).zero_(), torch.zeros(2, 3).copy_(t(X23)),
      bool(((torch.zeros(1000).uniform_(-0.1, 0.1)).abs() <= 0.1).all()), abs(torch.zeros(10000).normal_(0, 2).std().item() - 2) < 0.1, abs(torch.empty(10000).normal_().mean().item()) < 0.05])
probe("Tensor.add_(other, alpha=) / sub_ / mul_ / div_")(lambda: [t(X5).add_(t(X5), alpha=-0.5), t(X5).mul_(2), t(X5).sub_(1), t(X5).div_(2)])
probe("Tensor.add_(scalar, tensor) deprecated overload (p.data.add_(-lr, grad))")(lambda: [t(X5).add_(-0.5, t(X5))])
probe("Tensor.unsqueeze_ / in-place on target")(lambda: [t([1, 2]).unsqueeze_(-1)])
def _isub():
    p = t(X5, rg=True)
    (p * p).sum().backward()
    with torch.no_grad():
        p -= 0.1 * p.grad
    return [p.detach(), p.requires_grad, p.is_leaf]
probe("in-place param update under no_grad (param -= lr * grad)")(_isub)
probe("x.grad = None / leaf grad accumulation over two backward()")(lambda: (lambda x: ((x * 2).sum().backward(), (x * 3).sum().backward(), [x.grad.clone()], setattr(x, "grad", None), x.grad is None)[2] + [x.grad is None])(t(X5, rg=True)))
probe("Tensor.new_zeros / new_ones / new_tensor")(lambda: [t(X23).new_zeros(2, 1, 3), t(X23).new_zeros((1, 2)), t(X23).new_ones(2)])
probe("Tensor.type_as / view_as")(lambda: [t([1, 2]).type_as(t(X5)), t(X23).view_as(t(A(3, 2)))])
probe("Tensor.storage().tolist() (devnag extract)")(lambda: [t(X5).storage().tolist()])
probe("Tensor.requires_grad_")(lambda: [t(X5).requires_grad_().requires_grad])
probe("str(tensor) / print")(lambda: [len(str(t(X23))) > 0])
probe("float(tensor) / int(tensor) / format(tensor 0-dim)")(lambda: [float(t([2.5])), int(t([3])), "{:.2f}".format(t(2.5)), f"{torch.tensor(1.5):.1f}"])
probe("0-dim tensor as list index / in range() / comparison to int")(lambda: [["a", "b", "c"][torch.tensor(1)], list(range(torch.tensor(3))), bool(torch.tensor(2) == 2)])
probe("sum(list of tensors) (python sum)")(lambda: grad_of(lambda x: sum([x[0], x[1]]), X23))
# ---------------- autograd ----------------
def _ng():
    x = t(X5, rg=True)
    with torch.no_grad():
        a = (x * 2).requires_grad
    return [a, torch.no_grad()(lambda x: (x * 2).requires_grad)(x), (x * 2).requires_grad]
probe("torch.no_grad (context + decorator)")(_ng)
probe("torch.inference_mode (decorator/context)")(lambda: [torch.inference_mode()(lambda x: (x * 2).requires_grad)(t(X5, rg=True))])
probe("torch.set_grad_enabled / is_grad_enabled")(lambda: [torch.is_grad_enabled()])
probe("torch.autograd.Function (ctx.save_for_backward / saved_tensors / apply)")(lambda: grad_of(lambda x: _legendre(torch).apply(x), X5))
def _legendre(torch):
    class L(torch.autograd.Function):
        @staticmethod
        def forward(ctx, i):
            ctx.save_for_backward(i)
            return 0.5 * (5 * i ** 3 - 3 * i)
        @staticmethod
        def backward(ctx, g):
            i, = ctx.saved_tensors
            return g * 1.5 * (5 * i ** 2 - 1)
    return L
probe("Tensor.backward on non-scalar with gradient arg")(lambda: (lambda x: ((x * 2).backward(torch.ones(5)), [x.grad])[1])(t(X5, rg=True)))
# ---------------- nn.functional ----------------
import torch.nn as nn
import torch.nn.functional as F
_un("F.relu / F.tanh / F.sigmoid / F.gelu / F.leaky_relu", lambda x: F.relu(x) + F.tanh(x) + F.sigmoid(x) + F.gelu(x) + F.leaky_relu(x, 0.2))
_un("F.softmax / F.log_softmax (dim)", lambda x: (F.softmax(x, dim=1) * t(X23)).sum() + (F.log_softmax(x, dim=-1) * t(X23)).sum())
_un("F.log_softmax / F.softmax without dim (implicit, deprecated)", lambda x: (F.log_softmax(x) * t(X23)).sum())
probe("F.cross_entropy (mean, ignore_index=-1)")(lambda: grad_of(lambda x: F.cross_entropy(x, t([2, 0, 0, 1])) + F.cross_entropy(x, t([2, -1, 0, 1]), ignore_index=-1), A(4, 3)))
probe("F.cross_entropy with probability (float) targets")(lambda: grad_of(lambda x: F.cross_entropy(x, torch.softmax(t(A(4, 3)), -1)), A(4, 3)))
probe("F.cross_entropy with (N,1) float target on (N,1) logits (ddp tutorial)")(lambda: grad_of(lambda x: F.cross_entropy(x, t(np.abs(A(4, 1)))), A(4, 1)))
probe("F.nll_loss (mean / reduction='sum')")(lambda: grad_of(lambda x: F.nll_loss(F.log_softmax(x, 1), t([0, 2, 1, 1])) + F.nll_loss(F.log_softmax(x, 1), t([0, 2, 1, 1]), reduction="sum"), A(4, 3)))
probe("F.binary_cross_entropy (reduction='sum')")(lambda: grad_of(lambda x: F.binary_cross_entropy(torch.sigmoid(x), t(np.abs(X23) / 3), reduction="sum"), X23))
probe("F.mse_loss (reduction='sum')")(lambda: grad_of(lambda x: F.mse_loss(x, t(X23), reduction="sum") + F.mse_loss(x, t(X23 * 0)), X23))
probe("legacy size_average=False on losses (F.binary_cross_entropy, nn.MSELoss)")(lambda: grad_of(lambda x: F.binary_cross_entropy(torch.sigmoid(x), t(np.abs(X23) / 3), size_average=False) + nn.MSELoss(size_average=False)(x, t(X23 * 0)), X23))
probe("F.smooth_l1_loss")(lambda: grad_of(lambda x: F.smooth_l1_loss(x * 3, t(X23)), X23))
probe("F.layer_norm (weight, bias=None)")(lambda: grad_of(lambda x, w: F.layer_norm(x, w.shape, w, None, 1e-5), X23, np.ones(3, np.float32)))
probe("F.scaled_dot_product_attention (is_causal, dropout_p=0)")(lambda: grad_of(lambda q: F.scaled_dot_product_attention(q, q * 0.5, q + 1, attn_mask=None, dropout_p=0, is_causal=True), A(1, 2, 4, 8)))
probe("F.dropout (train, p=0 / eval)")(lambda: [F.dropout(t(X23), 0.0), F.dropout(t(X23), 0.5, training=False)])
probe("F.pad")(lambda: grad_of(lambda x: F.pad(x, (1, 0)), X23))
probe("F.one_hot")(lambda: [F.one_hot(t([0, 2]), 3)])
probe("F.embedding")(lambda: grad_of(lambda w: F.embedding(t([[0, 2]]), w), A(3, 4)))
probe("F.linear")(lambda: grad_of(lambda x, w: F.linear(x, w), X23, A(4, 3)))
probe("F.max_pool2d")(lambda: grad_of(lambda x: F.max_pool2d(x, 2), A(1, 1, 4, 4)))
probe("hasattr(F, 'scaled_dot_product_attention')")(lambda: [hasattr(torch.nn.functional, "scaled_dot_product_attention")])
# ---------------- nn modules ----------------
def mod_probe(name, build, inp, extra=None):
    def f():
        torch.manual_seed(0)
        m = build()
        sd = {k: (t(np.random.RandomState(sum(map(ord, k))).randn(*v.shape).astype(np.float32) * 0.3) if (v.dtype == torch.float32 and v.dim() > 0 and "running" not in k) else v) for k, v in m.state_dict().items()} if extra != "keep" else None
        if sd is not None:
            m.load_state_dict(sd)
        xs = [t(a, rg=True) if a.dtype == np.float32 else t(a) for a in inp]
        y = m(*xs)
        ys = y if isinstance(y, tuple) else (y,)
        flat = []
        for v in ys:
            flat += list(v) if isinstance(v, tuple) else [v]
        s = sum((v * t(np.random.RandomState(i).randn(*v.shape).astype(np.float32))).sum() for i, v in enumerate(flat) if v is not None and v.dtype == torch.float32)
        s.backward()
        return flat + [x.grad for x in xs if x.requires_grad] + [p.grad for _, p in sorted(m.named_parameters())]
    probe(name)(f)
PYTHONHASHSEED = os.environ.get("PYTHONHASHSEED")
mod_probe("nn.Linear", lambda: nn.Linear(3, 2), [X23])
mod_probe("nn.Linear(bias=False)", lambda: nn.Linear(3, 2, bias=False), [X23])
mod_probe("nn.Embedding", lambda: nn.Embedding(5, 3), [np.array([[0, 4], [2, 2]])])
def _lstm2():
    m = nn.LSTM(4, 3, 2)
    class W(nn.Module):
        def __init__(s): super().__init__(); s.l = m
        def forward(s, x, h, c): return s.l(x, (h, c))
    return W()
mod_probe("nn.LSTM (seq-first, 2 layers, (h0, c0) given)", _lstm2, [A(5, 2, 4), A(2, 2, 3), A(2, 2, 3)])
mod_probe("nn.LSTM(batch_first=True), no state", lambda: nn.LSTM(input_size=4, hidden_size=3, batch_first=True), [A(2, 5, 4)])
mod_probe("nn.LSTM(bidirectional=True)", lambda: nn.LSTM(4, 3, num_layers=1, bidirectional=True), [A(5, 1, 4)])
mod_probe("nn.LSTM(num_layers=2, dropout=0.0, batch_first, bidirectional)", lambda: nn.LSTM(4, 3, 2, batch_first=True, bidirectional=True), [A(2, 5, 4)])
mod_probe("nn.LSTMCell", lambda: nn.LSTMCell(4, 3), [A(2, 4)])
mod_probe("nn.GRU", lambda: nn.GRU(4, 3), [A(5, 1, 4)])
mod_probe("nn.GRU(batch_first=True, num_layers=2)", lambda: nn.GRU(4, 3, num_layers=2, batch_first=True), [A(2, 5, 4)])
mod_probe("nn.RNN(nonlinearity='tanh')", lambda: nn.RNN(4, 3, 2, nonlinearity="tanh"), [A(5, 2, 4)])
mod_probe("nn.RNN(nonlinearity='relu')", lambda: nn.RNN(4, 3, 1, nonlinearity="relu"), [A(5, 2, 4)])
mod_probe("nn.LayerNorm", lambda: nn.LayerNorm(4), [A(2, 3, 4)])
mod_probe("nn.BatchNorm1d (train)", lambda: nn.BatchNorm1d(4), [A(6, 4)])
mod_probe("nn.BatchNorm2d (train)", lambda: nn.BatchNorm2d(2), [A(3, 2, 4, 4)])
mod_probe("nn.Conv2d", lambda: nn.Conv2d(2, 3, 3, 1), [A(2, 2, 6, 6)])
mod_probe("nn.Conv2d(stride=2, padding=1, bias=False)", lambda: nn.Conv2d(2, 3, 4, 2, 1, bias=False), [A(2, 2, 8, 8)])
mod_probe("nn.ConvTranspose2d(stride=2, padding=1, bias=False)", lambda: nn.ConvTranspose2d(3, 2, 4, 2, 1, bias=False), [A(2, 3, 4, 4)])
mod_probe("nn.MultiheadAttention", lambda: nn.MultiheadAttention(8, 2), [A(5, 2, 8), A(5, 2, 8), A(5, 2, 8)])
def _tel():
    torch.manual_seed(0)
    return nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, 0.0), 2, enable_nested_tensor=False)
mod_probe("nn.TransformerEncoderLayer + nn.TransformerEncoder (dropout 0)", _tel, [A(5, 2, 8)])
mod_probe("nn.Transformer (as encoder holder: .encoder)", lambda: (lambda tr: tr.encoder)(nn.Transformer(d_model=8, nhead=2, dim_feedforward=16, num_encoder_layers=1, dropout=0.0)), [A(5, 2, 8)])
mod_probe("nn.ReLU/Tanh/Sigmoid/GELU/LeakyReLU(0.2, inplace=True)/ReLU(True)", lambda: nn.Sequential(nn.Linear(3, 3), nn.ReLU(True), nn.Linear(3, 3), nn.Tanh(), nn.Sigmoid(), nn.GELU(), nn.LeakyReLU(0.2, inplace=True)), [X23])
mod_probe("nn.LogSoftmax(dim=1) / nn.Softmax(dim=1)", lambda: nn.Sequential(nn.Linear(3, 3), nn.LogSoftmax(dim=1)), [X23])
mod_probe("nn.Flatten() / nn.Flatten(0, 1)", lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 1), nn.Flatten(0, 1)), [X234])
mod_probe("nn.Dropout(p=0) / nn.Dropout2d in eval", lambda: (lambda s: s.eval())(nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.Dropout2d(0.25), nn.Dropout(p=0.1))), [X23])
mod_probe("nn.Identity", lambda: nn.Sequential(nn.Linear(3, 3), nn.Identity()), [X23])
probe("loss modules CrossEntropyLoss/NLLLoss/MSELoss(reduction='sum')/BCELoss/BCEWithLogitsLoss/L1Loss")(lambda: grad_of(lambda x: nn.CrossEntropyLoss()(x, t([0, 2, 1, 1])) + nn.NLLLoss()(F.log_softmax(x, 1), t([0, 2, 1, 1]))
      + nn.MSELoss(reduction="sum")(x, t(A(4, 3))) + nn.BCELoss()(torch.sigmoid(x), t(np.ones((4, 3), np.float32) * 0.3)) + nn.BCEWithLogitsLoss()(x, t(np.ones((4, 3), np.float32) * 0.7)) + nn.L1Loss()(x, t(A(4, 3))), A(4, 3)))
probe("nn.Parameter (requires_grad, in parameters(), .data assignment)")(lambda: (lambda p: [p.requires_grad, isinstance(p, torch.Tensor), (lambda: (p.data.__setitem__(0, -10000), p)[1])()])(nn.Parameter(t(A(3, 3)))))
probe("nn.Module API: parameters/named_parameters/state_dict keys/apply/train/eval/training/children/modules/zero_grad")(lambda: (lambda m: [
      [n for n, _ in m.named_parameters()], sorted(m.state_dict().keys()), m.training, m.eval().training, m.train().training, len(list(m.children())), len(list(m.modules())),
      sum(p.numel() for p in m.parameters()), (m.apply(lambda s: None) is m), m.zero_grad() is None, type(m[0]).__name__, m[0].__class__.__name__])(nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))))
probe("nn.Module.zero_grad(set_to_none=True) / optimizer.zero_grad(set_to_none=True)")(lambda: (lambda m: ((m(t(X23)).sum().backward()), m.zero_grad(set_to_none=True), [m.weight.grad is None])[-1])(nn.Linear(3, 1)))
probe("nn.Module.register_buffer (in state_dict, moves with .to, not a parameter)")(lambda: (lambda m: (m.register_buffer("pe", torch.zeros(2, 3)), [sorted(m.state_dict().keys()), len(list(m.parameters()))])[-1])(nn.Linear(3, 1)))
probe("nn.Module.double() / .to(device) / .cpu()")(lambda: [str(nn.Linear(2, 2).double().weight.dtype).replace("pyengine", "torch"), nn.Linear(2, 2).to("cpu").weight.shape[0], nn.Linear(2, 2).cpu().weight.shape[0]])
probe("weight tying (lm_head.weight = wte.weight) shares one Parameter")(lambda: (lambda e, l: (setattr(e, "weight", l.weight), [e.weight is l.weight])[-1])(nn.Embedding(5, 3), nn.Linear(3, 5, bias=False)))
probe("nn.ModuleList / nn.ModuleDict(dict(...)) attribute access")(lambda: (lambda md: [type(md.h[0]).__name__, len(md.h), sorted(k for k, _ in md.named_parameters())])(nn.ModuleDict(dict(wte=nn.Embedding(3, 2), h=nn.ModuleList([nn.Linear(2, 2) for _ in range(2)])))))
probe("subclassing nn.Linear with (in, out, bias, device, dtype) positionally")(lambda: [type(type("L", (nn.Linear,), {})(3, 2, True, None, None)).__name__])
probe("nn.init.normal_/zeros_/uniform_/xavier_uniform_")(lambda: (lambda w: [nn.init.zeros_(torch.empty(3)), bool((nn.init.uniform_(torch.empty(100), -0.1, 0.1).abs() <= 0.1).all()),
      abs(nn.init.normal_(torch.empty(10000), mean=0.0, std=0.02).std().item() - 0.02) < 0.002, abs(nn.init.normal_(torch.empty(10000), 1.0, 0.02).mean().item() - 1) < 0.002, nn.init.xavier_uniform_(torch.empty(3, 4)).shape[0]])(None))
probe("nn.utils.clip_grad_norm_ (returns total norm)")(lambda: (lambda m: (m(t(X23) * 10).sum().backward(), [torch.nn.utils.clip_grad_norm_(m.parameters(), 0.5), m.weight.grad])[-1])(nn.Linear(3, 2)))
probe("torch.nn.utils.clip_grad_norm_ imported as name")(lambda: [callable(__import__("torch.nn.utils", fromlist=["clip_grad_norm_"]).clip_grad_norm_)])
# ---------------- optim ----------------
def opt_probe(name, mk, steps=3, closure=False):
    def f():
        torch.manual_seed(0)
        m = nn.Linear(3, 2)
        m.load_state_dict({"weight": t(A(2, 3)), "bias": t(A(2))})
        o = mk(m)
        x, y = t(A(4, 3)), t(A(4, 2))
        out = []
        for _ in range(steps):
            def cl():
                o.zero_grad()
                l = ((m(x) - y) ** 2).mean()
                l.backward()
                return l
            if closure:
                o.step(cl)
            else:
                cl(); o.step()
            out += [m.weight.detach().clone(), m.bias.detach().clone()]
        return out
    probe(name)(f)
opt_probe("optim.SGD(lr)", lambda m: torch.optim.SGD(m.parameters(), lr=0.1))
opt_probe("optim.SGD(momentum, weight_decay)", lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4))
opt_probe("optim.Adam(betas)", lambda m: torch.optim.Adam(m.parameters(), lr=0.01, betas=(0.5, 0.999)))
opt_probe("optim.AdamW(param groups, betas, eps, weight_decay)", lambda m: torch.optim.AdamW([{"params": [m.weight], "weight_decay": 0.1}, {"params": [m.bias], "weight_decay": 0.0}], lr=0.01, betas=(0.9, 0.99), eps=1e-8))
opt_probe("optim.RMSprop", lambda m: torch.optim.RMSprop(m.parameters(), lr=0.01))
opt_probe("optim.Adadelta(lr=1.0)", lambda m: torch.optim.Adadelta(m.parameters(), lr=1.0))
opt_probe("optim.LBFGS(lr=0.8) with closure", lambda m: torch.optim.LBFGS(m.parameters(), lr=0.8), steps=2, closure=True)
probe("optimizer.param_groups[i]['lr'] = x takes effect")(lambda: (lambda m: (lambda o: (setattr(o, "x", None), [g.__setitem__("lr", 0.0) for g in o.param_groups], m(t(X23)).sum().backward(), o.step(), [m.weight.detach()])[-1])(torch.optim.SGD(m.parameters(), lr=1.0)))((lambda m: (m.load_state_dict({"weight": t(A(1, 3)), "bias": t(A(1))}), m)[1])(nn.Linear(3, 1))))
probe("optimizer.state_dict() / load_state_dict() round trip")(lambda: (lambda o: [sorted(o.state_dict().keys()), o.load_state_dict(o.state_dict()) is None])(torch.optim.AdamW(nn.Linear(2, 2).parameters(), lr=0.1)))
probe("inspect.signature(torch.optim.AdamW) has 'fused'")(lambda: ["fused" in __import__("inspect").signature(torch.optim.AdamW).parameters])
probe("lr_scheduler.StepLR(step_size=1.0 float, gamma) + get_last_lr")(lambda: (lambda o: (lambda s: [s.get_last_lr(), (o.step(), s.step(), s.get_last_lr())[-1], (o.step(), s.step(), s.get_last_lr())[-1]])(torch.optim.lr_scheduler.StepLR(o, 1.0, gamma=0.95)))(torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=5.0)))
probe("from torch.optim.lr_scheduler import StepLR(step_size=1, gamma=0.7)")(lambda: (lambda o: (lambda s: [(o.step(), s.step(), s.get_last_lr())[-1]])(torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.7)))(torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)))
# ---------------- data ----------------
from torch.utils.data import DataLoader, Dataset, TensorDataset
class _DS(Dataset):
    def __init__(s): s.x = [torch.tensor(A(3)) for _ in range(10)]
    def __len__(s): return 10
    def __getitem__(s, i): return s.x[i], i
probe("DataLoader default collate (tensor, int) -> (stacked, LongTensor); len; .dataset")(lambda: (lambda dl: [next(iter(dl))[0], next(iter(dl))[1], str(next(iter(dl))[1].dtype).replace("pyengine", "torch"), len(dl), len(dl.dataset)])(DataLoader(_DS(), batch_size=4)))
probe("DataLoader(shuffle=True, drop_last) batch shapes", "shape")(lambda: [b[0] for b in DataLoader(_DS(), batch_size=4, shuffle=True, drop_last=True)])
probe("DataLoader(num_workers=2, pin_memory=True)")(lambda: [b[0] for b in DataLoader(_DS(), batch_size=5, num_workers=2, pin_memory=True)])
probe("RandomSampler(replacement=True, num_samples=1e10) + DataLoader(sampler=)", "shape")(lambda: [next(iter(DataLoader(_DS(), sampler=torch.utils.data.RandomSampler(_DS(), replacement=True, num_samples=int(1e10)), shuffle=False, batch_size=4)))[0]])
probe("TensorDataset + DataLoader")(lambda: [next(iter(DataLoader(TensorDataset(t(A(6, 2)), t(np.arange(6))), batch_size=3)))[1]])
probe("torch.utils.data.dataloader.DataLoader (module path)")(lambda: [__import__("torch.utils.data.dataloader", fromlist=["DataLoader"]).DataLoader.__name__])
probe("torch.utils.data.random_split", "shape")(lambda: [len(x) for x in torch.utils.data.random_split(_DS(), [7, 3])])
# ---------------- save / load ----------------
def _tmp():
    return os.path.join(tempfile.mkdtemp(), "f.pt")
probe("torch.save(state_dict) / torch.load / load_state_dict")(lambda: (lambda p, m: (torch.save(m.state_dict(), p), (lambda m2: (m2.load_state_dict(torch.load(p)), [m2.weight.detach()])[-1])(nn.Linear(2, 2)))[-1])(_tmp(), (lambda m: (m.load_state_dict({"weight": t(A(2, 2)), "bias": t(A(2))}), m)[1])(nn.Linear(2, 2))))
probe("torch.save(whole nn.Module) / torch.load(f) in weights_only=False style")(lambda: (lambda p: (torch.save(nn.Linear(2, 2), open(p, "wb")), [type(torch.load(open(p, "rb"), weights_only=False)).__name__])[-1])(_tmp()))
probe("torch.save(dict: state_dicts + optimizer state + ints/floats/str config) (nanoGPT checkpoint)")(lambda: (lambda p: (torch.save({"model": nn.Linear(2, 2).state_dict(), "optimizer": torch.optim.AdamW(nn.Linear(2, 2).parameters()).state_dict(),
      "iter_num": 3, "best_val_loss": 1.5, "config": {"a": "b"}}, p), sorted(torch.load(p, map_location="cpu").keys()))[-1])(_tmp()))
probe("torch.save(numpy array, file object) / torch.load (time-sequence data)")(lambda: (lambda p: (torch.save(X23.astype(np.float64), open(p, "wb")), [np.asarray(torch.load(p, weights_only=False))])[-1])(_tmp()))
probe("torch.serialization.safe_globals (context)")(lambda: [hasattr(torch.serialization.safe_globals([]), "__enter__")])
# ---------------- misc ----------------
probe("torch.compile (returns a callable module)")(lambda: [callable(torch.compile(nn.Linear(2, 2)))])
probe("torch.amp.autocast(device_type='cpu') context")(lambda: [hasattr(torch.amp.autocast(device_type="cpu", dtype=torch.bfloat16), "__enter__")])
probe("torch.cuda.amp.GradScaler(enabled=False) scale/step/update")(lambda: (lambda s: [s.is_enabled()])(torch.cuda.amp.GradScaler(enabled=False)))
probe("torch.utils.tensorboard.SummaryWriter")(lambda: [__import__("torch.utils.tensorboard", fromlist=["SummaryWriter"]).SummaryWriter.__name__])
probe("torch.nn.parallel.DistributedDataParallel (import)")(lambda: [__import__("torch.nn.parallel", fromlist=["DistributedDataParallel"]).DistributedDataParallel.__name__])
probe("torch.distributed.init_process_group/destroy_process_group (import)")(lambda: [callable(__import__("torch.distributed", fromlist=["init_process_group"]).init_process_group)])
probe("torch.onnx (import)")(lambda: [callable(__import__("torch.onnx", fromlist=["export"]).export)])
probe("torch.set_num_threads / get_num_threads")(lambda: [torch.get_num_threads() >= 1])


# ---------------- census round 3 (gcn/gat, mnist_hogwild, wgan_gp, keras mnist_convnet) ----------------
def _sparse_probe():
    adj = torch.sparse_coo_tensor(np.array([[0, 1, 1, 2, 2], [1, 0, 2, 1, 1]], dtype=np.int32), torch.ones(5), (3, 3), dtype=torch.int64)
    a = torch.eye(3) + adj
    d = torch.diag(torch.sqrt(1 / torch.sum(a, dim=1))).to_sparse()
    norm = d @ a @ d
    feats = t(X34[:3], rg=True)
    w = t(A(4, 2), rg=True)
    out = torch.spmm(norm.to_sparse(), torch.mm(feats.to_sparse(), w))
    out.sum().backward()
    return [adj.to_dense(), adj.is_sparse, a.is_sparse, str(adj.layout), str(a.layout), adj.coalesce().indices(),
            adj.coalesce().values(), adj.coalesce()._nnz(), norm, out, feats.grad, w.grad]
probe("torch.sparse_coo_tensor / Tensor.to_sparse / torch.spmm / sparse @ dense")(_sparse_probe)
def _sparse_values_grad():
    v = t(A(3), rg=True)
    s = torch.sparse_coo_tensor(torch.tensor([[0, 2, 0], [1, 0, 1]]), v, (3, 2))
    y = torch.sparse.mm(s, t(A(2, 4)))
    y.sum().backward()
    return [s.to_dense(), y, v.grad]
probe("torch.sparse_coo_tensor(values requiring grad) + torch.sparse.mm")(_sparse_values_grad)
probe("factories with size= keyword (torch.empty(size=...))", "shape")(lambda: [torch.empty(size=(2, 3)), torch.zeros(size=(4,)), torch.ones(size=[1, 2]), torch.randn(size=(3, 1)), torch.rand(size=(2,))])
def _grad_penalty():
    D = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.LeakyReLU(0.2), torch.nn.Linear(5, 3), torch.nn.Tanh(),
                            torch.nn.Linear(3, 1), torch.nn.Sigmoid())
    with torch.no_grad():
        for p in D.parameters():
            p.copy_(torch.from_numpy(A(*p.shape)))
    x = t(A(4, 7), rg=True)
    d = D(x * 2 - 1)
    g, = torch.autograd.grad(outputs=d, inputs=x, grad_outputs=torch.ones(4, 1), create_graph=True, retain_graph=True,
                             only_inputs=True)
    gp = ((g.view(4, -1).norm(2, dim=1) - 1) ** 2).mean()
    (gp + d.mean()).backward()
    return [g, gp] + [p.grad for p in D.parameters()] + [x.grad]
probe("torch.autograd.grad(create_graph=True) (WGAN-GP gradient penalty)")(_grad_penalty)
def _double_grad():
    x = t(A(5), rg=True)
    y = (x.exp() * x - x / (x * x + 1)).sum()
    g, = torch.autograd.grad(y, x, create_graph=True)
    h, = torch.autograd.grad(g.sum(), x)
    return [g, h]
probe("torch.autograd.grad twice (second derivative)")(_double_grad)
probe("torch.cat/stack of transposed tensors are contiguous")(lambda: [torch.stack([t(X34).t(), t(X34).t()]).view(2, -1), torch.cat([t(X34).t(), t(X34).t()]).is_contiguous()])
def _hogwild():
    import torch.multiprocessing as mp
    m = torch.nn.Linear(3, 2)
    m.share_memory()
    before = m.weight.detach().clone()
    p = mp.get_context("fork").Process(target=_hogwild_child, args=(m,))
    p.start()
    p.join()
    return [m.weight.is_shared(), p.exitcode, m.weight.detach() - before]
def _hogwild_child(m):
    with torch.no_grad():
        m.weight.add_(1.0)
probe("torch.multiprocessing + Module.share_memory (a child's in-place update is seen)")(_hogwild)

def _embedding_bag():
    w = t(A(6, 3), rg=True)
    y = torch.nn.functional.embedding_bag(torch.tensor([1, 2, 4, 5, 4, 3, 2]), w, torch.tensor([0, 2, 2]), mode="mean")
    (y * t(A(3, 3))).sum().backward()
    return [y, w.grad]
probe("torch.nn.EmbeddingBag / F.embedding_bag (offsets, mean)")(_embedding_bag)
probe("torch.nn.PixelShuffle")(lambda: grad_of(lambda x: torch.nn.PixelShuffle(2)(x) * t(A(1, 2, 4, 6)), A(1, 8, 2, 3)))


def enc(v):
    if isinstance(v, torch.Tensor):
        a = v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)
        a = np.asarray(a)
        return {"T": list(a.shape), "dtype": str(a.dtype), "v": np.where(np.isfinite(a), a, np.sign(a) * 1e30).astype(np.float64).ravel().tolist() if a.dtype != bool else a.ravel().astype(int).tolist()}
    if isinstance(v, np.ndarray):
        return {"N": list(v.shape), "v": v.astype(np.float64).ravel().tolist()}
    if isinstance(v, (list, tuple)):
        return [enc(x) for x in v]
    if isinstance(v, dict):
        return {str(k): enc(x) for k, x in v.items()}
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    return repr(type(v).__name__)


res = {}
only = sys.argv[2] if len(sys.argv) > 2 else None
for name, (f, kind) in PROBES.items():
    if only and only not in name:
        continue
    try:
        np.random.seed(0)
        R.seed(0)
        torch.set_grad_enabled(True)
        torch.manual_seed(0)
        out = f()
        res[name] = {"ok": True, "kind": kind, "out": enc(out)}
    except BaseException as e:  # noqa: BLE001
        res[name] = {"ok": False, "kind": kind, "err": f"{type(e).__name__}: {str(e)[:300]}"}
json.dump(res, open(sys.argv[1], "w"))
print(len(res), "probes,", sum(1 for r in res.values() if not r["ok"]), "raised")
