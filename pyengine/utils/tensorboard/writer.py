"""SummaryWriter: TensorBoard event files through the ``tensorboard`` package's writer and protos."""
import os
import socket
import time
from datetime import datetime

import numpy as np

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from ...tensor import Tensor


def _number(v, what):
    if isinstance(v, Tensor):
        if v.numel() != 1:
            raise ValueError(f"{what}: expected a one-element tensor, got shape {tuple(v.shape)}")
        return float(v.item())
    return float(v)


def _array(v):
    if isinstance(v, Tensor):
        return v.detach()._data.astype(np.float64)
    return np.asarray(v, dtype=np.float64)


class SummaryWriter:
    """PyTorch's ``SummaryWriter(log_dir=None, comment="", purge_step=None, max_queue=10, flush_secs=120,
    filename_suffix="")``: ``add_scalar``, ``add_scalars``, ``add_histogram``, ``add_text``, ``add_hparams``,
    ``flush``, ``close``; a context manager. ``log_dir`` defaults to ``runs/<date>_<host><comment>``."""

    def __init__(self, log_dir=None, comment="", purge_step=None, max_queue=10, flush_secs=120,
                 filename_suffix=""):
        if not log_dir:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")
        self.log_dir = str(log_dir)
        self._max_queue, self._flush_secs, self._suffix = max_queue, flush_secs, filename_suffix
        self._writer = EventFileWriter(self.log_dir, max_queue, flush_secs, filename_suffix)
        self._sub = {}  # add_scalars' writers, one per sub-directory
        self._writer.add_event(Event(wall_time=time.time(), file_version="brain.Event:2"))

    def get_logdir(self):
        return self.log_dir

    def _add(self, summary, step, walltime, writer=None):
        ev = Event(wall_time=time.time() if walltime is None else float(walltime), summary=summary)
        if step is not None:
            ev.step = int(step)
        (writer or self._writer).add_event(ev)

    def add_scalar(self, tag, scalar_value, global_step=None, walltime=None, new_style=False,
                   double_precision=False):
        value = Summary.Value(tag=tag, simple_value=_number(scalar_value, "add_scalar"))
        self._add(Summary(value=[value]), global_step, walltime)

    def add_scalars(self, main_tag, tag_scalar_dict, global_step=None, walltime=None):
        """One run per key, written under ``log_dir/<main_tag>_<key>`` (PyTorch's layout)."""
        for key, v in tag_scalar_dict.items():
            path = os.path.join(self.log_dir, f"{main_tag.replace('/', '_')}_{key}")
            w = self._sub.get(path)
            if w is None:
                w = self._sub[path] = EventFileWriter(path, self._max_queue, self._flush_secs, self._suffix)
            value = Summary.Value(tag=main_tag, simple_value=_number(v, "add_scalars"))
            self._add(Summary(value=[value]), global_step, walltime, w)

    def add_histogram(self, tag, values, global_step=None, bins="tensorflow", walltime=None, max_bins=None):
        arr = _array(values).reshape(-1)
        if arr.size == 0:
            raise ValueError("add_histogram: the input has no element")
        counts, limits = np.histogram(arr, bins=bins if bins != "tensorflow" else 30)
        hist = HistogramProto(min=float(arr.min()), max=float(arr.max()), num=int(arr.size),
                              sum=float(arr.sum()), sum_squares=float((arr * arr).sum()),
                              bucket_limit=[float(x) for x in limits[1:]], bucket=[float(c) for c in counts])
        self._add(Summary(value=[Summary.Value(tag=tag, histo=hist)]), global_step, walltime)

    def add_text(self, tag, text_string, global_step=None, walltime=None):
        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
        tensor = TensorProto(dtype="DT_STRING", string_val=[str(text_string).encode("utf-8")],
                             tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
        value = Summary.Value(tag=tag + "/text_summary", metadata=meta, tensor=tensor)
        self._add(Summary(value=[value]), global_step, walltime)

    def add_hparams(self, hparam_dict, metric_dict, hparam_domain_discrete=None, run_name=None,
                    global_step=None):
        """The hyperparameters as text and each metric as a scalar (TensorBoard's HParams plugin protos
        are not written)."""
        lines = "\n".join(f"| {k} | {v} |" for k, v in hparam_dict.items())
        self.add_text("hparams", "| name | value |\n|---|---|\n" + lines, global_step)
        for k, v in metric_dict.items():
            self.add_scalar(k, v, global_step)

    def flush(self):
        self._writer.flush()
        for w in self._sub.values():
            w.flush()

    def close(self):
        self._writer.close()
        for w in self._sub.values():
            w.close()
        self._sub = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
