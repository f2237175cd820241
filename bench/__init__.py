"""pyengine's benchmarks: pyengine side by side with NumPy and PyTorch (when installed), same process."""
