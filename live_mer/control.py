"""OSC control port: switch presets, change shaping, mute outputs, query state — validated strictly.

Messages (``<p>`` is the OSC prefix, ``/mer`` by default):

====================================  ===================================================
``<p>/control/preset s``              switch to a preset from the configuration ("" = back to ``[outputs]``)
``<p>/control/smoothing s f f``       smoothed output (not chord, key), attack ms, release ms (0..600000)
``<p>/control/hold s f f``            label output (quadrant, chord, key), hold ms, hysteresis 0..1
``<p>/control/mute s i``              output (or ``all``), 1 = mute, 0 = unmute (also as a float or T/F)
``<p>/control/query [i]``              replies ``<p>/state/preset s``, ``<p>/state/muted s...``,
                                      ``<p>/state/smoothing s f f`` per smoothed output and
                                      ``<p>/state/hold s f f`` per label output, to the sender
====================================  ===================================================

Replies come from the control port itself, so a receiver that filters by source port sees them.

Anything else — a datagram that is not OSC, an unknown address, wrong argument types or count, a value
out of range, an unknown preset or output — changes nothing; it is counted and logged at most once per
second (the count of those not logged follows after a second without rejections, or when the port
closes). The port binds
to 127.0.0.1 unless configured otherwise. Nothing received is ever evaluated, unpickled or used as a
file path.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from typing import Callable, Mapping

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_packet import OscPacket
from pythonosc.osc_server import BlockingOSCUDPServer

from .osc import DEFAULT_PREFIX, message
from .outputs import LABEL_OUTPUTS, OUTPUTS, SMOOTHED_OUTPUTS, OutputSettings

log = logging.getLogger("live_mer")
RECEIVE_BUFFER_BYTES = 4 << 20  # asked of the kernel, which caps it at net.core.rmem_max (x2)


class ControlError(ValueError):
    """A control message that was rejected (the reason is logged)."""


class Controller:
    """Validates control messages and applies them by swapping an immutable :class:`OutputSettings`.

    Parameters
    ----------
    get_settings, set_settings : callables
        Read and replace the live settings (e.g. ``OscSender.settings``).
    presets : mapping of name -> OutputSettings
    prefix : str
        The OSC prefix the control addresses live under.
    base : OutputSettings
        What ``preset ""`` returns to: the configuration's ``[outputs]``.
    """

    def __init__(self, get_settings: Callable[[], OutputSettings], set_settings: Callable[[OutputSettings], None],
                 presets: Mapping[str, OutputSettings], prefix: str = DEFAULT_PREFIX, base: OutputSettings | None = None):
        self.get_settings, self.set_settings = get_settings, set_settings
        self.presets = presets
        self.base = base if base is not None else OutputSettings()
        self.prefix = prefix
        self.accepted = 0
        self.rejected = 0
        self._last_log = 0.0
        self._last_reject = 0.0
        self._suppressed = 0

    def handle(self, address: str, args: tuple) -> list[tuple[str, list]]:
        """Apply one message; returns reply messages (for query). Raises ControlError if rejected."""
        p = self.prefix
        cmd = address[len(p):] if isinstance(address, str) and address.startswith(p + "/") else None
        settings = self.get_settings()
        if cmd == "/control/preset":
            (name,) = self._args(args, (str,), address)
            if name and name not in self.presets:
                raise ControlError(f"{address}: unknown preset {name!r}; presets: {', '.join(self.presets) or 'none'}"
                                   " (\"\" = the [outputs] section)")
            self.set_settings(self.presets[name] if name else self.base)
        elif cmd == "/control/smoothing":
            output, attack, release = self._args(args, (str, float, float), address)
            self._check_output(output, SMOOTHED_OUTPUTS, address)
            self._check_range(address, "attack_ms", attack, 0, 600_000)
            self._check_range(address, "release_ms", release, 0, 600_000)
            self.set_settings(settings.with_shape(output, attack_ms=float(attack), release_ms=float(release)))
        elif cmd == "/control/hold":
            output, hold, hyst = self._args(args, (str, float, float), address)
            self._check_output(output, LABEL_OUTPUTS, address)
            self._check_range(address, "hold_ms", hold, 0, 600_000)
            self._check_range(address, "hysteresis", hyst, 0, 1)
            self.set_settings(settings.with_shape(output, hold_ms=float(hold), hysteresis=float(hyst)))
        elif cmd == "/control/mute":
            output, flag = self._args(args, (str, bool), address)
            self._check_output(output, (*OUTPUTS, "all"), address)
            self.set_settings(settings.with_mute(output, flag))
        elif cmd == "/control/query":
            # a controller's button (TouchOSC, a MIDI bridge) sends 1 when pressed and 0 when released: the press asks
            if args and not self._args(args, (bool,), address)[0]:
                self.accepted += 1
                return []
            reply = [(f"{p}/state/preset", [settings.preset]), (f"{p}/state/muted", sorted(settings.muted))]
            reply += [(f"{p}/state/smoothing", [n, settings.shape(n).attack_ms, settings.shape(n).release_ms])
                      for n in SMOOTHED_OUTPUTS]
            reply += [(f"{p}/state/hold", [n, settings.shape(n).hold_ms, settings.shape(n).hysteresis])
                      for n in LABEL_OUTPUTS]
            self.accepted += 1
            return reply
        else:
            raise ControlError(f"unknown control address {address!r}")
        self.accepted += 1
        return []

    @staticmethod
    def _args(args: tuple, types: tuple, address: str) -> tuple:
        """``args`` checked against ``types``: an int is taken as a float; ``bool`` is a 0/1 switch."""
        if len(args) != len(types):
            raise ControlError(f"{address}: expected {len(types)} argument(s), got {len(args)}")
        out = []
        for a, t in zip(args, types):
            if t is bool:
                out.append(Controller._switch(a, address))
                continue
            if t is float and isinstance(a, (int, float)) and not isinstance(a, bool):
                a = float(a)
            if not isinstance(a, t) or isinstance(a, bool):
                raise ControlError(f"{address}: argument {a!r} should be {t.__name__}")
            out.append(a)
        return tuple(out)

    @staticmethod
    def _switch(a, address: str) -> bool:
        """A 0/1 switch as controllers send it: an int, a float (TouchDesigner's OSC Out CHOP, TouchOSC and
        MIDI-to-OSC bridges send every value as one) or OSC's T/F. 0.5, NaN or 2 is no switch position."""
        if isinstance(a, bool) or (isinstance(a, (int, float)) and a in (0, 1)):  # NaN equals neither
            return bool(a)
        raise ControlError(f"{address}: argument {a!r} should be 0 or 1 (int, float or T/F)")

    @staticmethod
    def _check_output(name: str, allowed: tuple, address: str) -> None:
        if name not in allowed:
            raise ControlError(f"{address}: unknown output {name!r}; allowed: {', '.join(allowed)}")

    @staticmethod
    def _check_range(address: str, what: str, value: float, lo: float, hi: float) -> None:
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ControlError(f"{address}: {what} {value} is outside {lo}..{hi}")

    def reject(self, reason: str) -> None:
        """Count a rejected message and log it, at most once per second."""
        self.rejected += 1
        now = self._last_reject = time.monotonic()
        if now - self._last_log >= 1.0:
            extra = f" ({self._suppressed} more rejected since the last report)" if self._suppressed else ""
            log.warning("control message rejected: %s%s", reason, extra)
            self._last_log, self._suppressed = now, 0
        else:
            self._suppressed += 1

    def report_suppressed(self, closing: bool = False) -> None:
        """Log how many rejections the once-a-second limit kept out of the log, after a second without
        rejections (the server calls this between datagrams) or when the port closes: otherwise a burst's
        count would wait for the next rejection, which may never come."""
        now = time.monotonic()
        if self._suppressed and (closing or now - self._last_reject >= 1.0):
            log.warning("control messages rejected: %d more since the last report", self._suppressed)
            self._last_log, self._suppressed = now, 0


_READABLE_TYPES = frozenset(b"ihfdsbrmtTFN[]")  # the OSC argument types python-osc parses


def _packet_problem(data: bytes) -> str | None:
    """What python-osc would mishandle in the message or (nested) bundle ``data``, or None. A bundle
    element whose size is not positive, not a multiple of 4 or past the datagram's end sends python-osc's
    parser into an endless loop (the control port would be dead); an argument type it cannot parse is
    logged to the root logger once per datagram, unthrottled, and the arguments after it are read from the
    wrong bytes. Other malformed datagrams give None: :class:`OscPacket` rejects them."""
    pending = [data]
    while pending:
        packet = pending.pop()
        if packet.startswith(b"#bundle\0"):
            i = 16  # the "#bundle" string and the time tag
            while i < len(packet):
                size = int.from_bytes(packet[i:i + 4], "big", signed=True) if i + 4 <= len(packet) else -1
                if size <= 0 or size % 4 or i + 4 + size > len(packet):
                    return f"is not OSC: a bundle element at byte {i} has a size ({size}) that is not a positive multiple of 4 " \
                           f"within the datagram"
                pending.append(packet[i + 4:i + 4 + size])
                i += 4 + size
            continue
        start = (packet.find(b"\0") // 4 + 1) * 4  # after the address and its padding
        if start <= 0 or packet[start:start + 1] != b",":
            continue
        end = packet.find(b"\0", start)
        for code in packet[start + 1:end if end >= 0 else len(packet)]:
            if code not in _READABLE_TYPES:
                shown = chr(code) if 32 < code < 127 else f"\\x{code:02x}"
                return f"has an argument of OSC type {shown!r}, which the control port does not read (it reads " \
                       f"i h f d s b r m t T F N and arrays)"
    return None


class _Server(BlockingOSCUDPServer):
    """python-osc's UDP server drops a datagram that is not OSC without a word (``verify_request`` and its
    dispatcher both discard it): here it is rejected like any other bad message. Between datagrams (at
    least every poll interval) it lets the controller report the rejections it has not logged yet."""

    max_packet_size = 65535  # a whole UDP datagram: socketserver's 8192 cut a larger bundle, then rejected as not OSC

    def __init__(self, address, dispatcher: Dispatcher, controller: Controller):
        self.controller = controller
        super().__init__(address, dispatcher)

    def verify_request(self, request, client_address) -> bool:
        data = request[0]
        problem = _packet_problem(data)
        if problem is not None:
            self.controller.reject(f"a datagram from {client_address[0]}:{client_address[1]} {problem}")
            return False
        try:
            OscPacket(data)
        except Exception:  # ParseError, and the UnicodeDecodeError python-osc lets through
            self.controller.reject(f"a datagram from {client_address[0]}:{client_address[1]} is not an OSC message "
                                   f"or bundle ({len(data)} bytes: {data[:16]!r}{'...' if len(data) > 16 else ''})")
            return False
        return True

    def service_actions(self) -> None:
        self.controller.report_suppressed()


class ControlServer:
    """Serve a :class:`Controller` on a UDP port in a background thread."""

    def __init__(self, controller: Controller, host: str = "127.0.0.1", port: int = 9001):
        self.controller = controller
        dispatcher = Dispatcher(strict_timing=False)  # act now: a bundle time-tagged for later would block the port
        dispatcher.set_default_handler(self._on_message, needs_reply_address=True)
        try:
            self._server = _Server((host, port), dispatcher, controller)
        except OSError as exc:
            raise OSError(f"control port {host}:{port}: {exc.strerror or exc}") from None
        try:  # a controller's burst (a fader sweep) must not be dropped while this thread waits for the GIL
            self._server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        except OSError:
            pass  # the system's default then
        self.address = self._server.server_address
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="live_mer-control", daemon=True)
        self._thread.start()

    def _on_message(self, client, address, *args) -> None:
        try:
            replies = self.controller.handle(address, args)
        except ControlError as exc:
            self.controller.reject(str(exc))
            return
        except Exception as exc:  # never let a message kill the server thread
            self.controller.reject(f"{address}: {exc!r}")
            return
        for addr, values in replies:
            try:
                self._server.socket.sendto(message(addr, values), client)
            except OSError:
                pass

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)
        self.controller.report_suppressed(closing=True)
