"""A PNG per analysed file: valence/arousal over time, quadrant colours, chord and key strips.

Needs matplotlib (the ``plot`` extra); imported only when plots are asked for.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .estimate import QUADRANT_NAMES
from .outputs import LEVEL_FLOOR_DB

QUADRANT_COLOURS = {"Q1": "#f5b700", "Q2": "#e8443a", "Q3": "#3a6fe8", "Q4": "#3fbf7f"}
TITLE_NAME_CHARS = 60  # a longer file name is shortened in the title
FIFTHS = [(i * 7) % 12 for i in range(12)]  # neighbouring keys on the circle of fifths get near colours


def _root_colour(label: str):
    import matplotlib.colors as mcolors

    from .harmony import PITCH_CLASSES

    if not label or label == "N":
        return (0.25, 0.25, 0.28)
    root = label.split(":")[0] if ":" in label else label.split()[0]
    minor = ":min" in label or " minor" in label
    hue = FIFTHS.index(PITCH_CLASSES.index(root)) / 12.0
    return mcolors.hsv_to_rgb((hue, 0.55 if minor else 0.75, 0.60 if minor else 0.90))


def _runs(times: np.ndarray, labels: list[str]):
    """(start, end, label) runs of equal consecutive labels."""
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            end = times[i] if i < len(times) else times[-1] + (times[-1] - times[-2] if len(times) > 1 else 0.5)
            yield times[start], end, labels[start]
            start = i


def plot_png(result: dict) -> bytes:
    """One file's analyze result (the JSON contract) drawn as a 1600x800 PNG (its bytes: the caller writes
    the file whole, ``batch.write_whole``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 13, "text.color": "#e6e6e6", "axes.labelcolor": "#e6e6e6",
                         "xtick.color": "#bbbbbb", "ytick.color": "#bbbbbb", "axes.edgecolor": "#555555"})
    fig = plt.figure(figsize=(16, 8), dpi=100, facecolor="#121216")
    try:  # closed whatever happens: a worker plotting many files must not collect figures
        fig.subplots_adjust(left=0.07, right=0.98, top=0.92, bottom=0.08)  # first: _draw fits labels to the panels
        _draw(fig, result, plt)
        image = io.BytesIO()
        fig.savefig(image, format="png", facecolor=fig.get_facecolor())  # exactly 1600 x 800 pixels
    finally:
        plt.close(fig)
    return image.getvalue()


def _draw(fig, result: dict, plt) -> None:
    """The four panels of :func:`plot_png` on ``fig``."""
    tl = result["timeline"]
    t = np.array([e["t"] for e in tl])
    # A frame starts where the previous one ended: the strips start at the first window's start.
    t0 = np.concatenate([[0.0], t[:-1]]) if len(t) else t
    grid = fig.add_gridspec(4, 1, height_ratios=[5, 1, 0.8, 1.2], hspace=0.12)
    ax = fig.add_subplot(grid[0])
    ax_chord = fig.add_subplot(grid[1], sharex=ax)
    ax_key = fig.add_subplot(grid[2], sharex=ax)
    ax_level = fig.add_subplot(grid[3], sharex=ax)
    for a in (ax, ax_chord, ax_key, ax_level):
        a.set_facecolor("#1b1b22")
    # Quadrant of each hop as a faint background, valence and arousal on top.
    for start, end, q in _runs(t0, [e.get("quadrant", "") for e in tl]):
        ax.axvspan(start, end, color=QUADRANT_COLOURS.get(q, "#444444"), alpha=0.18, lw=0)
    ax.axhline(0, color="#666666", lw=1)
    ax.plot(t, [e["valence"] for e in tl], color="#ff9f43", lw=2.5, label="valence")
    ax.plot(t, [e["arousal"] for e in tl], color="#54a0ff", lw=2.5, label="arousal")
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("valence / arousal")
    handles, names = ax.get_legend_handles_labels()
    import matplotlib.patches as mpatches

    handles += [mpatches.Patch(color=c, alpha=0.5, label=f"{q} {QUADRANT_NAMES[q]}") for q, c in QUADRANT_COLOURS.items()]
    ax.legend(handles=handles, loc="upper left", ncol=6, fontsize=11, facecolor="#1b1b22", edgecolor="#333333",
              labelcolor="#e6e6e6")
    s = result["summary"]
    name = Path(result["path"]).name.encode("utf-8", "backslashreplace").decode()  # as the JSON and CSV spell it
    if len(name) > TITLE_NAME_CHARS:  # the summary after it must stay on the image: shortened in the middle
        name = name[: TITLE_NAME_CHARS // 2 - 1] + "\u2026" + name[-(TITLE_NAME_CHARS // 2):]
    # "file key": the whole file's key (the summary's), which the key strip's live keys need not contain
    title = (f"{name}   —   valence {s['valence']:+.2f}, arousal {s['arousal']:+.2f}, "
             f"{s.get('quadrant', '')}   file key {s.get('key') or '?'} {s.get('key_camelot', '')}")
    # parse_math off: a file name with two "$" is a name, not a formula (it made savefig fail)
    ax.set_title(title, color="#ffffff", fontsize=16, loc="left", pad=12, parse_math=False)
    span = max(float(t[-1]) if len(t) else 1.0, 1.0)
    px_per_s = ax.bbox.width / span
    renderer = fig.canvas.get_renderer()
    strips = ((ax_chord, "chord\n(colour: root)", [e.get("chord", "") for e in tl]),
              (ax_key, "live key", [f"{e['key']} {e['key_camelot']}" if e.get("key") else "" for e in tl]))
    for a, name, labels in strips:
        for start, end, label in _runs(t0, labels):
            a.axvspan(start, end, color=_root_colour(label), lw=0)
            # named where the name fits in its block (on a long track, short chords are colour only)
            if label and label != "N":
                text = a.text((start + end) / 2, 0.5, label, ha="center", va="center", fontsize=10, color="#0c0c0c",
                              fontweight="bold", transform=a.get_xaxis_transform())
                if text.get_window_extent(renderer).width + 2 > (end - start) * px_per_s:
                    text.remove()
        a.set_yticks([])
        a.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=11)
    ax_level.fill_between(t, LEVEL_FLOOR_DB, np.maximum([e["loudness_db"] for e in tl], LEVEL_FLOOR_DB),
                          color="#8e8e9e", alpha=0.7, step="pre")
    ax_level.set_ylim(LEVEL_FLOOR_DB, 0)
    ax_level.set_ylabel("dBFS")
    ax_level.set_xlabel("time (s)")
    for a in (ax, ax_chord, ax_key):
        plt.setp(a.get_xticklabels(), visible=False)
    if len(t):
        ax.set_xlim(0, t[-1])
