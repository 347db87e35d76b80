"""Named monitor presets: smoothing, OSC destinations, timeline length and OSC output shaping.

The monitor has a few built-in presets for typical rigs (:data:`PRESETS`); a configuration file's
``[presets.<name>]`` tables (OSC output shaping, see ``live-mer config --example``) are added to them
by :func:`from_config`. A preset changes only the settings it names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from live_mer.outputs import OutputSettings


@dataclass(frozen=True)
class Preset:
    """A named set of analysis and output settings; ``None`` leaves a setting as it is.

    Attributes
    ----------
    description : str
        One line for the tooltip.
    smoothing_s : float or None
        Smoothing of the estimates (``Analyzer(smoothing_s=...)``); changing it restarts the analysis.
    osc : str or None
        OSC destinations as typed in the window: comma-separated ``HOST:PORT``.
    history_s : int or None
        Length of the scrolling timeline in seconds.
    outputs : OutputSettings or None
        Shaping and mutes of the OSC outputs (``OscSender.settings``), swapped in without a restart.
    """

    description: str = ""
    smoothing_s: float | None = None
    osc: str | None = None
    history_s: int | None = None
    outputs: OutputSettings | None = None


CUSTOM = "Custom"

PRESETS: dict[str, Preset] = {
    # Resolume Arena/Avenue listen for OSC on port 7000 by default; a club wants fast reactions.
    "Club (fast)": Preset("Fast reactions for dance music and VJ sets; OSC to Resolume's default port 7000",
                          smoothing_s=0.3, osc="127.0.0.1:7000", history_s=30),
    "Ambient (slow)": Preset("Slow, calm movement for ambient and film music; OSC to port 9000",
                             smoothing_s=4.0, osc="127.0.0.1:9000", history_s=120),
    # An installation usually feeds several machines: the local visuals and the LAN (broadcast).
    "Installation": Preset("Steady output for long unattended runs; OSC to this machine and broadcast on the LAN",
                           smoothing_s=2.0, osc="127.0.0.1:9000, 255.255.255.255:9000", history_s=120),
}


def from_config(presets: Mapping[str, OutputSettings]) -> dict[str, Preset]:
    """Monitor presets for a configuration's ``[presets.<name>]`` output-shaping presets."""
    return {name: Preset(f"[presets.{name}] from the configuration file: OSC output shaping and mutes",
                         outputs=settings) for name, settings in presets.items()}
