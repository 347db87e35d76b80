"""OSC control port: switch presets, change shaping, mute outputs, query state — validated strictly.

Messages (``<p>`` is the OSC prefix, ``/mer`` by default):

====================================  ===================================================
``<p>/control/preset s``              switch to a preset from the configuration ("" = back to ``[outputs]``)
``<p>/control/smoothing s f f``       smoothed output (not chord, key), attack ms, release ms (0..600000)
``<p>/control/hold s f f``            label output (quadrant, chord, key), hold ms, hysteresis 0..1
``<p>/control/mute s i``              output (or ``all``), 1 = mute, 0 = unmute
``<p>/control/query``                 replies ``<p>/state/preset s``, ``<p>/state/muted s...``,
                                      ``<p>/state/smoothing s f f`` per smoothed output and
                                      ``<p>/state/hold s f f`` per label output, to the sender
====================================  ===================================================

Replies come from the control port itself, so a receiver that filters by source port sees them.

Anything else — an unknown address, wrong argument types or count, a value out of range, an unknown
preset or output — changes nothing; it is counted and logged at most once per second. The port binds
to 127.0.0.1 unless configured otherwise. Nothing received is ever evaluated, unpickled or used as a
file path.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable, Mapping

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_server import BlockingOSCUDPServer

from .osc import DEFAULT_PREFIX
from .outputs import LABEL_OUTPUTS, OUTPUTS, SMOOTHED_OUTPUTS, OutputSettings

log = logging.getLogger("live_mer")


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
            output, flag = self._args(args, (str, int), address)
            self._check_output(output, (*OUTPUTS, "all"), address)
            if flag not in (0, 1):
                raise ControlError(f"{address}: mute flag must be 0 or 1, got {flag}")
            self.set_settings(settings.with_mute(output, bool(flag)))
        elif cmd == "/control/query":
            self._args(args, (), address)
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
        if len(args) != len(types):
            raise ControlError(f"{address}: expected {len(types)} argument(s), got {len(args)}")
        out = []
        for a, t in zip(args, types):
            if t is float and isinstance(a, (int, float)) and not isinstance(a, bool):
                a = float(a)
            if not isinstance(a, t) or isinstance(a, bool):
                raise ControlError(f"{address}: argument {a!r} should be {t.__name__}")
            out.append(a)
        return tuple(out)

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
        now = time.monotonic()
        if now - self._last_log >= 1.0:
            extra = f" ({self._suppressed} more rejected since the last report)" if self._suppressed else ""
            log.warning("control message rejected: %s%s", reason, extra)
            self._last_log, self._suppressed = now, 0
        else:
            self._suppressed += 1


class ControlServer:
    """Serve a :class:`Controller` on a UDP port in a background thread."""

    def __init__(self, controller: Controller, host: str = "127.0.0.1", port: int = 9001):
        self.controller = controller
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(self._on_message, needs_reply_address=True)
        try:
            self._server = BlockingOSCUDPServer((host, port), dispatcher)
        except OSError as exc:
            raise OSError(f"control port {host}:{port}: {exc.strerror or exc}") from None
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
            b = OscMessageBuilder(addr)
            for v in values:
                b.add_arg(v)
            try:
                self._server.socket.sendto(b.build().dgram, client)
            except OSError:
                pass

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)
