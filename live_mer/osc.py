"""OSC output: one bundle per estimate, with an OSC time tag, to one or more UDP destinations.

Namespace (``<p>`` is the configurable prefix, ``/mer`` by default)::

    <p>/va              ff    valence, arousal in [-1, 1]
    <p>/valence         f
    <p>/arousal         f
    <p>/quadrant        s     "Q1".."Q4"
    <p>/quadrant/probs  ffff  Q1..Q4 probabilities
    <p>/mood/<name>     f     every other categorical head value (GEMS shares: tension, sadness, ...)
    <p>/chord           sf    "A:min" ("N" = no chord), confidence
    <p>/key             ssf   "A minor", Camelot "8A", confidence ("" while unknown)
    <p>/level           f     loudness, dBFS
    <p>/onset           f     onset strength
    <p>/status          iifs  input overflows (total), clipped samples (this hop), processing ms, model

Sending never blocks: sockets are non-blocking and connected, so a closed port on this host answers
ECONNREFUSED on a later send, which is counted (``errors``) and otherwise ignored.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass

from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from .estimate import Estimate

DEFAULT_PREFIX = "/mer"


class DestinationError(ValueError):
    """An OSC destination that cannot be parsed or resolved."""


def parse_destination(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (IPv4, hostname or ``[v6]:port``) -> (host, port)."""
    host, sep, port = str(text).strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DestinationError(f"OSC destination {text!r} is not HOST:PORT with a port in 1..65535")
    return host, int(port)


def check_prefix(prefix: str) -> str:
    if not prefix.startswith("/") or prefix.endswith("/") or any(c in prefix for c in " #*,?[]{}"):
        raise ValueError(f"OSC prefix {prefix!r} must start with '/', not end with '/', and contain no "
                         "spaces or OSC pattern characters (#*,?[]{{}})")
    return prefix


@dataclass
class Destination:
    host: str
    port: int
    sock: socket.socket
    sent: int = 0
    errors: int = 0
    last_error: str = ""

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


def _open(host: str, port: int) -> Destination:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise DestinationError(f"OSC destination {host}:{port}: cannot resolve host ({exc})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    ip = ipaddress.ip_address(addr[0])
    if family == socket.AF_INET and (str(ip).endswith(".255") or ip == ipaddress.ip_address("255.255.255.255")):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    if ip.is_multicast:
        level = socket.IPPROTO_IP if family == socket.AF_INET else socket.IPPROTO_IPV6
        opt = socket.IP_MULTICAST_TTL if family == socket.AF_INET else socket.IPV6_MULTICAST_HOPS
        sock.setsockopt(level, opt, 1)
    try:
        sock.connect(addr)
    except OSError as exc:
        sock.close()
        raise DestinationError(f"OSC destination {host}:{port}: {exc}") from None
    return Destination(host, port, sock)


def _msg(address: str, *values) -> object:
    b = OscMessageBuilder(address)
    for v in values:
        b.add_arg(v)
    return b.build()


class OscSender:
    """A sink (call it with an :class:`Estimate`) that sends one OSC bundle per estimate.

    Parameters
    ----------
    destinations : list of str or (host, port)
        ``"HOST:PORT"`` strings or tuples; unicast, broadcast (``x.x.x.255``) or multicast addresses.
    prefix : str
        Address prefix of every message.
    model_name : str
        Reported in the status message.
    """

    def __init__(self, destinations, prefix: str = DEFAULT_PREFIX, model_name: str = ""):
        self.prefix = check_prefix(prefix)
        self.model_name = model_name
        parsed = [d if isinstance(d, tuple) else parse_destination(d) for d in destinations]
        self.destinations: list[Destination] = []
        try:
            for host, port in parsed:
                self.destinations.append(_open(host, port))
        except DestinationError:
            self.close()
            raise
        self.bundles = 0

    def build(self, est: Estimate, timestamp: float | None = None) -> bytes:
        """The bundle datagram for ``est`` (time tag = ``timestamp`` or now, seconds since the epoch)."""
        p = self.prefix
        bundle = OscBundleBuilder(time.time() if timestamp is None else timestamp)
        msgs = [_msg(f"{p}/va", est.valence, est.arousal), _msg(f"{p}/valence", est.valence),
                _msg(f"{p}/arousal", est.arousal)]
        for head, values in est.heads.items():
            if head == "quadrant":
                msgs.append(_msg(f"{p}/quadrant", est.quadrant))
                msgs.append(_msg(f"{p}/quadrant/probs", *values.values()))
            else:
                msgs.extend(_msg(f"{p}/mood/{name}", v) for name, v in values.items())
        msgs += [_msg(f"{p}/chord", est.chord, est.chord_confidence),
                 _msg(f"{p}/key", est.key, est.key_camelot, est.key_confidence),
                 _msg(f"{p}/level", est.loudness_db), _msg(f"{p}/onset", est.onset),
                 _msg(f"{p}/status", est.overflows, est.clipped, est.latency_ms, self.model_name)]
        for m in msgs:
            bundle.add_content(m)
        return bundle.build().dgram

    def __call__(self, est: Estimate) -> None:
        data = self.build(est)
        self.bundles += 1
        for d in self.destinations:
            try:
                d.sock.send(data)
                d.sent += 1
            except OSError as exc:  # ECONNREFUSED from an earlier datagram, EAGAIN when the socket is full, ...
                d.errors += 1
                d.last_error = exc.strerror or str(exc)

    def stats(self) -> list[dict]:
        return [{"destination": d.label, "sent": d.sent, "errors": d.errors, "last_error": d.last_error}
                for d in self.destinations]

    def close(self) -> None:
        for d in self.destinations:
            d.sock.close()
