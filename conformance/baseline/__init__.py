"""Baselines: record what every backend computes today, compare after an upgrade.

## Regression checks before upgrades

```text
conformance baseline save NAME [--targets ...] [--ops PATTERN] [--floatx ...] [--examples N]
                               [--seed N] [--dir DIR] [--force]
conformance baseline list [--dir DIR]
conformance compare BASELINE [--targets ...] [--ops PATTERN] [--out DIR] [--dir DIR]
```

`baseline save NAME` draws a fixed corpus (N examples per (op, floatx), default 10, from
a fixed hypothesis seed), *stores the examples* and runs them on every selected ready
target. It writes `baselines/NAME/` (or `DIR/NAME`), plain files that can be committed
or kept as a CI artifact:

    manifest.json          format version, harness version, the corpus index, per target
                           the worker info (python, keras, backend library, numpy) and the
                           environment's `pip freeze`, per (op, target, floatx) the verdict
                           and error figures against the float64 reference
    corpus/<op>-<fx>.*     the examples (.npz arrays + .json static arguments and digest)
    outputs/<target>/...   per example: status, verdict, and each output: whole in .npz
                           when it has at most 1024 elements, else its sha256 plus
                           shape, dtype, min, max, mean and NaN/inf counts

`compare BASELINE` (a name under `baselines/` or a folder) replays the stored corpus on
today's environments: the same inputs, byte for byte, whatever hypothesis or the
strategies do today. Per (op, target, floatx) it reports one of

    unchanged                 every output bit-identical
    changed within tolerance  outputs moved, by at most the op's tolerance taken around the
                              baseline output (the drift is given in ULPs, max over elements)
    changed beyond tolerance  moved further than that, or the verdict got worse
    newly failing             conforming before, now error / crash / timeout / broken /
                              shape / dtype (a numeric fail with a drift beyond tolerance is
                              "changed beyond tolerance", its verdict shows pass -> fail)
    newly passing / newly unsupported / newly supported
    not run                   target not available today, or op no longer in the catalog

plus what changed in between: harness version, per target the worker's versions and the
packages `pip freeze` lists (added, removed, upgraded). It writes OUT/comparison.json,
today's results (results.jsonl, summary.json) and OUT/index.html, the usual report with a
regression view on top. Exit status 1 when something changed beyond tolerance or newly
fails (a target that no longer starts counts), 2 when the baseline cannot be used (e.g.
written in another baseline format: the message says which and what to do).

```bash
conformance baseline save before-tf-upgrade --targets keras3-tensorflow --floatx float32
# ... upgrade tensorflow-cpu in the keras3 environment ...
conformance compare before-tf-upgrade --out reports/tf-upgrade
```

Both verdicts come from today's catalog: the stored baseline outputs are judged again with
today's references and tolerances, so a harness upgrade that retunes a tolerance is
never mistaken for a backend change. Outputs stored only as digests cannot give a drift;
they are judged by their verdict against the reference and marked "digest only".
Random ops are judged statistically: their drift is reported, the classification follows
the verdict.
"""
from __future__ import annotations

from conformance.baseline.command import (add_baseline_arguments, add_compare_arguments, cmd_compare,
                                          print_comparison)
from conformance.baseline.drift import CHANGES, LABELS, REGRESSIONS, classify, drift
from conformance.baseline.outputs import (FORMAT, FORMAT_VERSION, BaselineError, describe_output,
                                          load_outputs, output_digest, read_manifest)
from conformance.baseline.replay import compare_baseline, replay, save
