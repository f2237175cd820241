"""LSTM cell pointwise kernels (the GEMMs around them are matmul/linear)."""
__all__ = []
