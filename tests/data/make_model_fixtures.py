#!/usr/bin/env python
"""Write one small model file per saved-format version (and variant) into tests/data/.

Run once when the format changes (``python tests/data/make_model_fixtures.py``), commit the
files, and never regenerate the old ones: they stand for files users already have.

- ``model_v1_initial.npz``: format 1 as first written (42ae2c9): no optimize_*/sweeps_done,
  no sampler/mh_steps.
- ``model_v1_auto_alpha.npz``: format 1 after alpha="auto" (7c14653): no sampler/mh_steps.
- ``model_v1.npz``: format 1 as last written (becb4a4 to 3e7b571).
- ``model_v2.npz``: format 2 (issue 12): adds num_docs, num_tokens.
- ``model_v3.npz``: format 3 (issue 14): adds the eta array and gensim's keywords; this
  script writes it, and the older files only where they are missing.

The version-1 files are written field by field as those versions' ``save`` wrote them (same
arrays, same JSON metadata keys), from a model trained with today's code.
"""

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from distlda import persistence as P  # noqa: E402
from distlda.models import LdaModel  # noqa: E402

V1_LAST = ["format", "format_version", "distlda_version", "num_topics", "num_terms", "eta",
           "chunksize", "iterations", "eval_every", "workers", "minimum_probability",
           "inference_iterations", "sampler", "mh_steps", "optimize_alpha",
           "optimize_interval", "optimize_burnin", "sweeps_done", "distributed", "ns_conf",
           "fixed_vocab", "infer_seed", "rng_state", "id2word"]
V2 = V1_LAST + ["num_docs", "num_tokens"]
V1_AUTO_ALPHA = [k for k in V1_LAST if k not in ("sampler", "mh_steps")]
V1_INITIAL = [k for k in V1_AUTO_ALPHA if k not in ("optimize_alpha", "optimize_interval",
                                                    "optimize_burnin", "sweeps_done")]


def corpus():
    return [[(i % 11, 1 + i % 3), ((3 * i + 1) % 11, 2), ((5 * i) % 11, 1)] for i in range(30)]


def main():
    words = [f"w{i}" for i in range(11)]
    lda = LdaModel(corpus(), num_topics=3, id2word=words, iterations=10, random_state=12,
                   distributed=False, workers=1, chunksize=8, inference_iterations=10)
    current = HERE / f"model_v{P.FORMAT_VERSION}.npz"  # the older ones stay as users have them
    before = HERE / f"model_v{P.FORMAT_VERSION - 1}.npz"
    if not current.exists():  # the same state as the version before, written anew
        (LdaModel.load(str(before)) if before.exists() else lda).save(str(current))
    with zipfile.ZipFile(current) as zf:
        members = {n[:-4]: zf.read(n) for n in zf.namelist()}
    meta = json.loads(np.load(io.BytesIO(members["meta"])).tobytes())
    arrays = {k: np.load(io.BytesIO(b)) for k, b in members.items() if k not in ("meta", "eta")}
    for name, keys, version in (("model_v1_initial.npz", V1_INITIAL, 1),
                                ("model_v1_auto_alpha.npz", V1_AUTO_ALPHA, 1),
                                ("model_v1.npz", V1_LAST, 1), ("model_v2.npz", V2, 2)):
        if (HERE / name).exists():
            continue  # files users already have: never regenerated
        old = {k: meta[k] for k in keys}
        old["format_version"] = version
        (HERE / name).write_bytes(P.write_archive(old, arrays))
    print("wrote", ", ".join(sorted(p.name for p in HERE.glob("model_v*.npz"))))


if __name__ == "__main__":
    main()
