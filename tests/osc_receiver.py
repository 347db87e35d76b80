"""A real OSC receiver on loopback UDP for the tests, and a sender of single datagrams (OSC or not)."""

from __future__ import annotations

import socket
import threading
import time

from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder


class Receiver:
    """Collects every datagram sent to ``host``:``port`` (a free port unless given) in a background thread."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # bursts must not be dropped
        self.sock.bind((host, port))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.datagrams.append(data)

    def bundles(self) -> list[OscBundle]:
        return [OscBundle(d) for d in self.datagrams]

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        while len(self.datagrams) < n and time.monotonic() < end:
            time.sleep(0.01)
        return len(self.datagrams) >= n

    def close(self):
        self._stop.set()
        self._thread.join(1.0)
        self.sock.close()


def messages(bundle: OscBundle) -> dict[str, OscMessage]:
    return {m.address: m for m in bundle if isinstance(m, OscMessage)}


def free_udp_port() -> int:
    """A port nobody listens on (bound then released)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def send_osc(port: int, address: str, *args, types: str | None = None) -> None:
    """Send one OSC message to 127.0.0.1:``port``; ``types`` forces its type tags ("sd", "sT"...), as another
    program might send them."""
    b = OscMessageBuilder(address)
    for i, a in enumerate(args):
        b.add_arg(a, types[i] if types else None)
    send_raw(port, b.build().dgram)


def send_raw(port: int, data: bytes) -> None:
    """Send one datagram to 127.0.0.1:``port``, OSC or not."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(data, ("127.0.0.1", port))


def wait_until(condition, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)
    return condition()
