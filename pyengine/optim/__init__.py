"""pyengine.optim: optimizers and learning-rate schedulers (PyTorch's names and semantics).

``SGD``, ``Adam``, ``AdamW``, ``RMSprop``, ``Adagrad`` take an iterable of parameters (or of
param-group dicts) and update them in ``step()`` with the backend's fused update kernels
(``sgd_update``, ``adam_update``, ``rmsprop_update``, ``adagrad_update``: one call per param
group). ``Adadelta`` and ``LBFGS`` (``step(closure)``, optional strong-Wolfe line search) compute
in Python with the backend's array module (no kernel yet). ``lr_scheduler`` holds the schedulers.

Example::

    opt = pyengine.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    sched = pyengine.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)
    for x, y in loader:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        sched.step()
"""
from . import lr_scheduler  # noqa: F401
from .adadelta import Adadelta  # noqa: F401
from .adagrad import Adagrad  # noqa: F401
from .adam import Adam, AdamW  # noqa: F401
from .lbfgs import LBFGS  # noqa: F401
from .optimizer import Optimizer  # noqa: F401
from .rmsprop import RMSprop  # noqa: F401
from .sgd import SGD  # noqa: F401

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "LBFGS", "lr_scheduler"]
