"""``torch.backends.openmp``: the compiled kernels run on OpenMP threads."""


def is_available():
    return True
