"""Reference models built from pyengine.nn."""
from .gpt import GPT, GPTConfig  # noqa: F401
