"""python -m pyengine.as_torch: a PyTorch program runs with `import torch` resolved to pyengine."""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROGRAM = textwrap.dedent('''
    import sys
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    assert torch.__name__ == "pyengine", torch.__name__
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for epoch in range(30):
        for xb, yb in DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True):
            loss = F.mse_loss(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        first = loss.item() if first is None else first
    print(f"{first:.4f} {loss.item():.4f} {sys.argv[1:]}")
''')


def _run(args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "pyengine.as_torch", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_program_runs_unchanged(tmp_path):
    (tmp_path / "train.py").write_text(PROGRAM)
    r = _run(["train.py", "--lr", "3"], tmp_path)
    assert r.returncode == 0, r.stderr
    first, last, argv = r.stdout.split(" ", 2)
    assert float(last) < 0.5 * float(first)
    assert argv.strip() == "['--lr', '3']"  # the program sees its own arguments


def test_missing_module_names_both_paths(tmp_path):
    (tmp_path / "bad.py").write_text("import torch.no_such_module\n")
    r = _run(["bad.py"], tmp_path)
    assert r.returncode != 0
    assert "torch.no_such_module" in r.stderr and "pyengine.no_such_module" in r.stderr


def test_usage_and_missing_script(tmp_path):
    assert _run([], tmp_path).returncode == 2
    r = _run(["nope.py"], tmp_path)
    assert r.returncode == 2 and "no such file" in r.stderr


def test_refuses_after_real_torch(tmp_path):
    code = ("import torch, pyengine.as_torch as a\n"
            "try:\n    a.install()\nexcept RuntimeError as e:\n    print('refused', e)\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("refused"), r.stderr
