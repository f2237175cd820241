"""keras.datasets.mnist: ``load_data()`` -> ((x_train, y_train), (x_test, y_test)), uint8 arrays of shapes
(60000, 28, 28), (60000,), (10000, 28, 28), (10000,).

As Keras: the file is ``mnist.npz`` in ``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``), downloaded
there from Keras' URL the first time (``path`` names another file in that directory, or an absolute path).
"""
import os
import urllib.request

import numpy as np

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"


def cache_dir():
    return os.path.join(os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras"), "datasets")


def get_file(fname, origin):
    """The local path of ``fname`` in Keras' cache, downloading it from ``origin`` when it is not there."""
    path = fname if os.path.isabs(fname) else os.path.join(cache_dir(), fname)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".part"
        try:
            urllib.request.urlretrieve(origin, tmp)
        except OSError as e:
            raise OSError(f"keras.datasets: {os.path.basename(path)} is not in {os.path.dirname(path)} and "
                          f"downloading it from {origin} failed ({e})") from None
        os.replace(tmp, path)
    return path


def load_data(path="mnist.npz"):
    with np.load(get_file(path, ORIGIN), allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
