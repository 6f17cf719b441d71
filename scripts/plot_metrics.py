#!/usr/bin/env python3
"""Turns a run's metrics.jsonl into a PNG: training loss and the dev metrics over steps (for a
pretraining run's, beside its model: the held-out masked-LM loss).
Needs matplotlib (Debian: python3-matplotlib).

    scripts/plot_metrics.py runs/sst2/metrics.jsonl [out.png]
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

if len(sys.argv) < 2:
    sys.exit(__doc__)
path = sys.argv[1]
out = sys.argv[2] if len(sys.argv) > 2 else path.rsplit(".", 1)[0] + ".png"
train_steps, train_loss = [], []
# Each dev series, by (task, metric): a multi-task run logs one eval event per task and step.
series = {}
with open(path) as f:
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as e:
            sys.exit(f"{path}:{n}: not JSON: {e}")
        if event.get("event") == "train":
            train_steps.append(event["step"])
            train_loss.append(event["loss"])
        elif event.get("event") == "eval":
            held_out = "held_out_loss" in event  # pretraining
            scores = {"held-out loss": event["held_out_loss"]} if held_out else event["metrics"]
            for name, value in scores.items():
                steps, values = series.setdefault((event.get("task"), name), ([], []))
                steps.append(event["step"])
                values.append(value)
if not train_steps and not series:
    sys.exit(f"{path}: no train or eval events")
fig, (ax_loss, ax_dev) = plt.subplots(1, 2, figsize=(11, 4))
ax_loss.plot(train_steps, train_loss, color="tab:blue")
ax_loss.set(title="training loss", xlabel="step", ylabel="loss")
tasks = {task for task, _ in series}
for (task, name), (steps, values) in series.items():
    # "combined" (the mean of a task's metrics) only where it is the task's one metric.
    if name == "combined" and sum(t == task for t, _ in series) > 1:
        continue
    label = f"{task} {name}" if len(tasks) > 1 else name
    ax_dev.plot(steps, values, marker="o", label=label)
held_out_only = {name for _, name in series} == {"held-out loss"}
ax_dev.set(title="held-out loss" if held_out_only else "dev metrics", xlabel="step")
ax_dev.legend()
fig.tight_layout()
fig.savefig(out, dpi=100)
print(out)
