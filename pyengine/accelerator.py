"""pyengine.accelerator: PyTorch's ``torch.accelerator`` on a build without one (the CPU is not an
accelerator): ``is_available()`` False, ``current_accelerator()`` None, ``device_count()`` 0; what needs a
device (``synchronize``, ``set_device_index``, ``current_device_index``) raises RuntimeError."""


def is_available():
    return False


def current_accelerator(check_available=False):
    """The accelerator's device type, or None when there is none (always, in this build)."""
    return None


def device_count():
    return 0


def _none():
    return RuntimeError("Cannot access accelerator device when none is available.")


def current_device_index():
    raise _none()


current_device_idx = current_device_index


def set_device_index(device):
    raise _none()


set_device_idx = set_device_index


def synchronize(device=None):
    raise _none()
