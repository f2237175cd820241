"""``torch.backends.cpu``: the SIMD level the compiled kernels run at."""


def get_cpu_capability():
    """"AVX512", "AVX2" or "DEFAULT": the instruction set the kernels picked at run time (PyTorch's names)."""
    try:
        from ..backend.cpu._lib import _C
        isa = _C.isa()
    except ImportError:
        isa = "generic"
    return {"avx512": "AVX512", "avx2": "AVX2"}.get(isa, "DEFAULT")
