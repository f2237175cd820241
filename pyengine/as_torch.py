"""Run a PyTorch program on pyengine without editing it: ``import torch`` resolves to pyengine.

    python -m pyengine.as_torch train.py --its --own --args

or, inside a program, before anything imports torch::

    import pyengine.as_torch
    pyengine.as_torch.install()

``torch`` becomes the ``pyengine`` module and ``torch.X.Y`` becomes ``pyengine.X.Y`` (``torch.nn.functional``
is ``pyengine.nn.functional``, ``torch.utils.data`` is ``pyengine.utils.data``, ...). Nothing is translated or
patched: a name pyengine lacks fails with an ImportError or AttributeError that names both paths, so what a
program needs and pyengine does not have is visible at once. The aliasing is for this process only; a library
that itself needs the real PyTorch will get pyengine too, which is the point and also the limit of this mode.
docs/pytorch_compat.md lists what pyengine covers.
"""
import importlib
import importlib.abc
import importlib.util
import os
import runpy
import sys


class _TorchAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Meta-path finder: the module ``torch[.rest]`` is the already-imported ``pyengine[.rest]``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torch" and not fullname.startswith("torch."):
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        target = "pyengine" + spec.name[len("torch"):]
        try:
            return importlib.import_module(target)
        except ModuleNotFoundError as e:
            if e.name is not None and e.name != target and not target.startswith(e.name + "."):
                raise  # pyengine's own import of a third-party package failed: show that error
            raise ModuleNotFoundError(
                f"pyengine.as_torch: {spec.name} has no pyengine counterpart ({target} does not exist); "
                "docs/pytorch_compat.md lists what pyengine covers", name=spec.name) from None

    def exec_module(self, module):
        pass  # the pyengine module is imported and initialised already


_FINDER = _TorchAlias()


def install():
    """Make ``import torch`` (and every ``torch.*``) resolve to pyengine in this process. Idempotent.

    Raises RuntimeError if the real PyTorch was imported already: the two would then be mixed in one program.
    """
    loaded = sys.modules.get("torch")
    if loaded is not None and not getattr(loaded, "__name__", "").startswith("pyengine"):
        raise RuntimeError("pyengine.as_torch.install(): the real torch is imported already; install the alias "
                           "before anything imports torch")
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    import pyengine
    sys.modules["torch"] = pyengine
    _alias_in_spawned_children()


class _InstallInChild:
    """Part of the data a spawned child process (multiprocessing's "spawn" / "forkserver") unpickles before it
    runs the parent's ``__main__``: unpickling it installs the alias there too, so that ``import torch`` in
    the child's copy of the program (torch.multiprocessing, DataLoader workers) is pyengine as in the parent."""

    def __reduce__(self):
        return install, ()


def _alias_in_spawned_children():
    import multiprocessing.spawn as spawn
    prepare = spawn.get_preparation_data
    if getattr(prepare, "_pyengine_alias", False):
        return

    def get_preparation_data(name):
        data = prepare(name)
        data["pyengine_as_torch"] = _InstallInChild()  # multiprocessing's prepare() ignores keys it does not know
        return data

    get_preparation_data._pyengine_alias = True
    get_preparation_data._pyengine_original = prepare
    spawn.get_preparation_data = get_preparation_data


def uninstall():
    """Undo install(): later imports of torch find the real PyTorch (if installed)."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    spawn = sys.modules.get("multiprocessing.spawn")
    if spawn is not None and getattr(spawn.get_preparation_data, "_pyengine_alias", False):
        spawn.get_preparation_data = spawn.get_preparation_data._pyengine_original
    for name in [n for n in sys.modules if n == "torch" or n.startswith("torch.")]:
        if getattr(sys.modules[name], "__name__", "").startswith("pyengine"):
            del sys.modules[name]


def main(argv=None):
    """``python -m pyengine.as_torch SCRIPT [ARGS...]`` or ``-m MODULE [ARGS...]``: run it with the alias."""
    if __name__ == "__main__":  # run as -m: use the importable module, whose functions pickle by name
        return importlib.import_module("pyengine.as_torch").main(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m pyengine.as_torch SCRIPT.py [ARGS...]\n"
              "       python -m pyengine.as_torch -m MODULE [ARGS...]\n\n"
              "Runs a PyTorch program with `import torch` resolved to pyengine.")
        return 0 if argv else 2
    install()
    if argv[0] == "-m":
        if len(argv) < 2:
            print("pyengine.as_torch: -m needs a module name", file=sys.stderr)
            return 2
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return 0
    script = argv[0]
    if not os.path.isfile(script):
        print(f"pyengine.as_torch: no such file: {script}", file=sys.stderr)
        return 2
    sys.argv = argv
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
