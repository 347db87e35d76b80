"""live_mer: real-time music emotion analysis (valence/arousal, categories, chord, key) for live rigs.

The public API is small:

- :class:`live_mer.analyzer.Analyzer` turns audio blocks into :class:`live_mer.estimate.Estimate` records;
- :func:`live_mer.model.load_model` loads and verifies an ONNX student and its model card;
- :func:`live_mer.fileanalysis.analyze_file` runs the analyzer over a file and returns the JSON contract;
- :class:`live_mer.engine.Engine` wires a source, the analyzer thread and the sinks together.
"""

__version__ = "0.1.0"
