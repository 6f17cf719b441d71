#!/usr/bin/python3
"""How far the open-ended pretraining run (scripts/pretrain_wsd.sh) still has to go: issue 13 asks,
where a target is out of reach, for the curve and the compute projected to reach it.

Fits a power law with an offset, L(s) = E + A * s^-alpha, to the main run's held-out masked-LM
loss at constant learning rate (the `held-out mlm loss` lines of its log, steps after the warmup),
and prints the fit, its residuals and what it projects: the loss at given steps, and the steps at
which the main run reaches a given loss.

With --link, it also projects a downstream score. Each LINK is LOSS=SCORE for a finished (decayed)
model: its held-out loss and its score on the results table (say SST-2 accuracy with Houlsby
adapters). A straight line through them turns --target SCORE into the decayed loss it needs; the
newest decay's drop below the main run (--decay-drop, measured) turns that into a main-run loss,
and the fit into steps. Few points and a straight line: read the answer as an order of magnitude.

Usage: project_pretraining.py MAIN_LOG [--warmup 1000] [--at STEPS ...] [--loss L ...]
                              [--link LOSS=SCORE ... --target SCORE --decay-drop D]
                              [--seconds-per-step S]
"""
import argparse
import re
import sys

import numpy as np

HELD_OUT = re.compile(r"step (\d+)/\d+\s+held-out mlm loss ([0-9.]+)")


def held_out_curve(text, warmup):
    """(steps, losses) after the warmup; a step logged twice (a resumed run repeats the steps
    after its checkpoint) keeps its last value."""
    by_step = {int(s): float(l) for s, l in HELD_OUT.findall(text)}
    steps = sorted(s for s in by_step if s > warmup)
    return np.array(steps, dtype=float), np.array([by_step[s] for s in steps])


def fit_power_law(steps, losses):
    """E >= 0, A, alpha minimising the squared error of E + A * steps^-alpha: for each alpha on a
    fine grid the best E and A are a linear least-squares problem (E held at 0 where it would be
    negative: a loss has no negative floor)."""
    if len(steps) < 4:
        raise ValueError(f"a fit of 3 parameters needs at least 4 held-out points, got {len(steps)}")
    best = None
    for alpha in np.arange(0.002, 3.0, 0.002):
        power = steps ** -alpha
        design = np.stack([np.ones_like(steps), power], axis=1)
        (offset, scale), *_ = np.linalg.lstsq(design, losses, rcond=None)
        if offset < 0:
            offset, scale = 0.0, float(power @ losses / (power @ power))
        error = float(np.sum((offset + scale * power - losses) ** 2))
        if scale > 0 and (best is None or error < best[0]):
            best = (error, offset, scale, alpha)
    if best is None:
        raise ValueError("the held-out loss does not fall: no decreasing power law fits it")
    _, offset, scale, alpha = best
    return float(offset), float(scale), float(alpha)


def loss_at(fit, step):
    offset, scale, alpha = fit
    return offset + scale * step ** -alpha


def steps_to(fit, loss):
    """The step at which the fitted curve reaches `loss`, or None below its asymptote."""
    offset, scale, alpha = fit
    if loss <= offset:
        return None
    return (scale / (loss - offset)) ** (1 / alpha)


def parse_link(text):
    try:
        loss, score = text.split("=")
        return float(loss), float(score)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--link expects LOSS=SCORE, got {text!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", help="the main run's log (out/wsd/main.log)")
    parser.add_argument("--warmup", type=int, default=1000,
                        help="steps of warmup, left out of the fit (default 1000)")
    parser.add_argument("--at", type=int, nargs="*", default=[], help="steps to project the loss at")
    parser.add_argument("--loss", type=float, nargs="*", default=[],
                        help="main-run losses to project the steps for")
    parser.add_argument("--link", type=parse_link, nargs="*", default=[],
                        help="LOSS=SCORE of finished models, for --target")
    parser.add_argument("--target", type=float, help="the score to project the steps for")
    parser.add_argument("--decay-drop", type=float, default=None,
                        help="how far the newest decay fell below the main run at its step")
    parser.add_argument("--seconds-per-step", type=float, default=None,
                        help="to turn steps into hours")
    args = parser.parse_args()
    if args.target is not None and (len(args.link) < 2 or args.decay_drop is None):
        parser.error("--target needs two --link points or more and --decay-drop")

    with open(args.log, encoding="utf-8") as f:
        steps, losses = held_out_curve(f.read(), args.warmup)
    try:
        fit = fit_power_law(steps, losses)
    except ValueError as e:
        sys.exit(f"project_pretraining.py: {args.log}: {e}")
    offset, scale, alpha = fit
    residuals = losses - loss_at(fit, steps)

    def hours(step):
        if args.seconds_per_step is None:
            return ""
        return f" ({step * args.seconds_per_step / 3600:.1f} h at {args.seconds_per_step} s a step)"

    print(f"fit over steps {int(steps[0])}-{int(steps[-1])} ({len(steps)} points): "
          f"L(s) = {offset:.3f} + {scale:.3f} * s^-{alpha:.3f}; "
          f"residuals: rms {np.sqrt(np.mean(residuals ** 2)):.4f}, largest {np.max(np.abs(residuals)):.4f}")
    for step in args.at:
        print(f"projected main-run loss at step {step}: {loss_at(fit, step):.3f}")
    for loss in args.loss:
        step = steps_to(fit, loss)
        print(f"main-run loss {loss}: " +
              (f"step {step:,.0f}{hours(step)}" if step else f"never (the fit's floor is {offset:.3f})"))
    if args.target is not None:
        link_losses = np.array([l for l, _ in args.link])
        link_scores = np.array([s for _, s in args.link])
        slope, intercept = np.polyfit(link_losses, link_scores, 1)
        if slope >= 0:
            sys.exit("project_pretraining.py: the linked scores do not rise as the loss falls: "
                     "no projection")
        needed = (args.target - intercept) / slope
        main_loss = needed + args.decay_drop
        step = steps_to(fit, main_loss)
        print(f"score = {intercept:.1f} {slope:+.1f} * loss through {len(args.link)} models; "
              f"{args.target} needs a decayed loss of {needed:.3f}, a main-run loss of "
              f"{main_loss:.3f}: " +
              (f"step {step:,.0f}{hours(step)}" if step
               else f"never on this curve (its floor is {offset:.3f})"))


if __name__ == "__main__":
    main()
