"""Random number generation: one default generator, seeded by ``manual_seed``.

A ``Generator`` wraps NumPy's PCG64 bit generator; its full state can be saved and restored
(``get_state``/``set_state``), which checkpoints use to resume a run exactly.
"""
import numpy as np


class Generator:
    """A source of random numbers (like torch.Generator)."""

    __slots__ = ("_rng", "_seed")

    def __init__(self, device="cpu"):
        self._seed = int(np.random.SeedSequence().entropy % (2 ** 63))
        self._rng = np.random.Generator(np.random.PCG64(self._seed))

    def manual_seed(self, seed):
        """Re-seed; the same seed gives the same sequence of numbers. Returns self."""
        seed = int(seed)
        self._seed = seed
        self._rng = np.random.Generator(np.random.PCG64(seed & (2 ** 128 - 1)))
        return self

    def seed(self):
        """Re-seed from fresh entropy; returns the new seed."""
        s = int(np.random.SeedSequence().entropy % (2 ** 63))
        self.manual_seed(s)
        return s

    def initial_seed(self):
        return self._seed

    def get_state(self):
        """The generator's full state as a JSON-serialisable dict."""
        st = self._rng.bit_generator.state
        return {"seed": self._seed, "bit_generator": st["bit_generator"],
                "state": {k: int(v) for k, v in st["state"].items()},
                "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"])}

    def set_state(self, state):
        self._seed = state["seed"]
        self._rng.bit_generator.state = {"bit_generator": state["bit_generator"], "state": dict(state["state"]),
                                         "has_uint32": state["has_uint32"], "uinteger": state["uinteger"]}
        return self

    @property
    def numpy(self):
        """The underlying numpy.random.Generator."""
        return self._rng


default_generator = Generator()


def manual_seed(seed):
    """Seed the default generator (and NumPy's legacy global one, for code that uses it)."""
    default_generator.manual_seed(seed)
    np.random.seed(int(seed) % (2 ** 32))
    return default_generator


def seed():
    return default_generator.seed()


def initial_seed():
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(state):
    default_generator.set_state(state)


def _rng(generator=None):
    return (generator if generator is not None else default_generator)._rng
