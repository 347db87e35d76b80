"""live_mer's Qt live monitor (PyQt6 + pyqtgraph): ``python -m gui`` or ``live-mer gui``.

The monitor runs the same :class:`~live_mer.analyzer.Analyzer` in-process and shows, at display
rate, what the analyzer thread produces: a valence/arousal timeline with the category heads, the
valence–arousal plane, chord and key, the input level and the pipeline's health. It imports
live_mer; live_mer never imports it.

Modules: :mod:`gui.app` (command line, QApplication), :mod:`gui.window` (the window and its
controls), :mod:`gui.session` (model, sources, engine and OSC without Qt), :mod:`gui.plots` and
:mod:`gui.widgets` (the views), :mod:`gui.theme` (colours and style), :mod:`gui.presets`.
"""
