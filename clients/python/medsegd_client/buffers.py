"""Receive buffers for large bodies, reused once no array views them."""
import threading


class ReceiveBuffers:
    """Buffers large array bodies are received into, each reused once no array views it any more.

    A fresh buffer of tens of MB costs the kernel a page fault per 4 KiB page and zeroing (glibc
    maps allocations over 32 MiB anew each time): receiving a 33 MB sample into a reused buffer
    takes about a quarter of the CPU. Arrays are read-only views of the buffer and keep it
    exported; a bytearray with exports cannot be resized, which is how a free one is told apart.
    Keeps up to `count` buffers."""

    def __init__(self, count=4):
        self.count = count
        self._lock = threading.Lock()
        self._buffers = []

    @staticmethod
    def _free(buffer):
        try:  # each buffer has a spare last byte: popping and re-appending it never reallocates
            buffer.append(buffer.pop())
            return True
        except BufferError:
            return False

    def take(self, size):
        """A writable memoryview of `size` bytes over a free buffer (exported before the lock
        is released, so no other thread can take it)."""
        with self._lock:
            for buffer in self._buffers:
                if size < len(buffer) <= 2 * size + 1 and self._free(buffer):
                    return memoryview(buffer)[:size]
            buffer = bytearray(size + 1)
            free = [b for b in self._buffers if self._free(b)]
            if len(self._buffers) >= self.count and free:
                self._buffers.remove(min(free, key=len))
            if len(self._buffers) < self.count:
                self._buffers.append(buffer)
            return memoryview(buffer)[:size]


class _Received:
    """Bytes of a body received so far, and whether the count is exact."""

    def __init__(self):
        self.bytes = 0
        self.exact = True
