"""Golden fixture for spat's ASHA promotion rule (crates/spat-reproduce/src/tune/asha.rs): Optuna's
SuccessiveHalvingPruner fed the same recorded sequence of results.

The sequences come from spat itself: the ignored test `export_report_sequences` of
crates/spat-reproduce/tests/asha.rs replays ASHA (`schedule`) on seeded random metric tables and
writes, per search, every (trial, rung, robust %, clean %) report in the order ASHA applied it.
This script reports each value to an Optuna trial at step = the rung's epochs (min_resource = R0,
reduction_factor = eta, min_early_stopping_rate = 0, bootstrap_count = 0, direction maximize;
trials stay RUNNING, so every reported value competes) and records whether `should_prune()` says
the trial may continue.

Optuna's rule (`_is_trial_promotable_to_next_rung`) lets a report continue when its value is at
least the k-th best of the n values reported at that rung so far (its own included), with
k = max(1, floor(n/eta)). ASHA's (and spat's) promotable set is the top floor(n/eta), which is
empty while n < eta: Optuna there promotes the best value so far ("promotable_idx -1 -> 0", because
Optuna cannot pause a trial and promote it later). The Rust test checks the two agree on every
report with n >= eta and differ only where n < eta and the value is the best so far. The metric
tables have no tied robust values, so Optuna's ">=" and spat's tie-breaks (clean, then trial id)
never meet.

Run from the repository root (needs optuna in the Python environment and cargo):
    python3 scripts/golden/asha_reference.py
Writes crates/spat-reproduce/tests/fixtures/asha_optuna.json.
"""
import json
import os
import subprocess
import tempfile

import optuna

FIXTURE = "crates/spat-reproduce/tests/fixtures/asha_optuna.json"


def recorded_sequences():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sequences.json")
        subprocess.run(
            ["cargo", "test", "--release", "-p", "spat-reproduce", "--test", "asha", "--",
             "--ignored", "--exact", "export_report_sequences"],
            env={**os.environ, "ASHA_SEQUENCE_OUT": path},
            check=True,
        )
        with open(path) as f:
            return json.load(f)


def optuna_decisions(case):
    rungs = case["rungs"]
    r0, eta = rungs["min_epochs"], rungs["eta"]
    pruner = optuna.pruners.SuccessiveHalvingPruner(
        min_resource=r0, reduction_factor=eta, min_early_stopping_rate=0, bootstrap_count=0
    )
    study = optuna.create_study(direction="maximize", pruner=pruner)
    trials = {}
    rows = []
    for trial_id, rung, robust, clean in case["reports"]:
        if trial_id not in trials:
            trials[trial_id] = study.ask()
        trial = trials[trial_id]
        trial.report(robust, step=r0 * eta**rung)
        rows.append([trial_id, rung, robust, clean, not trial.should_prune()])
    return rows


def fixture_text(cases):
    lines = [
        "{",
        '"made_by": "scripts/golden/asha_reference.py",',
        f'"optuna": "{optuna.__version__}",',
        '"reports_are": "[trial, rung, robust, clean, optuna_continues]",',
        '"difference": "while fewer than eta values exist at a rung, Optuna continues the best '
        'so far (promotable_idx -1 -> 0); ASHA promotes none until floor(n/eta) >= 1",',
        '"cases": [',
    ]
    for i, case in enumerate(cases):
        head = {k: case[k] for k in ("trials", "rungs", "slots")}
        lines.append(json.dumps(head)[:-1] + ', "reports": [')
        rows = [json.dumps(r) for r in optuna_decisions(case)]
        lines.append(",\n".join(rows))
        lines.append("]}" + ("," if i + 1 < len(cases) else ""))
    lines += ["]", "}"]
    return "\n".join(lines) + "\n"


def main():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    text = fixture_text(recorded_sequences())
    json.loads(text)
    with open(FIXTURE, "w") as f:
        f.write(text)
    print(f"wrote {FIXTURE} ({len(text)} bytes)")


if __name__ == "__main__":
    main()
