"""Ring batches as PyTorch tensors: zero-copy on the CPU, pinned and asynchronous to a GPU.

    from tachyon.torch import DeviceFeeder, to_tensors

Importing this module needs PyTorch (>= 2.3); ``import tachyon`` never
imports it, so the core package stays NumPy-only.

:func:`to_tensors` turns a :class:`~tachyon.Batch` into one CPU tensor per
numeric field, *views of the ring's shared memory*: nothing is copied, each
tensor's ``data_ptr()`` is its field's address in the first slot, and its
dtype, shape and strides are the field's own (the row stride is the slot
size). Nested structs are flattened to dotted names (``book.bids.price``),
arrays keep their dimensions (``heat: [4][8]f32`` is ``(n, 4, 8)``), and
``[N]char`` fields are ``uint8`` tensors ``(n, N)``.

:class:`DeviceFeeder` reads consecutive batches of a subscriber and yields
:class:`DeviceBatch`\\ es of tensors on one device, chosen by ``device=``:

* ``"cuda"``: each batch's messages are copied out of the ring into one of
  two reused pinned staging buffers, the batch is released, and the staging
  buffer goes to a fresh device buffer with ``non_blocking=True`` on the
  feeder's own CUDA stream. The copy records a CUDA event; the stream that
  is current when the batch is handed out waits for that event (the host
  does not), and the host waits for it (that event only, never a device
  synchronize) before it reuses the staging buffer two batches later. So
  gathering batch *k+1* overlaps the transfer of batch *k* and the model's
  work on it.
* ``"cpu"``: the tensors are :func:`to_tensors` views of the ring, nothing
  is copied, and the batch stays borrowed until the next receive, so the
  only copy left is the one the model makes (``payload.float()``). A lossy
  reader (``drop_oldest`` ring, or ``max_lag`` > 0) can be overwritten
  under a view, so for one the feeder copies each batch into owned memory
  and validates the copy instead.

Lifetime rules
--------------
* :func:`to_tensors` tensors, and anything viewing them, are views of the
  batch: they must be gone before it is released. The ring enforces it:
  ``release()`` raises :class:`~tachyon.ViewStillReferenced` (and the ring
  does not advance) while one is alive. Keep ``t.clone()`` or the model's
  outputs instead. They are read-only by contract: PyTorch has no read-only
  tensors, and an in-place op on one writes into the ring's shared memory,
  which every subscriber reads.
* A :class:`DeviceBatch` whose ``owned`` is True (CUDA, and a lossy CPU
  reader) holds tensors in memory of its own: they may outlive the batch,
  the feeder and the ring. The ring batch was released once the copy out of
  its slots had completed and been validated (a lapped lossy reader's torn
  copy is discarded and counted in ``dropped``, never yielded).
* A CPU :class:`DeviceBatch` with ``owned`` False is valid until the next
  receive on the feeder: its tensors view the ring. The next receive
  releases the batch; if the tensors are still referenced then, that batch
  is deferred once (the ring waits) and a second one raises
  ``ViewStillReferenced``, exactly like :meth:`tachyon.Subscriber.batches`.
  Code meant to run on both devices follows this stricter rule.
* CUDA tensors are ready on the stream that was current when the batch was
  handed out. Using them on another stream needs that stream to wait for
  the current one (``other.wait_stream(torch.cuda.current_stream())``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, KeysView, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import Any, Self

import numpy as np

try:
    import torch  # type: ignore[import-not-found, unused-ignore]  # absent from the NumPy-only venv
except ImportError as e:  # pragma: no cover - exercised without torch
    raise ImportError(
        "tachyon.torch needs PyTorch (>= 2.3): pip install torch (`make test-torch` installs it"
        " into .venv-torch); the rest of tachyon needs NumPy only"
    ) from e

from . import Batch, HandleClosed, Overwritten, Policy, PublisherClosed, Subscriber, ViewStillReferenced

__all__ = ["DeviceBatch", "DeviceFeeder", "field_names", "to_tensors"]

_TORCH_DTYPES: dict[tuple[str, int], torch.dtype] = {
    ("b", 1): torch.bool,
    ("u", 1): torch.uint8,
    ("i", 1): torch.int8,
    ("u", 2): torch.uint16,
    ("i", 2): torch.int16,
    ("u", 4): torch.uint32,
    ("i", 4): torch.int32,
    ("u", 8): torch.uint64,
    ("i", 8): torch.int64,
    ("f", 2): torch.float16,
    ("f", 4): torch.float32,
    ("f", 8): torch.float64,
}


@dataclass(frozen=True)
class _Leaf:
    """One numeric field of a record, flattened: where it lies and how it is shaped."""

    name: str  # dotted path, e.g. "book.bids.price"
    path: tuple[str, ...]  # the NumPy field names along it
    char: bool  # a [N]char field: NumPy's S<N>, viewed as N uint8
    offset: int  # bytes from the start of the record
    dtype: torch.dtype
    itemsize: int
    shape: tuple[int, ...]  # per record
    strides: tuple[int, ...]  # per record, in elements of dtype


@lru_cache(maxsize=64)
def _leaves(dt: np.dtype[Any]) -> tuple[_Leaf, ...]:
    """Every numeric leaf of a structured dtype, in layout order."""
    if dt.names is None:
        raise TypeError(f"tachyon.torch: {dt} is not a structured message dtype")
    out: list[_Leaf] = []

    def walk(d: np.dtype[Any], name: str, off: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> None:
        if d.subdtype is not None:  # an array field: row-major dimensions of its element
            elem, dims = d.subdtype
            sub = [elem.itemsize] * len(dims)
            for i in range(len(dims) - 2, -1, -1):
                sub[i] = sub[i + 1] * dims[i + 1]
            walk(elem, name, off, shape + dims, strides + tuple(sub))
            return
        if d.names is not None and d.fields is not None:  # a nested struct
            for f in d.names:
                fd, foff = d.fields[f][:2]
                walk(fd, f"{name}.{f}" if name else f, off + foff, shape, strides)
            return
        char = d.kind == "S"  # [N]char: its bytes
        if char:
            shape, strides, d = shape + (d.itemsize,), strides + (1,), np.dtype(np.uint8)
        key = (d.kind, d.itemsize)
        if key not in _TORCH_DTYPES or d.byteorder == ">":
            raise TypeError(f"tachyon.torch: field {name!r} has dtype {d.str}, which has no torch dtype")
        isz = d.itemsize
        if off % isz or any(s % isz for s in strides):
            raise TypeError(
                f"tachyon.torch: field {name!r} ({d.str}) at byte offset {off} with strides {strides}"
                f" is not aligned to its {isz}-byte type: torch cannot view it in place"
            )
        leaf = _Leaf(name, tuple(name.split(".")), char, off, _TORCH_DTYPES[key], isz, shape, tuple(s // isz for s in strides))
        out.append(leaf)

    walk(dt, "", 0, (), ())
    if dt.itemsize % max((leaf.itemsize for leaf in out), default=1):
        raise TypeError(f"tachyon.torch: record size {dt.itemsize} is not a multiple of its fields' sizes")
    return tuple(out)


def field_names(dtype: np.dtype[Any]) -> list[str]:
    """The names :func:`to_tensors` gives the fields of a message or slot dtype."""
    return [leaf.name for leaf in _leaves(dtype)]


def _select(leaves: tuple[_Leaf, ...], fields: Sequence[str] | None, what: str) -> tuple[_Leaf, ...]:
    """The leaves named by ``fields`` (a struct's name selects its leaves), in layout order."""
    if fields is None:
        return leaves
    if isinstance(fields, str):
        fields = [fields]
    chosen: set[str] = set()
    for f in fields:
        hit = {leaf.name for leaf in leaves if leaf.name == f or leaf.name.startswith(f + ".")}
        if not hit:
            names = ", ".join(leaf.name for leaf in leaves)
            raise KeyError(f"{what}: no field {f!r}; the fields are {names}")
        chosen |= hit
    return tuple(leaf for leaf in leaves if leaf.name in chosen)


def _quiet_from_numpy() -> bool:
    """Spend torch's once-per-process "non-writable NumPy array" warning here.

    The ring's views are read-only by design (see the module docstring), and
    a ``catch_warnings`` around every ``from_numpy`` would cost more than the
    call. Returns False if this torch warns on every call instead.
    """
    ro = np.zeros(1)
    ro.flags.writeable = False
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch.from_numpy(ro)
        torch.from_numpy(ro)
    return len(seen) <= 1


_WARNS_ONCE = _quiet_from_numpy()


def _tensor(array: np.ndarray[Any, Any]) -> torch.Tensor:
    """A CPU tensor over a (read-only) NumPy array's memory, zero copy.

    The tensor holds a reference to ``array``, and so to the batch's root
    array, which is how a batch's release sees it.
    """
    if _WARNS_ONCE:
        return torch.from_numpy(array)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


def _in_place(arr: np.ndarray[Any, Any], leaves: tuple[_Leaf, ...]) -> dict[str, torch.Tensor]:
    """Tensors over NumPy's own views of the leaves of a structured array (a batch)."""
    out: dict[str, torch.Tensor] = {}
    for leaf in leaves:
        v = arr
        for f in leaf.path:
            v = v[f]
        if leaf.char:  # S<N> -> N uint8: same itemsize, so any strides
            v = v.view(np.dtype((np.uint8, (leaf.shape[-1],))))
        out[leaf.name] = _tensor(v)
    return out


def _views(base: torch.Tensor, n: int, row: int, leaves: tuple[_Leaf, ...]) -> dict[str, torch.Tensor]:
    """Tensors viewing ``n`` rows of ``row`` bytes in the uint8 tensor ``base``."""
    typed: dict[torch.dtype, torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}
    start = base.storage_offset()
    for leaf in leaves:
        t = typed.get(leaf.dtype)
        if t is None:
            t = typed[leaf.dtype] = base.view(leaf.dtype)
        out[leaf.name] = t.as_strided(
            (n, *leaf.shape), (row // leaf.itemsize, *leaf.strides), (start + leaf.offset) // leaf.itemsize
        )
    return out


def to_tensors(batch: Batch[Any], fields: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Zero-copy CPU tensors of a batch's fields, by (dotted) field name.

    ``fields`` picks some (a nested struct's name picks all its fields);
    the default is every field. Each tensor views the slots in shared
    memory with the field's own dtype, shape ``(n, *dims)`` and strides (in
    elements; the first is the slot size over the itemsize). The tensors
    count as views of the batch: release it after they are gone
    (``ViewStillReferenced`` otherwise), and never write to them.
    """
    arr = batch.array  # raises HandleClosed once released
    return _in_place(arr, _select(_leaves(arr.dtype), fields, "to_tensors"))


class DeviceBatch:
    """The tensors of one ring batch on the feeder's device, by field name.

    ``start`` is the ring index of the first message and ``len()`` the
    message count. ``owned`` says whether the tensors hold memory of their
    own (they may outlive everything) or view the ring (CPU: valid until the
    next receive on the feeder; see the module docstring).
    """

    __slots__ = ("_tensors", "_ring", "start", "device", "owned", "_n")

    def __init__(self, tensors: dict[str, torch.Tensor], ring: str, start: int, n: int, device: torch.device, owned: bool):
        self._tensors: dict[str, torch.Tensor] | None = tensors
        self._ring = ring
        self._n = n
        self.start = start
        self.device = device
        self.owned = owned

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        """Every field's tensor."""
        if self._tensors is None:
            raise HandleClosed(
                f"DeviceBatch of ring {self._ring!r} from index {self.start} ({self._n} messages) was"
                " superseded by the next receive: on the CPU its tensors were views of the ring's shared"
                " memory. Keep what the model returned, or t.clone(), instead.",
                ring=self._ring,
            )
        return self._tensors

    def __getitem__(self, field: str) -> torch.Tensor:
        t = self.tensors
        if field not in t:
            raise KeyError(f"DeviceBatch of ring {self._ring!r}: no field {field!r}; it has {', '.join(t)}")
        return t[field]

    def keys(self) -> KeysView[str]:
        return self.tensors.keys()

    def __len__(self) -> int:
        return self._n

    def _retire(self) -> None:
        self._tensors = None

    def __repr__(self) -> str:
        state = "superseded" if self._tensors is None else ("owned" if self.owned else "views of the ring")
        return f"<DeviceBatch {self._ring!r} start={self.start} n={self._n} {self.device} {state}>"


class DeviceFeeder:
    """Consecutive batches of a subscriber as tensors on one device.

    ``device`` is ``"cpu"`` or a CUDA device (``"cuda"``, ``"cuda:1"``);
    ``fields`` the fields to deliver (default all); ``max_batch`` the most
    messages per batch (default and at most the ring's capacity; a batch
    never wraps the ring). Iterating yields :class:`DeviceBatch`\\ es until
    the publisher closes; :meth:`recv` takes one with a timeout. The feeder
    does not own the subscriber: close that yourself. Not safe for
    concurrent use. See the module docstring for what it guarantees.
    """

    def __init__(
        self,
        sub: Subscriber[Any],
        device: str | torch.device = "cuda",
        *,
        fields: Sequence[str] | None = None,
        max_batch: int | None = None,
    ) -> None:
        self._sub = sub
        self._ring = sub.name
        dev = torch.device(device)
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError(
                    f"DeviceFeeder {self._ring!r}: device {str(device)!r} asked for, but torch"
                    f" {torch.__version__} sees no CUDA device; use device='cpu'"
                )
            if dev.index is None:
                dev = torch.device("cuda", torch.cuda.current_device())
        elif dev.type != "cpu":
            raise ValueError(f"DeviceFeeder {self._ring!r}: device {str(device)!r}, want 'cpu' or 'cuda[:N]'")
        self.device = dev
        cap = sub.capacity
        self._max = cap if max_batch is None else int(max_batch)
        if not 1 <= self._max <= cap:
            raise ValueError(f"DeviceFeeder {self._ring!r}: max_batch {max_batch}, want 1..{cap} (the ring's capacity)")
        msg = sub.message.DTYPE
        self._msg_size = msg.itemsize
        self._leaves = _select(_leaves(msg), fields, f"DeviceFeeder {self._ring!r}")
        self._lossy = sub.policy == Policy.DROP_OLDEST or sub.max_lag > 0
        #: CPU views of the ring, no copy (a reader that cannot be overwritten on the CPU).
        self._zero_copy = dev.type == "cpu" and not self._lossy
        self._msg_off = -1  # where the message lies in a slot, from the first batch
        self._current: DeviceBatch | None = None
        self._received = 0
        self._dropped = 0
        self._closed = False
        if dev.type == "cuda":
            with torch.cuda.device(dev):
                self._stream = torch.cuda.Stream(dev)  # type: ignore[no-untyped-call, unused-ignore]
                nbytes = self._max * self._msg_size
                self._staging = [torch.empty(nbytes, dtype=torch.uint8, pin_memory=True) for _ in range(2)]
                self._events = [torch.cuda.Event() for _ in range(2)]  # type: ignore[no-untyped-call, unused-ignore]
        self._turn = 0

    @property
    def received(self) -> int:
        """Messages delivered in batches so far."""
        return self._received

    @property
    def dropped(self) -> int:
        """Messages discarded because they were overwritten while copied (lossy readers)."""
        return self._dropped

    @property
    def zero_copy(self) -> bool:
        """Whether batches are views of the ring (CPU, a reader that cannot be lapped)."""
        return self._zero_copy

    def __iter__(self) -> Iterator[DeviceBatch]:
        """Batches until the publisher closes (PublisherDead, Evicted raise)."""
        while True:
            try:
                db = self.recv()
            except PublisherClosed:
                return
            if db is not None:
                yield db

    def recv(self, timeout: float | None = None) -> DeviceBatch | None:
        """The next batch, or None if ``timeout`` seconds passed first.

        Raises like :meth:`tachyon.Subscriber.recv_batch`
        (``PublisherClosed`` once a closed ring is drained).
        """
        if self._closed:
            raise HandleClosed(f"DeviceFeeder {self._ring!r} is closed", ring=self._ring)
        if self._current is not None:
            self._current._retire()  # CPU views of the ring: superseded
            self._current = None
        while True:
            try:
                batch = self._sub.recv_batch(self._max, timeout)
            except ViewStillReferenced as e:
                raise ViewStillReferenced(
                    f"DeviceFeeder {self._ring!r}: tensors of two earlier CPU batches are still referenced;"
                    " they view the ring's shared memory and the ring cannot advance past them. Keep the"
                    " model's outputs, or t.clone(), not the feeder's tensors.",
                    ring=self._ring,
                ) from e
            if not batch:
                return None
            if self._msg_off < 0:
                self._locate(batch)
            db = self._deliver(batch)
            if db is not None:
                self._received += len(db)
                if not db.owned:
                    self._current = db
                return db

    def _locate(self, batch: Batch[Any]) -> None:
        """Where the message lies in a slot, from the first batch's slot dtype."""
        slot = batch.array.dtype
        assert slot.fields is not None and slot.names is not None
        first = slot.names[0]
        msg_fields = self._sub.message.DTYPE.fields
        assert msg_fields is not None
        self._msg_off = int(slot.fields[first][1]) - int(msg_fields[first][1])

    def _deliver(self, batch: Batch[Any]) -> DeviceBatch | None:
        n = len(batch)
        if self._zero_copy:
            tensors = _in_place(batch.array, self._leaves)
            # Left borrowed: the next receive releases it, after the caller is done.
            return DeviceBatch(tensors, self._ring, batch.start, n, self.device, owned=False)
        cuda = self.device.type == "cuda"
        turn = self._turn
        if cuda:
            # The transfer that last read this staging buffer (two batches ago) must be done
            # before the host overwrites it: wait for its event, and for nothing else.
            self._events[turn].synchronize()
            self._turn ^= 1
            host = self._staging[turn][: n * self._msg_size]
        else:
            host = torch.empty(n * self._msg_size, dtype=torch.uint8)  # owned: may outlive the batch
        self._gather(batch, host)
        try:
            # The copy out of the slots has completed: only now may the producer reuse them.
            # A lapped lossy reader's copy may be torn: release re-checks the stamps.
            batch.release()
        except Overwritten:
            self._dropped += n
            return None
        if cuda:
            host = self._to_device(host, self._events[turn])
        return DeviceBatch(_views(host, n, self._msg_size, self._leaves), self._ring, batch.start, n, self.device, True)

    def _to_device(self, host: torch.Tensor, done: torch.cuda.Event) -> torch.Tensor:
        """A fresh device copy of a pinned staging buffer, ready on the current stream."""
        with torch.cuda.stream(self._stream):
            dev = torch.empty(host.numel(), dtype=torch.uint8, device=self.device)
            dev.copy_(host, non_blocking=True)  # pinned -> device, asynchronous on the feeder's stream
            done.record(self._stream)  # gates the staging buffer's reuse, and the consumer
        consumer = torch.cuda.current_stream(self.device)
        consumer.wait_event(done)  # the model's stream waits for the copy; the host does not
        dev.record_stream(consumer)  # the allocator must not reuse dev before the model's work on it is done
        return dev

    def _gather(self, batch: Batch[Any], out: torch.Tensor) -> None:
        """Copy the batch's messages (without the slot headers) into ``out``, compact."""
        arr = batch.array
        n, slot = len(arr), arr.dtype.itemsize
        src = _tensor(arr.view(np.uint8)).view(n, slot)[:, self._msg_off : self._msg_off + self._msg_size]
        out.view(n, self._msg_size).copy_(src)
        del src, arr  # views of the batch: gone before it is released

    def close(self) -> None:
        """Wait for copies in flight and drop the staging buffers (the subscriber stays open).

        The last CPU batch's views are superseded; its ring batch is released
        with the subscriber's next receive or close.
        """
        if self._closed:
            return
        self._closed = True
        if self._current is not None:
            self._current._retire()
            self._current = None
        if self.device.type == "cuda":
            for ev in self._events:
                ev.synchronize()
            self._staging = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "zero-copy views" if self._zero_copy else ("pinned staging" if self.device.type == "cuda" else "copies")
        return f"<DeviceFeeder {self._ring!r} {self.device} {mode} max_batch={self._max}>"
