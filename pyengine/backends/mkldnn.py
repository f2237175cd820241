"""``torch.backends.mkldnn``: oneDNN; pyengine has its own CPU kernels instead."""

enabled = True


def is_available():
    return False
