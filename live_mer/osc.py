"""OSC output to one or more UDP destinations, each with its own rate, format, mapping and delay.

Namespace (``<p>`` is the configurable prefix, ``/mer`` by default), by output name:

======== =========================== ====== ===================================================
output   address                     types  meaning
======== =========================== ====== ===================================================
va       <p>/va                      ff     valence, arousal
valence  <p>/valence                 f      [-1, 1], or [0, 1] when mapped "unipolar"
arousal  <p>/arousal                 f
quadrant <p>/quadrant                s      "Q1".."Q4" (held, see live_mer.outputs)
quadrant <p>/quadrant/probs          ffff   Q1..Q4 probabilities
moods    <p>/mood/<name>             f      GEMS shares: amazement, ..., sadness
tags     <p>/tag/<name>              f      AllMusic mood tags the model supports ("Calm", ...): probability
chord    <p>/chord                   sf     "A:min" ("N" = no chord), confidence (held, major/minor)
chord    <p>/chord/ext               sf     extended label ("G:7", "A:min7", "B:dim", ...), confidence
key      <p>/key                     ssf    "A minor", Camelot "8A", confidence ("" until known)
key      <p>/key/change              sss    key, Camelot, Open Key: once, when <p>/key changes
level    <p>/level                   f      loudness dBFS, or [0, 1] over -60..0 dB when unipolar
onset    <p>/onset                   f      onset strength
status   <p>/status                  iifs   overflows (total), clipped samples (hop), processing ms (its call's), model
status   <p>/status/input            iff    input ok (0: device lost), peak (1 = full scale), peak dBFS (floor -120)
status   <p>/status/provider         s      onnxruntime provider in use
status   <p>/status/stopped          (none) the stream stopped (end of file, Ctrl-C, Stop); estimates resume after it
======== =========================== ====== ===================================================

With ``layout = "array"`` a destination gets one message ``<p>/frame`` whose arguments are the
selected outputs' values in the order of the table (strings included), always the same number of them:
status values in every frame, the key-change triple as three empty strings except when the key
changed, and a muted output's positions as zeros and empty strings. With ``bundle = false`` every
message is its own datagram (for receivers that do not understand bundles); with bundles, the time tag
is the send time plus ``offset_ms`` when that is negative.

``rate_hz = 0`` sends one bundle per analysis hop; ``1..60`` sends at that rate, the shaped values
moving smoothly between hops (see :class:`live_mer.outputs.Shaper`), and the status messages only with
the first frame of each new estimate (in the array layout: in every frame). A positive ``offset_ms``
delays a destination (to line up with a video chain that lags the audio).

Sending never blocks the analyzer: estimates are handed to a sender thread; sockets are non-blocking
and connected, so a closed port answers ECONNREFUSED on a later send, which is counted and ignored
(a socket whose local address has gone, failing with ENETUNREACH or EADDRNOTAVAIL, is opened again).
Host names are looked up in threads of their own (an absent ``.local`` host can take seconds to fail):
a host that cannot be resolved is retried every few seconds and never holds up the other destinations;
one that resolves is looked up again every ``RERESOLVE_S``, so a receiver that was given another address
(a new DHCP lease) is followed, and a lookup that fails meanwhile leaves the address that worked.
When the stream ends (:meth:`OscSender.end_of_stream`, :meth:`OscSender.close`), every destination that
sends ``status`` (not muted) gets ``<p>/status/stopped`` after the last frame of the stream (in the array
layout too: a message of its own beside ``<p>/frame``), and fixed-rate destinations stop repeating that
frame until a new estimate arrives: the visuals can fade out instead of freezing on it.
"""

from __future__ import annotations

import collections
import copy
import errno
import ipaddress
import logging
import math
import socket
import struct
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field

from .estimate import Estimate
from .outputs import LEVEL_FLOOR_DB, OUTPUTS, Frame, OutputSettings, Shaper, check_output

DEFAULT_PREFIX = "/mer"
MAX_RATE_HZ = 60.0
PER_HOP_QUEUE = 100_000  # estimates waiting for a per-hop destination (hours of hops)
RESOLVE_RETRY_S = 5.0
RERESOLVE_S = 30.0  # a host name sent to is looked up again this often: a receiver given a new address is followed
RESOLVE_WAIT_S = 0.5  # a new sender waits this long for its host names, then starts without the slow ones
MAX_PENDING_ENDS = 16  # stream ends remembered for destinations still sending an earlier stream (restarts)
# A UDP port nobody listens on fails every other send (the kernel reports one datagram's refusal on the
# next send), but only as often as the receiving computer answers: a remote host rate-limits its "port
# unreachable" replies (Linux: one a second after a short burst), so a 60 Hz destination there fails about
# one send in sixty. A refusing destination counts as listening again only after this many clean sends in
# a row that span at least RECOVERED_S seconds since its last refusal.
RECOVERED_AFTER = 3
RECOVERED_S = 3.0
log = logging.getLogger("live_mer")


class DestinationError(ValueError):
    """An OSC destination that cannot be parsed or resolved."""


def check_host(host: str) -> str:
    """A host that can ever be resolved: an IPv4 or IPv6 address or a DNS name (raises DestinationError).
    An unresolvable *name* is retried (the network may come later); a malformed one never would be."""
    if ":" in host:
        try:
            ip = ipaddress.IPv6Address(host)
        except ValueError:
            raise DestinationError(f"OSC host {host!r} is not an IPv6 address") from None
        if (ip.is_link_local or (ip.is_multicast and ip.packed[1] & 0x0F <= 2)) and not ip.scope_id:
            # the system cannot send to it (EINVAL) without knowing on which network interface it is
            raise DestinationError(f"OSC host {host!r} is a link-local IPv6 address: add its network interface "
                                   f"after a '%' ([{host}%eth0]:9000, [{host}%en0]:9000 on a Mac)")
        return str(ip)
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")  # "name." is fully qualified
    if all(part.isascii() and part.isdigit() for part in labels):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise DestinationError(f"OSC host {host!r} is not an IPv4 address (four numbers 0..255)") from None
    if not host or len(host) > 253 or not all(
            0 < len(part) <= 63 and all(c.isascii() and (c.isalnum() or c in "-_") for c in part) for part in labels):
        raise DestinationError(f"OSC host {host!r} is not a host name or IP address")
    return host


def parse_destination(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (IPv4, hostname or ``[v6]:port``) -> (host, port)."""
    text = str(text).strip()
    if "://" in text:
        raise DestinationError(f"OSC destination {text!r}: give HOST:PORT without a scheme (e.g. 10.0.0.5:9000)")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise DestinationError(f"OSC destination {text!r} is not HOST:PORT with a port in 1..65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise DestinationError(f"OSC destination {text!r} is not HOST:PORT (an IPv6 address goes in brackets: "
                               "[::1]:9000)")
    return check_host(host), int(port)


PATTERN_CHARS = "#*,?[]{}"  # OSC 1.0 reserves these in addresses for patterns (and "//" is one in OSC 1.1)


def repeated(destinations: list[DestinationConfig]) -> tuple[int, int] | None:
    """The positions of the first destination listed again with the same settings, and of its first listing
    (it would get every bundle twice), or None. One receiver with different settings is two streams: fine."""
    first: dict[DestinationConfig, int] = {}
    for i, d in enumerate(destinations):
        if d in first:
            return first[d], i
        first[d] = i
    return None


def _prefix_problem(prefix: str) -> str:
    """What keeps ``prefix`` from starting OSC 1.0 addresses every receiver takes literally ("" if nothing)."""
    if not prefix.startswith("/"):
        return "it does not start with '/'"
    for c in prefix:
        if c == " ":
            return "it contains a space"
        if c in PATTERN_CHARS:
            return f"{c!r} is an OSC pattern character"
        if not c.isascii():
            return f"{c!r} is not ASCII"
        if not c.isprintable():
            return f"{c!r} is a control character"
    if "//" in prefix:
        return "'//' is a wildcard in OSC 1.1 (it matches any number of parts)"
    if prefix.endswith("/"):
        return "it ends with '/'"
    return ""


def check_prefix(prefix: str) -> str:
    """The prefix of every address sent and of the control port's (the one check for ``--prefix``,
    ``osc.prefix`` and :class:`OscSender`): raises ValueError naming the problem and what is allowed."""
    problem = _prefix_problem(prefix)
    if problem:
        raise ValueError(f"OSC prefix {prefix!r} must start with '/' and be parts of printable ASCII without "
                         f"spaces or {PATTERN_CHARS}, each after a single '/' (e.g. /mer, /deck1/mer): {problem}")
    return prefix


@dataclass(frozen=True)
class DestinationConfig:
    """One OSC receiver and how it wants its data."""

    host: str
    port: int
    rate_hz: float = 0.0  # 0 = one bundle per analysis hop
    bundle: bool = True  # False: plain messages, one datagram each
    layout: str = "separate"  # "separate" messages or one "array" message <prefix>/frame
    unipolar: tuple[str, ...] = ()  # outputs mapped to [0, 1]: valence, arousal, va, level
    offset_ms: float = 0.0  # > 0 delays sending; < 0 moves the bundle time tag earlier
    outputs: tuple[str, ...] = OUTPUTS  # which outputs to send

    def __post_init__(self):
        object.__setattr__(self, "host", check_host(str(self.host)))
        if not 0 < self.port < 65536:
            raise DestinationError(f"port {self.port} is not in 1..65535")
        if not (self.rate_hz == 0 or 1 <= self.rate_hz <= MAX_RATE_HZ):
            raise DestinationError(f"rate_hz {self.rate_hz} must be 0 (per hop) or 1..{MAX_RATE_HZ:g}")
        if self.layout not in ("separate", "array"):
            raise DestinationError(f"layout {self.layout!r} must be 'separate' or 'array'")
        if not -5000 <= self.offset_ms <= 5000:
            raise DestinationError(f"offset_ms {self.offset_ms} must be within -5000..5000")
        for name in self.unipolar:
            if name not in ("va", "valence", "arousal", "level"):
                raise DestinationError(f"unipolar output {name!r} must be one of va, valence, arousal, level")
        for name in self.outputs:
            try:
                check_output(name)
            except ValueError as exc:
                raise DestinationError(str(exc)) from None

    @property
    def label(self) -> str:
        """``HOST:PORT`` as :func:`parse_destination` reads it back (IPv6 in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> "DestinationConfig":
        return cls(*parse_destination(text))


def _unipolar(x: float) -> float:
    return min(1.0, max(0.0, (x + 1.0) / 2.0))


def _level01(db: float) -> float:
    return min(1.0, max(0.0, (db - LEVEL_FLOOR_DB) / -LEVEL_FLOOR_DB))


def _blank(x):
    """The neutral value of x's OSC type: what a muted output's positions hold in an array frame."""
    return "" if isinstance(x, str) else type(x)(0)


def encode(frame: Frame, cfg: DestinationConfig, prefix: str, model_name: str, provider: str,
           fresh: bool, muted: frozenset[str] = frozenset()) -> list[tuple[str, list]]:
    """The (address, args) messages for one frame, in namespace order; ``muted`` outputs are left out.

    ``fresh`` says the frame carries an estimate not sent before: status messages are sent only then,
    not repeated at the output rate. The key change goes out in the step where the held key changed.
    With ``layout = "array"`` every frame has the same arguments: the status values always (the newest
    estimate's), the key-change triple always (three empty strings except when the key changed), and a
    muted output keeps its positions, filled with zeros and empty strings, so nothing after it moves.
    """
    array = cfg.layout == "array"
    sel, uni = cfg.outputs, cfg.unipolar
    v = _unipolar(frame.valence) if ("valence" in uni or "va" in uni) else frame.valence
    a = _unipolar(frame.arousal) if ("arousal" in uni or "va" in uni) else frame.arousal
    est = frame.estimate
    out: list[tuple[str, str, list]] = []  # (output, address, args)
    if "va" in sel:
        out.append(("va", f"{prefix}/va", [v, a]))
    if "valence" in sel:
        out.append(("valence", f"{prefix}/valence", [v]))
    if "arousal" in sel:
        out.append(("arousal", f"{prefix}/arousal", [a]))
    if "quadrant" in sel and frame.quadrant_probs:
        out.append(("quadrant", f"{prefix}/quadrant", [frame.quadrant]))
        out.append(("quadrant", f"{prefix}/quadrant/probs", list(frame.quadrant_probs)))
    if "moods" in sel:
        out.extend(("moods", f"{prefix}/mood/{name}", [value]) for name, value in frame.moods)
    if "tags" in sel:
        out.extend(("tags", f"{prefix}/tag/{name}", [value]) for name, value in frame.tags)
    if "chord" in sel:
        out.append(("chord", f"{prefix}/chord", [frame.chord, frame.chord_confidence]))
        out.append(("chord", f"{prefix}/chord/ext", [frame.chord_ext, frame.chord_ext_confidence]))
    if "key" in sel:
        out.append(("key", f"{prefix}/key", [frame.key, frame.key_camelot, frame.key_confidence]))
        if frame.key_changed or array:
            change = [frame.key, frame.key_camelot, frame.key_open] if frame.key_changed else ["", "", ""]
            out.append(("key", f"{prefix}/key/change", change))
    if "level" in sel:
        out.append(("level", f"{prefix}/level", [_level01(frame.level_db) if "level" in uni else frame.level_db]))
    if "onset" in sel:
        out.append(("onset", f"{prefix}/onset", [frame.onset]))
    if "status" in sel and (fresh or array):
        out.append(("status", f"{prefix}/status", [est.overflows, est.clipped, est.latency_ms, model_name]))
        out.append(("status", f"{prefix}/status/input", [int(est.input_ok), est.peak, est.peak_db]))
        out.append(("status", f"{prefix}/status/provider", [provider]))
    if array:
        return [(f"{prefix}/frame", [_blank(x) if output in muted else x for output, _, args in out for x in args])]
    return [(address, args) for output, address, args in out if output not in muted]


_PAD = (b"\0\0\0\0", b"\0\0\0", b"\0\0", b"\0")
_INT32, _INT64, _FLOAT32 = struct.Struct(">i"), struct.Struct(">q"), struct.Struct(">f")
_UINT64 = struct.Struct(">Q")
NTP_UNIX_OFFSET_S = 2_208_988_800  # 1900-01-01 (the NTP epoch) to 1970-01-01


def _string(text: str) -> bytes:
    """An OSC string: UTF-8, then one to four NULs to a multiple of four bytes."""
    data = text.encode()
    return data + _PAD[len(data) % 4]


def message(address: str, args) -> bytes:
    """One OSC 1.0 message, as python-osc's builder writes it (the tests compare the two byte for byte).

    Arguments by Python type: ``str`` -> s, ``bool`` -> T/F (no data), ``int`` -> i (h beyond 32 bits),
    ``float`` -> f (32-bit; numpy float64 is a float). Anything else is a ``TypeError``, and a float out
    of float32's range an ``OverflowError``. Written here rather than with python-osc's builder, which
    parses every message and bundle it builds back into objects: at 60 frames a second of ~60 messages
    that was most of a fixed-rate destination's cost.
    """
    tags = [","]
    data = []
    for x in args:
        if isinstance(x, str):
            tags.append("s")
            data.append(_string(x))
        elif x is True or x is False:
            tags.append("T" if x else "F")
        elif isinstance(x, int):
            if x.bit_length() <= 31:
                tags.append("i")
                data.append(_INT32.pack(x))
            else:
                tags.append("h")
                data.append(_INT64.pack(x))
        elif isinstance(x, float):
            tags.append("f")
            data.append(_FLOAT32.pack(x))
        else:
            raise TypeError(f"OSC {address}: cannot send a {type(x).__name__} ({x!r})")
    return b"".join((_string(address), _string("".join(tags)), *data))


def time_tag(timestamp: float) -> bytes:
    """The OSC (NTP) time tag of ``timestamp`` (Unix seconds): 32 bits of seconds since 1900, 32 of fraction.

    The seconds wrap at 2**32 (2036-02-07), as NTP's eras do (RFC 5905): python-osc's converter raises
    there instead, which would have stopped every bundled destination on that day."""
    return _UINT64.pack(int((timestamp + NTP_UNIX_OFFSET_S) * 2**32) % 2**64)


def bundle(messages: list[bytes], timestamp: float) -> bytes:
    """An OSC bundle of encoded messages, time-tagged ``timestamp`` (Unix seconds)."""
    return b"".join((b"#bundle\0", time_tag(timestamp), *(_INT32.pack(len(m)) + m for m in messages)))


def datagrams(messages: list[tuple[str, list]], bundled: bool, timestamp: float) -> list[bytes]:
    """Encode messages as one bundle (with an OSC time tag) or as one datagram per message."""
    built = [message(addr, args) for addr, args in messages]
    return [bundle(built, timestamp)] if bundled else built


@dataclass
class Destination:
    cfg: DestinationConfig
    sock: socket.socket | None  # None while the host cannot be resolved (retried)
    shaper: Shaper
    sent: int = 0
    errors: int = 0
    dropped: int = 0  # estimates not sent because the destination was unresolved or the queue full
    last_error: str = ""
    refused: bool = False  # nothing listens on that port (connection refused), until it recovers (RECOVERED_*)
    clean_sends: int = 0  # sends in a row without an error
    refused_at: float = 0.0  # time.monotonic() of the last refusal
    next_due: float = 0.0
    last_seq: int = -1  # sequence number of the newest estimate already sent
    ended: int = -1  # the newest end-of-stream mark (one of OscSender._ends) this destination has been told about
    handed_over: bool = False  # another sender goes on sending here: no end-of-stream notice
    retry_at: float = 0.0
    opening: threading.Thread | None = None  # the host name's lookup in progress
    opened: socket.socket | DestinationError | None = None  # what it found, for the sender thread to take
    queue: collections.deque = field(default_factory=lambda: collections.deque(maxlen=PER_HOP_QUEUE))

    @property
    def label(self) -> str:
        return self.cfg.label


def _open(cfg: DestinationConfig, keep: str | None = None) -> socket.socket:
    """A non-blocking UDP socket connected to ``cfg``'s host; ``keep``: the address sent to so far, taken again
    while the name still resolves to it (a round-robin name would otherwise move at each lookup again)."""
    try:
        infos = socket.getaddrinfo(cfg.host, cfg.port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise DestinationError(f"OSC destination {cfg.label}: cannot resolve host ({exc})") from None
    # A name with both (localhost: ::1 first on most systems) is sent to over IPv4: a receiver on 0.0.0.0 or
    # 127.0.0.1, as OSC software usually listens, never gets what goes to ::1 (nothing but "connection refused").
    family, _, _, _, addr = next((info for info in infos if info[4][0] == keep),
                                 min(infos, key=lambda info: info[0] != socket.AF_INET))
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    ip = ipaddress.ip_address(addr[0])
    if family == socket.AF_INET:  # a subnet's broadcast address need not end in .255 (a /25's is x.x.x.127)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    if ip.is_multicast:
        level = socket.IPPROTO_IP if family == socket.AF_INET else socket.IPPROTO_IPV6
        opt = socket.IP_MULTICAST_TTL if family == socket.AF_INET else socket.IPV6_MULTICAST_HOPS
        sock.setsockopt(level, opt, 1)
    try:
        sock.connect(addr)
    except OSError as exc:
        sock.close()
        raise DestinationError(f"OSC destination {cfg.label}: {exc}") from None
    return sock


def _is_address(host: str) -> bool:
    """Whether ``host`` (as :func:`check_host` returns it) is an IP address rather than a name."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _local_address_gone(sock: socket.socket) -> bool:
    """Whether the address ``sock`` was connected from is no longer one of this computer's."""
    address = sock.getsockname()
    probe = socket.socket(sock.family, socket.SOCK_DGRAM)
    try:
        probe.bind((address[0], 0, *address[2:]))
        return False
    except OSError:
        return True
    finally:
        probe.close()


def _copy_shaper(shaper: Shaper) -> Shaper:
    """A copy of a shaper that its sender thread may be stepping meanwhile (a label it meets for the first time
    grows a dict under the copy: then copy again); the settings are shared, not copied."""
    for _ in range(10):
        try:
            return copy.deepcopy(shaper, {id(shaper.settings): shaper.settings})
        except RuntimeError:  # "dictionary changed size during iteration"
            continue
    return Shaper(shaper.settings)


class OscSender:
    """A sink (call it with each :class:`Estimate`) that sends OSC from its own thread.

    Call :meth:`close` when done, or use it in a ``with`` block: its thread keeps it (and its sockets)
    alive until then, as an open file stays open until it is closed.

    Parameters
    ----------
    destinations : list of str, (host, port) or DestinationConfig
        ``"HOST:PORT"`` strings are per-hop bundles of every output.
    prefix : str
        Address prefix of every message.
    model_name, provider : str
        Reported in the status messages.
    settings : OutputSettings
        Output shaping and mutes; replace ``sender.settings`` at any time (presets, control port).
    """

    def __init__(self, destinations, prefix: str = DEFAULT_PREFIX, model_name: str = "", provider: str = "",
                 settings: OutputSettings | None = None):
        self.prefix = check_prefix(prefix)
        self.model_name = model_name
        self.provider = provider
        self.settings = settings or OutputSettings()
        configs = [d if isinstance(d, DestinationConfig) else
                   DestinationConfig(*d) if isinstance(d, tuple) else DestinationConfig.parse(d)
                   for d in destinations]
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._opening_lock = threading.Lock()  # a lookup that ends as the sender closes hands its socket over
        # An unresolvable host (DNS down, a laptop not yet on the network) must not stop the show: it is
        # retried every few seconds, and estimates meanwhile are dropped there.
        self.destinations = [Destination(cfg, None, Shaper(self.settings)) for cfg in configs]
        for d in self.destinations:
            self._start_opening(d)
        wait_until = time.monotonic() + RESOLVE_WAIT_S
        for d in self.destinations:
            d.opening.join(max(0.0, wait_until - time.monotonic()))
            self._take_opened(d)
        self.bundles = 0  # estimates handed over
        # Recent estimates for fixed-rate destinations (> 5 s of offset at any hop length).
        self._history: collections.deque[tuple[float, int, Estimate]] = collections.deque(maxlen=256)
        self._seq = 0
        # Where streams ended (the sequence number of the first estimate after each): a destination that lags
        # behind by its offset may still owe one stream's end when the next stream (a restart) has begun.
        # A tuple, replaced whole, so the sender thread reads it while the analyzer thread ends a stream.
        self._ends: tuple[int, ...] = ()
        self._thread = threading.Thread(target=self._run, name="live_mer-osc", daemon=True)
        self._thread.start()

    def _start_opening(self, d: Destination) -> None:
        """Look ``d``'s host up and open its socket in a thread of its own; :meth:`_take_opened` takes the result."""
        try:
            keep = d.sock.getpeername()[0] if d.sock is not None else None
        except OSError:
            keep = None

        def lookup() -> None:
            try:
                found: socket.socket | DestinationError = _open(d.cfg, keep)
            except DestinationError as exc:
                found = exc
            except Exception as exc:  # e.g. an address family this computer does not have
                found = DestinationError(f"OSC destination {d.label}: {exc}")
            with self._opening_lock:
                if self._stop.is_set() and isinstance(found, socket.socket):
                    found.close()  # the sender has closed meanwhile
                else:
                    d.opened = found
            self._wake.set()

        d.opened = None
        d.opening = threading.Thread(target=lookup, name="live_mer-osc-resolve", daemon=True)
        d.opening.start()

    def _take_opened(self, d: Destination) -> None:
        """Take ``d``'s finished lookup: its socket, or the error (then retried after RESOLVE_RETRY_S). A lookup
        again of a name already sent to (RERESOLVE_S) replaces the socket only if the address has changed."""
        if d.opening is None or d.opening.is_alive():
            return
        found, d.opening, d.opened = d.opened, None, None
        if d.sock is not None:
            d.retry_at = time.monotonic() + RERESOLVE_S
            if isinstance(found, socket.socket):
                old, new = d.sock.getpeername(), found.getpeername()
                if new[:2] != old[:2]:
                    log.warning("OSC destination %s is now at %s; sending there", d.label, new[0])
                    d.sock, found = found, d.sock
                found.close()
            return  # a failed lookup again: the address that worked stays
        if isinstance(found, socket.socket):
            if d.last_error:
                log.warning("OSC destination %s resolved; sending", d.label)
            d.sock, d.last_error = found, ""
            # a name is looked up again; an address never needs it
            d.retry_at = float("inf") if _is_address(d.cfg.host) else time.monotonic() + RERESOLVE_S
        else:
            d.retry_at = time.monotonic() + RESOLVE_RETRY_S
            if not d.last_error:
                log.warning("%s; retrying every %.0f s", found, RESOLVE_RETRY_S)
            d.last_error = str(found)

    def __call__(self, est: Estimate) -> None:
        """Hand an estimate over (called in the analyzer thread; never blocks)."""
        item = (time.monotonic(), self._seq, est)
        self._history.append(item)
        for d in self.destinations:
            if d.cfg.rate_hz == 0:
                if len(d.queue) == PER_HOP_QUEUE:
                    d.dropped += 1  # the oldest waiting estimate falls off
                d.queue.append(item)
        self._seq += 1
        self.bundles += 1
        self._wake.set()

    def end_of_stream(self) -> None:
        """The stream has stopped (call after the last estimate): each destination gets
        ``<p>/status/stopped`` after that estimate's frame, and fixed-rate destinations send nothing
        more until the next estimate (a restart). A stream that sent nothing (a start that failed) has
        nothing to end: it tells no one, so it cannot fade out visuals another instance is feeding."""
        if self._seq > max(self._end, 0):
            self._ends = (*self._ends[-(MAX_PENDING_ENDS - 1):], self._seq)
            self._wake.set()

    @property
    def _end(self) -> int:
        """The newest end-of-stream mark (-1: no stream has ended)."""
        return self._ends[-1] if self._ends else -1

    def _announce_ends(self, d: Destination, gone: int = -1) -> None:
        """Tell ``d`` about each stream end it has reached, in order: an end is reached once the ended
        stream's last estimate has gone out to ``d`` (or, for ``gone`` >= the end, can no longer go out)."""
        for end in self._ends:
            if d.ended < end <= max(d.last_seq + 1, gone):
                self._announce_end(d, end)

    def _announce_end(self, d: Destination, end: int) -> None:
        d.ended = end
        # The next stream (a restart, another source) is shaped afresh, as a new listen would shape it: held
        # labels, followers and the last key belong to the stream that ended (the monitor keeps one sender
        # across restarts, which re-sent the previous song's key, as a key change, seconds into the next).
        d.shaper = Shaper(self.settings)
        if d.handed_over or d.sock is None or "status" not in d.cfg.outputs or "status" in self.settings.muted:
            return
        self._transmit(d, datagrams([(f"{self.prefix}/status/stopped", [])], d.cfg.bundle, time.time()), frames=False)

    def _send(self, d: Destination, est: Estimate, now: float, fresh: bool) -> None:
        if d.sock is None:
            d.dropped += 1
            return
        settings = self.settings
        if d.shaper.settings is not settings:
            d.shaper.settings = settings
        frame = d.shaper.step(est, now)
        cfg = d.cfg
        msgs = encode(frame, cfg, self.prefix, self.model_name, self.provider, fresh, settings.muted)
        if msgs:
            self._transmit(d, datagrams(msgs, cfg.bundle, time.time() + min(0.0, cfg.offset_ms) / 1000.0))

    def _transmit(self, d: Destination, packets: list[bytes], frames: bool = True) -> None:
        """Send ``packets``; ``sent`` counts the datagrams of frames (not the end-of-stream notice)."""
        for data in packets:
            try:
                d.sock.send(data)
                d.sent += frames
                d.clean_sends += 1
                if d.refused and d.clean_sends >= RECOVERED_AFTER and time.monotonic() - d.refused_at >= RECOVERED_S:
                    d.refused = False
            except OSError as exc:  # ECONNREFUSED from an earlier datagram, EAGAIN when full, ...
                d.errors += 1
                d.clean_sends = 0
                if exc.errno == errno.ECONNREFUSED:
                    d.refused, d.refused_at = True, time.monotonic()
                d.last_error = exc.strerror or str(exc)
                if exc.errno in (errno.ENETUNREACH, errno.EADDRNOTAVAIL) and _local_address_gone(d.sock):
                    # A connected socket keeps the local address it was connected from: once that is gone (a new
                    # DHCP lease, another Wi-Fi) every send fails until it is opened again, as at the start (while
                    # the address stays, a route lost for a moment comes back to the socket as it is).
                    log.warning("OSC destination %s: %s; opening it again", d.label, d.last_error)
                    d.sock.close()
                    d.sock, d.retry_at = None, 0.0
                    return

    def _fixed_rate_frame(self, d: Destination, history: tuple, now: float, delay: float) -> tuple[tuple | None, float]:
        """What a fixed-rate destination sends at this tick: the newest estimate visible after its delay,
        but none of a stream whose end it has announced (no repeating after "stopped"), and none of the next
        stream while it owes the ended one's end (so that stream's last frame, then the end, go out first:
        a stream that ends before its newest estimate's time comes still sends it). Also returns when the
        next estimate not yet visible becomes visible (inf: none waiting), for an idle tick to sleep until."""
        owed = next((end for end in self._ends if end > d.ended), math.inf)
        later = math.inf
        for item in reversed(history):
            t, seq, _ = item
            if seq < d.ended:
                break  # older ones are older streams, all ended
            if seq >= owed:
                continue
            if t + delay <= now:
                return item, later
            later = t + delay
        return None, later

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            wait = 0.25
            history = tuple(self._history)  # a snapshot: the analyzer thread appends meanwhile
            for d in self.destinations:
                delay = max(0.0, d.cfg.offset_ms) / 1000.0
                try:
                    self._take_opened(d)
                    if d.opening is None and now >= d.retry_at:  # unresolved, or a name to look up again
                        self._start_opening(d)
                    if d.cfg.rate_hz == 0:
                        while d.queue and d.queue[0][0] + delay <= now:
                            t, seq, est = d.queue.popleft()
                            self._announce_ends(d)  # a restart's frames come after the previous stream's end
                            d.last_seq = seq
                            self._send(d, est, t + delay, fresh=True)
                        if d.queue:
                            wait = min(wait, max(0.0, d.queue[0][0] + delay - now))
                        self._announce_ends(d)
                    else:
                        due = d.next_due
                        if now >= d.next_due:
                            visible, due = self._fixed_rate_frame(d, history, now, delay)
                            if visible is not None:
                                _, seq, est = visible
                                fresh, d.last_seq = seq > d.last_seq, seq
                                self._send(d, est, now, fresh=fresh)
                                period = 1.0 / d.cfg.rate_hz
                                # under half a period late: keep the phase; later (the first frame, a pause, a
                                # busy machine): start again from now, so frames are never less than half a
                                # period apart (the first frame used to go out three times within 0.3 ms)
                                late = now - d.next_due
                                d.next_due = due = d.next_due + period if late < period / 2 else now + period
                        # the oldest estimate remembered tells which ended streams can no longer be sent here
                        self._announce_ends(d, gone=history[0][1] if history else -1)
                        wait = min(wait, max(0.0, due - now))
                except DestinationError as exc:
                    d.last_error = str(exc)
                except Exception as exc:  # a bug in shaping/encoding must not kill the sender
                    d.errors += 1
                    d.last_error = str(exc)
                    log.warning("OSC %s: %s", d.label, exc)
            self._wake.wait(wait)
            self._wake.clear()

    def flush(self, timeout: float = 2.0) -> None:
        """Wait until every handed-over estimate has been sent to per-hop destinations (and, after
        :meth:`end_of_stream`, the end announced to every destination that can be reached)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and any((d.cfg.rate_hz == 0 and d.last_seq < self._seq - 1)
                                             or (d.sock is not None and d.ended < self._end)
                                             for d in self.destinations):
            self._wake.set()
            time.sleep(0.005)

    def continue_shaping(self, old: "OscSender") -> None:
        """Shape each destination that ``old`` sends to as well (the same HOST:PORT) on from where ``old``
        has got: the monitor's OSC field was edited, and the visuals that keep receiving must not see their
        values jump to the newest estimate or the key announced again. Call before handing over an estimate."""
        theirs = {d.label: d.shaper for d in old.destinations}  # (as close(still_receiving) tells them)
        for d in self.destinations:
            if d.label in theirs:
                d.shaper = _copy_shaper(theirs[d.label])

    def stats(self) -> list[dict]:
        """Per destination: sent, errors, dropped, last_error, and refused (nothing listens on that port now)."""
        return [{"destination": d.label, "sent": d.sent, "errors": d.errors, "dropped": d.dropped,
                 "last_error": d.last_error, "refused": d.refused} for d in self.destinations]

    def __enter__(self) -> "OscSender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self, still_receiving: Collection[str] = ()) -> None:
        """End the stream, send what is pending (briefly, plus any destination's delay), stop the thread and
        close the sockets (idempotent). Destinations whose label is in ``still_receiving`` (another sender
        takes over: the monitor's OSC field was edited) are not told that the stream stopped."""
        if getattr(self, "_thread", None) is not None and self._thread.is_alive():
            for d in self.destinations:
                d.handed_over = d.label in still_receiving
            self.end_of_stream()
            # the last frame is due after a destination's delay, and at a fixed rate up to one period later
            self.flush(0.5 + max((max(0.0, d.cfg.offset_ms) / 1000.0 + (1.0 / d.cfg.rate_hz if d.cfg.rate_hz else 0.0)
                                  for d in self.destinations), default=0.0))
        with self._opening_lock:
            self._stop.set()
        self._wake.set()
        if getattr(self, "_thread", None) is not None:
            self._thread.join(2.0)
        for d in self.destinations:
            if d.opening is not None:
                d.opening.join(0.2)  # a lookup still hanging closes what it opens (the stop is set)
            for sock in (d.sock, d.opened):
                if isinstance(sock, socket.socket):
                    sock.close()
