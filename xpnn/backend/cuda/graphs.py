"""Recording a GPU step as a CUDA graph and replaying it (CuPy).

Owns :class:`CudaGraph`: the graph's own memory pool and stream, capture,
and launch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xpnn.backend.namespace import _library

__all__ = ["CudaGraph"]


class CudaGraph:
    """GPU work recorded once as a CUDA graph and replayed with one launch (CuPy).

    A replay runs the recorded kernels on the memory they were recorded with,
    on the stream current at :meth:`launch`, so it stays ordered with the
    other work there; none of the Python code runs again. That memory must
    stay the graph's: everything allocated in :meth:`run_eagerly` and
    :meth:`record` comes from a memory pool of the graph's own, which nothing
    else allocates from, so arrays freed later (a layer making new buffers
    for another batch size, say) are never handed to anyone else while the
    graph lives. Use::

        graph = CudaGraph(x)
        graph.run_eagerly(step)   # compiles kernels, makes buffers in the graph's pool
        out = graph.record(step)  # records without running; out holds each replay's result
        graph.launch()            # runs the step; again for every later step

    Args:
        like: A CuPy array on the GPU to record on.

    Raises:
        ValueError: ``like`` is not a CuPy array.
    """

    def __init__(self, like: Any):
        if _library(like) != "cupy":
            raise ValueError(
                f"CUDA graphs need CuPy arrays, got {_library(like) or type(like).__name__} "
                'data; put the data on the GPU with xpnn.use_backend("cupy") and xpnn.asarray'
            )
        import cupy

        self._cupy = cupy
        self._device = cupy.cuda.Device(like.device.id)
        with self._device:
            self._pool = cupy.cuda.MemoryPool()
            self._stream = cupy.cuda.Stream(non_blocking=True)
        self._graph: Any = None

    def run_eagerly(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` now, its allocations coming from the graph's pool."""
        with self._device, self._cupy.cuda.using_allocator(self._pool.malloc):
            return fn()

    def record(self, fn: Callable[[], Any]) -> Any:
        """Record the GPU work of ``fn()`` without running it; returns fn's result.

        Raises:
            RuntimeError: ``fn`` did something a graph cannot record, such as
                waiting for the device or copying to the host.
        """
        cupy, stream = self._cupy, self._stream
        with self._device, stream, cupy.cuda.using_allocator(self._pool.malloc):
            stream.begin_capture()
            try:
                result = fn()
            except BaseException as exc:
                try:
                    stream.end_capture()
                except Exception:  # the capture is already broken: report fn's error
                    pass
                if isinstance(exc, Exception) and "captur" in str(exc):
                    raise RuntimeError(
                        "the step could not be recorded as a CUDA graph: it waits for the "
                        f"device or the host ({exc}); train without cuda_graph"
                    ) from exc
                raise
            self._graph = stream.end_capture()
        return result

    def launch(self) -> None:
        """Run the recorded work once more (asynchronously: the host does not wait)."""
        if self._graph is None:
            raise RuntimeError("nothing recorded yet: call record() first")
        with self._device:
            self._graph.launch()
