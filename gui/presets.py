"""Named monitor presets: smoothing, timeline length and OSC output shaping.

The monitor has a few built-in presets for typical rigs (:data:`PRESETS`); a configuration file's
``[presets.<name>]`` tables (OSC output shaping, see ``live-mer config --example``) are added to them
by :func:`from_config`. A preset changes only the settings it names, and never where the OSC goes: the
destinations are where the user's visuals listen, not a matter of style (picking "Club" in the middle of a
set must not cut the visuals off).
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
        Smoothing of the estimates (``Analyzer.set_smoothing``), changed without a restart.
    history_s : int or None
        Length of the scrolling timeline in seconds.
    outputs : OutputSettings or None
        Shaping and mutes of the OSC outputs (``OscSender.settings``), swapped in without a restart.
    """

    description: str = ""
    smoothing_s: float | None = None
    history_s: int | None = None
    outputs: OutputSettings | None = None


CUSTOM = "Custom"

PRESETS: dict[str, Preset] = {
    "Club (fast)": Preset("Fast reactions for dance music and VJ sets", smoothing_s=0.3, history_s=30),
    "Ambient (slow)": Preset("Slow, calm movement for ambient and film music", smoothing_s=4.0, history_s=120),
    "Installation": Preset("Steady output for long unattended runs", smoothing_s=2.0, history_s=120),
}


def from_config(presets: Mapping[str, OutputSettings]) -> dict[str, Preset]:
    """Monitor presets for a configuration's ``[presets.<name>]`` output-shaping presets."""
    return {name: Preset(f"[presets.{name}] from the configuration file: OSC output shaping and mutes",
                         outputs=settings) for name, settings in presets.items()}
