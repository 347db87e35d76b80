"""vibenet (GPL-3, PyPI) as a peer on 4Q: a reference row for the README table, never a teacher.

vibenet predicts Spotify-style attributes (valence, energy, ... in [0, 1]) for a whole file, offline.
It runs in its own environment so that its licence and dependencies stay out of live_mer:

    python3 -m venv .venv-vibenet && .venv-vibenet/bin/pip install vibenet==0.1.0 scikit-learn
    .venv-vibenet/bin/python scripts/eval_vibenet.py          # writes .cache/vibenet_4q.json

One run predicts every 4Q clip (about 720 whole files, on the CPU; progress every 100 clips on stderr) and
prints the clip macro F1 and the valence and arousal sign accuracies. Quadrants come from the signs of
(valence - 0.5, energy - 0.5), fixed a priori (no fitting, so no folds).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys

from paths import CACHE, DATA, require_data  # scripts/paths.py: standard library only, so it imports anywhere

QUADRANT_VA = {"Q1": (1, 1), "Q2": (-1, 1), "Q3": (-1, -1), "Q4": (1, -1)}


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    try:
        import numpy as np
        import vibenet
        from sklearn.metrics import f1_score
    except ImportError as exc:
        sys.exit(f"eval_vibenet: no {exc.name} here: run it with .venv-vibenet/bin/python (made by `python3 -m venv "
                 ".venv-vibenet && .venv-vibenet/bin/pip install vibenet==0.1.0 scikit-learn`)")
    require_data("4q/labels.csv")
    model = vibenet.load_model()
    rows = list(csv.DictReader(open(DATA / "4q" / "labels.csv")))
    y, p, va_true, va_pred = [], [], [], []
    for i, row in enumerate(rows):
        r = model.predict(str(DATA / row["path"]))[0]
        v, a = np.sign(r.valence - 0.5) or 1.0, np.sign(r.energy - 0.5) or 1.0
        pred = next(q for q, s in QUADRANT_VA.items() if s == (v, a))
        y.append(row["quadrant"])
        p.append(pred)
        va_true.append(QUADRANT_VA[row["quadrant"]])
        va_pred.append((v, a))
        if i % 100 == 0:
            print(f"{i}/{len(rows)}", file=sys.stderr, flush=True)
    va_true, va_pred = np.array(va_true), np.array(va_pred)
    out = {"4q_clip_macro_f1": float(f1_score(y, p, average="macro")),
           "4q_valence_sign_acc": float(np.mean(va_true[:, 0] == va_pred[:, 0])),
           "4q_arousal_sign_acc": float(np.mean(va_true[:, 1] == va_pred[:, 1])),
           "clips": len(rows), "model": "vibenet 0.1.0 (EfficientNet, whole file, offline)"}
    path = CACHE / "vibenet_4q.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
