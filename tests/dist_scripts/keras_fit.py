"""keras fit under mpiexec, unchanged: prints rank 0's final weights and history as JSON."""
import json
import sys

import numpy as np

import pyengine as pe
from pyengine.keras import Sequential
from pyengine.keras.layers import Dense

out = sys.argv[1]
pe.manual_seed(0)
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 5)).astype(np.float32)
y = (x @ rng.standard_normal((5, 1)) > 0).astype(np.float32)
model = Sequential([Dense(8, activation="relu"), Dense(1, activation="sigmoid")])
model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
batch = int(sys.argv[2])
hist = model.fit(x, y, epochs=3, batch_size=batch, shuffle=False, verbose=2)
import pyengine.distributed as dist  # noqa: E402
if dist.get_rank() == 0:
    with open(out, "w") as f:
        json.dump({"weights": [w.tolist() for w in model.get_weights()], "history": hist.history,
                   "world": dist.get_world_size()}, f)
