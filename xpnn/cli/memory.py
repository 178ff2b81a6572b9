"""The memory a ``xpnn train`` run needs, the memory available, and the refusal.

:func:`estimate_memory` counts the bytes of a two-layer net and its training
run before any is allocated, :func:`estimate_conv_memory` those of the book's
convolutional nets (their layers from :func:`conv_layers`),
:func:`memory_available` says how many are free where the backend allocates
(:func:`host_memory_available` on the host), and :func:`check_memory`
refuses a run that does not fit with one line.
"""

from __future__ import annotations

import os
from typing import Any

#: Arrays of the optimizer's state per parameter array.
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adam": 2}

#: ``xpnn train --model`` names of the book's convolutional nets, and their classes.
CONV_MODELS = {"simpleconvnet": "SimpleConvNet", "deepconvnet": "DeepConvNet"}

#: Samples per batch of the conv nets' ``accuracy`` (their ``batch_size=100``).
_ACCURACY_BATCH = 100

#: Bytes per float of each ``--dtype``.
ITEM_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


def estimate_memory(
    input_size: int,
    hidden: int,
    classes: int,
    batch_size: int,
    *,
    optimizer: str = "sgd",
    dtype: str = "float32",
    n_train: int = 0,
    n_test: int = 0,
    precision: str | None = None,
) -> dict[str, int]:
    """The bytes a two-layer net and its training run need, before allocating any.

    With ``P = input_size * hidden + hidden + hidden * classes + classes``
    parameters and ``b`` bytes per float (2 for float16 and bfloat16, 4 for
    float32, 8 for float64):

    * parameters, gradients: ``P * b`` each;
    * optimizer state: ``k * P * b``, ``k`` = 0 (sgd), 1 (momentum,
      nesterov, adagrad, rmsprop), 2 (adam);
    * initialization: ``max(input_size * hidden, hidden * classes) * 8``, the
      float64 normal draws of the largest weight on the host;
    * activations: the larger of one training step,
      ``batch_size * (2 * input_size + 4 * hidden + 4 * classes) * b``
      (each layer's input, output and gradient), and an accuracy pass over a
      whole split, ``max(n_train, n_test) * (2 * hidden + 2 * classes) * b``;
    * data: ``(n_train + n_test) * (input_size + classes) * b`` (images and
      one-hot-sized labels);
    * with ``precision`` ``"mixed16"`` or ``"mixed_bf16"`` (mixed-precision
      training of a float32 model): the half-precision twin's parameters
      and gradients, ``2 * P * 2``, and a training step's activations in
      2-byte floats.

    An estimate, not a bound: the array library's own overhead is not
    counted.

    Returns:
        Bytes by part (``"parameters"``, ``"gradients"``,
        ``"optimizer state"``, ``"initialization"``, ``"activations"``,
        ``"data"``) and their ``"total"``.
    """
    item = ITEM_BYTES[dtype]
    params = input_size * hidden + hidden + hidden * classes + classes
    step = batch_size * (2 * input_size + 4 * hidden + 4 * classes)
    evaluation = max(n_train, n_test) * (2 * hidden + 2 * classes)
    parts = {
        "parameters": params * item,
        "gradients": params * item,
        "optimizer state": OPTIMIZER_STATE[optimizer] * params * item,
        "initialization": max(input_size * hidden, hidden * classes) * 8,
        "activations": max(step, evaluation) * item,
        "data": (n_train + n_test) * (input_size + classes) * item,
    }
    if precision is not None:
        parts["half-precision copy"] = 2 * params * 2
        parts["activations"] = max(step * 2, evaluation * item)
    parts["total"] = sum(parts.values())
    return parts


def conv_layers(
    model: str, input_dim: tuple[int, int, int], hidden: int, classes: int
) -> list[dict[str, Any]]:
    """The layers of the book's conv net ``model``, sized without allocating anything.

    Args:
        model: ``"simpleconvnet"`` or ``"deepconvnet"`` (:data:`CONV_MODELS`).
        input_dim: A sample's shape ``(C, H, W)``.
        hidden: Units of the hidden Affine layer (``hidden_size``).
        classes: Outputs (``output_size``).

    Returns:
        One dict per layer, input to output: ``"kind"`` (``"conv"``,
        ``"pool"``, ``"affine"``, ``"relu"``, ``"dropout"``), per sample
        element counts ``"input"``, ``"output"``, ``"col"`` (the im2col
        matrix of a convolution or pooling, 0 otherwise), ``"padded"`` (a
        convolution's padded input, 0 without pad), and ``"params"`` (the
        layer's weights and biases) and ``"weight"`` (its largest array).

    Raises:
        ValueError: The sizes do not fit (the model's own message, e.g. a
            filter larger than the padded input), prefixed by ``--model``
            and the image size.
    """
    import xpnn.models.convnet

    cls = getattr(xpnn.models.convnet, CONV_MODELS[model])
    # The model's own plan of its layers: the book's default conv_params, the
    # sizes checked as the constructor checks them, no array made.
    try:
        plan = cls.layer_plan(
            input_dim=tuple(input_dim), hidden_size=hidden, output_size=classes, seed=0
        )
    except (TypeError, ValueError) as exc:
        shape = "x".join(map(str, input_dim))
        raise ValueError(f"--model {model} on {shape} images: {exc}") from None
    shape: tuple[int, ...] = tuple(input_dim)
    layers = []
    for step in plan:
        size_in = _prod(shape)
        col = padded = params = weight = 0
        if step[0] == "conv":
            (fn, c, fh, fw), stride, pad = step[2], step[4], step[5]
            h, w = shape[1] + 2 * pad, shape[2] + 2 * pad
            shape = (fn, (h - fh) // stride + 1, (w - fw) // stride + 1)
            col = c * fh * fw * shape[1] * shape[2]
            padded = c * h * w if pad else 0
            weight = fn * c * fh * fw
            params = weight + fn
        elif step[0] == "pool":  # the book's 2x2 max pooling, stride 2, of both nets
            shape = (shape[0], (shape[1] - 2) // 2 + 1, (shape[2] - 2) // 2 + 1)
            col = 4 * _prod(shape)
        elif step[0] == "affine":
            d_in, d_out = step[2]
            shape = (d_out,)
            weight = d_in * d_out
            params = weight + d_out
        layers.append(
            {
                "kind": step[0],
                "input": size_in,
                "output": _prod(shape),
                "col": col,
                "padded": padded,
                "params": params,
                "weight": weight,
            }
        )
    return layers


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def estimate_conv_memory(
    model: str,
    input_dim: tuple[int, int, int],
    hidden: int,
    classes: int,
    batch_size: int,
    *,
    optimizer: str = "adam",
    dtype: str = "float32",
    n_train: int = 0,
    n_test: int = 0,
    precision: str | None = None,
) -> dict[str, int]:
    """The bytes a conv net of :func:`conv_layers` and its training run need, before any is made.

    The parts of :func:`estimate_memory`, with ``P`` the net's parameters,
    ``b`` bytes per float and, per sample and layer, ``i`` and ``o`` its
    input and output elements, ``k`` its im2col matrix (convolution,
    pooling) and ``p`` its padded input (a padded convolution):

    * parameters, gradients, optimizer state: as :func:`estimate_memory`;
    * initialization: the largest weight's elements ``* 8``;
    * activations: the larger of one training step, ``batch_size * sum(i +
      3 * o + 2 * k + 2 * p) * b`` (each layer's output, the output's
      gradient and a mask or index of its size, the input's gradient, and
      the column matrix and padded input both ways: the layers keep them
      as buffers between steps), and an accuracy pass, ``100 * sum(o + k +
      p) * b`` (the nets' ``accuracy`` predicts 100 samples at a time);
    * data: ``(n_train + n_test) * (C * H * W + classes) * b``;
    * ``precision``: as :func:`estimate_memory`.

    Returns:
        Bytes by part, as :func:`estimate_memory`.

    Raises:
        ValueError: See :func:`conv_layers`.
    """
    item = ITEM_BYTES[dtype]
    layers = conv_layers(model, input_dim, hidden, classes)
    params = sum(layer["params"] for layer in layers)
    step = batch_size * sum(
        layer["input"] + 3 * layer["output"] + 2 * layer["col"] + 2 * layer["padded"]
        for layer in layers
    )
    n_eval = min(_ACCURACY_BATCH, max(n_train, n_test, 1))
    evaluation = n_eval * sum(layer["output"] + layer["col"] + layer["padded"] for layer in layers)
    parts = {
        "parameters": params * item,
        "gradients": params * item,
        "optimizer state": OPTIMIZER_STATE[optimizer] * params * item,
        "initialization": max(layer["weight"] for layer in layers) * 8,
        "activations": max(step, evaluation) * item,
        "data": (n_train + n_test) * (_prod(tuple(input_dim)) + classes) * item,
    }
    if precision is not None:
        parts["half-precision copy"] = 2 * params * 2
        parts["activations"] = max(step * 2, evaluation * item)
    parts["total"] = sum(parts.values())
    return parts


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def host_memory_available() -> tuple[int | None, str]:
    """Bytes of host memory available now, and where the number comes from.

    ``MemAvailable`` of ``/proc/meminfo`` (else ``os.sysconf``'s available
    pages), lowered to what a cgroup v2 memory limit leaves
    (``/sys/fs/cgroup/memory.max`` less ``memory.current``). ``None`` when
    the system says nothing.
    """
    available, source = None, ""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available, source = int(line.split()[1]) * 1024, "MemAvailable"
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            source = "available physical pages"
        except (AttributeError, OSError, ValueError):
            return None, "unknown"
    limit = _read_int("/sys/fs/cgroup/memory.max")  # "max" (no limit) reads as None
    used = _read_int("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None and limit - used < available:
        available, source = max(limit - used, 0), "the cgroup memory limit"
    return available, f"on the host ({source})"


def memory_available(backend: Any) -> tuple[int | None, str]:
    """Bytes free where ``backend`` allocates (its GPU, else the host), and where."""
    if not backend.is_gpu:
        return host_memory_available()
    try:
        if backend.name == "cupy":
            import cupy

            with backend.device:
                free, _ = cupy.cuda.runtime.memGetInfo()
            free += cupy.get_default_memory_pool().free_bytes()  # cached, reusable
        else:
            import torch

            free, _ = torch.cuda.mem_get_info(backend.device)
            free += torch.cuda.memory_reserved(backend.device) - torch.cuda.memory_allocated(
                backend.device
            )
    except Exception as exc:  # whatever fails, there is no number: said so
        return None, f"unknown on {backend.spec} ({exc})"
    return int(free), f"free on {backend.spec}"


def _size(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def check_memory(
    parts: dict[str, int], available: int | None, where: str, fix: str = "a smaller model"
) -> None:
    """Refuse a run whose estimate (:func:`estimate_memory`) exceeds ``available``.

    Args:
        parts: The estimate.
        available: Bytes available (no check if None: the system did not say).
        where: Where they are available, for the message.
        fix: What makes the run smaller, for the message.

    Raises:
        MemoryError: One line: the estimate by part, what is available, and
            the fix.
    """
    if available is None or parts["total"] <= available:
        return
    detail = ", ".join(f"{k} {_size(v)}" for k, v in parts.items() if k != "total" and v)
    raise MemoryError(
        f"this run needs about {_size(parts['total'])} ({detail}), but only "
        f"{_size(available)} is available {where}; choose {fix}"
    )
