#!/usr/bin/env python3
"""Markdown table of a results JSONL written by mnist.py (--out DIR --results NAME):
    python3 Benchmarks/mnist/table.py Benchmarks/mnist/results-2026-12-01b.jsonl
One row per job: the figure, the paper's, the protocol (with any deviation), epochs, wall time and load; then
the Split MNIST accuracy matrix R with BWT and forgetting, and the unlearning membership-inference figures."""
import json, sys


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    print("| experiment | test accuracy | paper | protocol / deviation | epochs run | wall time (train) | load (1-min, start–end) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        acc = r["test_accuracy"]
        acc = "–" if acc != acc else f"{acc:.4f}"
        print(f"| {r['experiment']} | {acc} | {r['paper']} | {r['protocol']} | {r['epochs_run']} | {r['wall_seconds']} s | {r.get('load', '')} |")
    for r in rows:
        if r.get("R") is not None and "after task" not in r["experiment"]:
            print(f"\n{r['experiment']}: accuracy matrix R (row i: after task i; column j: task j's test digits), "
                  "from GET /v1/models/{id}/tasks/metrics:\n")
            print("| after task | " + " | ".join(f"task {j + 1}" for j in range(len(r["R"]))) + " |")
            print("|---|" + "---|" * len(r["R"]))
            for i, row in enumerate(r["R"]):
                print(f"| {i + 1} | " + " | ".join("–" if v is None else f"{v:.4f}" for v in row) + " |")
            fmt = lambda v: "–" if v is None else f"{v:.4f}"
            print(f"\naverage accuracy {fmt(r['average_accuracy'])}, BWT {fmt(r['backward_transfer'])}, "
                  f"forgetting per task {', '.join(fmt(v) for v in r['forgetting'])}; columns trained per task: "
                  f"{', '.join(str(t['columns']) for t in r.get('tasks', []))}")
        if "verification" in r:
            v = r["verification"] or {}
            print(f"\n{r['experiment']}: forget reset columns {r.get('columns_reset')} ({r.get('collateral_batches')} collateral "
                  f"batches); test accuracy {r.get('accuracy_before')} → {r.get('accuracy_after')}.")
            for when in ("before", "after"):
                c = v.get(when) or {}
                print(f"- {when}: MIA AUC {c.get('mia_auc')}, accuracy on forgotten rows (their corrupted labels) "
                      f"{c.get('forgotten_accuracy')}, on the other trained rows {c.get('rest_accuracy')}, on the reference rows "
                      f"{c.get('reference_accuracy')}")


if __name__ == "__main__":
    main()
