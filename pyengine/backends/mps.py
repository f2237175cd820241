"""``torch.backends.mps``: Apple's GPU backend; not in this build."""


def is_available():
    return False


def is_built():
    return False
