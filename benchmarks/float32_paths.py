"""Does float32 training give the same bits on every numeric path of one machine, where bfloat16 does not?

Issue 39, point 1. The tiny recipe trains under bfloat16 autocast (``CPUAutocastOptimWrapper``,
``retconf/engine/cpu_speed.py``); ``--cfg-options optim_wrapper.enabled=False`` trains the same
model in plain float32. This benchmark trains seed 0 of RetinaNet-Conf on the quick preset under
six *arms*, dtype {bf16 (the default), fp32} × ``ONEDNN_MAX_CPU_ISA`` {unset (the default),
AVX512_CORE, AVX2}, each arm its own ``retconf reproduce`` process with the cap in its environment
from the start (oneDNN reads it once), all on one dataset and one pretrained backbone (the first
arm's ``pretrain/`` is copied into every other run directory before it starts), so that only the
numeric path and the dtype differ. For each arm it records:

- the SHA-256 of the final checkpoint's weights, hashed as ``/work/shared/tools/state_hash.py``
  does (every floating-point tensor of ``state_dict`` in sorted key order, raw bytes), and the
  largest absolute weight difference from the same dtype's default arm;
- what oneDNN does under the arm's cap, from a probe in a fresh process with ``ONEDNN_VERBOSE=1``
  (a forward and backward channels-last convolution in the arm's dtype, batch 2, so that PyTorch
  hands a float32 one to oneDNN too): the instruction set oneDNN reports and the convolution
  kernels it ran (none: PyTorch did not call oneDNN for that dtype, its own kernels ran);
- the training's wall seconds (``summary.json``) and its seconds per iteration (decoded from the
  ``time`` of mmengine's ``scalars.json``: a running mean over its 10-iteration window, so the
  k-th iteration took k·m_k − (k−1)·m_(k−1)); the median drops the first iteration.

    python benchmarks/float32_paths.py --work /tmp/float32_paths --repeats 3 --out reports/benchmarks/float32_paths
    python benchmarks/float32_paths.py --work /tmp/float32_paths --repeats 3 --report-only   # re-read finished arms

Each arm runs ``retconf reproduce --preset quick --seeds 1 --detectors retinanet_conf --jobs 1
--no-reports`` with ``OMP_NUM_THREADS`` = ``--threads`` (default 1: the tiny recipe's trainings run
single-threaded; with ``--jobs 1`` the process would otherwise take every core). An arm whose run
directory already holds a ``summary.json`` and its final checkpoint is not retrained. The arms run
one after another, the dtypes alternating, so that a change of the machine's load falls on both.
``--repeats N`` trains every arm N times (``WORK/r<i>/<arm>``, all from the same dataset and
backbone): an arm whose repeats hash alike is deterministic, so a hash that differs between arms
is the path's doing and not run-to-run noise; its s/iter pools the repeats.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DETECTOR = "retinanet_conf"
SEED = 0
DTYPES = {"bf16": [], "fp32": ["optim_wrapper.enabled=False"]}
CAPS = [None, "AVX512_CORE", "AVX2"]  # None: ONEDNN_MAX_CPU_ISA unset

# A channels-last convolution, forward and backward, in the arm's dtype (batch 2: PyTorch sends a
# float32 convolution this small to oneDNN only with a batch above 1).
_PROBE = """import sys, torch
m = torch.nn.Conv2d(8, 8, 3).to(memory_format=torch.channels_last)
x = torch.ones(2, 8, 8, 8).to(memory_format=torch.channels_last).requires_grad_()
with torch.autocast('cpu', dtype=torch.bfloat16, enabled=sys.argv[1] == 'bf16'):
    y = m(x)
y.float().sum().backward()
"""


def arm_name(dtype: str, cap: str | None) -> str:
    return f"{dtype}-{cap or 'default'}"


def arms() -> list[tuple[str, str | None]]:
    """(dtype, cap) in run order: per cap, bf16 then fp32."""
    return [(dtype, cap) for cap in CAPS for dtype in DTYPES]


def arm_env(cap: str | None, threads: int) -> dict:
    """This process's environment with the arm's cap set (or removed) and the thread count."""
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
    if cap:
        env["ONEDNN_MAX_CPU_ISA"] = cap
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def probe(dtype: str, cap: str | None, threads: int) -> dict:
    """What oneDNN reports and runs for a ``dtype`` convolution under ``cap`` (fresh process)."""
    env = {**arm_env(cap, threads), "ONEDNN_VERBOSE": "1"}
    res = subprocess.run([sys.executable, "-c", _PROBE, dtype], env=env, capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    isa, kernels = None, []
    for line in res.stdout.splitlines():
        if ",info,cpu,isa:" in line:
            isa = line.split(",isa:", 1)[1].strip()
        parts = line.split(",")
        if ",exec,cpu,convolution," in line:
            i = parts.index("convolution")
            kernels.append(f"{parts[i + 1]} ({parts[i + 2]})")  # implementation (propagation kind)
    return {"onednn_isa": isa or "oneDNN not called", "conv_kernels": list(dict.fromkeys(kernels)),
            "returncode": res.returncode}


def state_hash(checkpoint: Path) -> dict:
    """``/work/shared/tools/state_hash.py``'s hash (every floating-point tensor of ``state_dict``,
    sorted keys, raw bytes) in full, and the tensor count."""
    import torch

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    sd = ckpt.get("state_dict", ckpt)
    h = hashlib.sha256()
    n = 0
    for key in sorted(sd):
        value = sd[key]
        if torch.is_tensor(value) and value.is_floating_point():
            h.update(value.detach().contiguous().numpy().tobytes())
            n += 1
    return {"sha256": h.hexdigest(), "tensors": n}


def max_abs_diff(a: Path, b: Path) -> float:
    """The largest absolute difference over the floating-point weights of two checkpoints."""
    import torch

    sa = torch.load(a, map_location="cpu", weights_only=False)["state_dict"]
    sb = torch.load(b, map_location="cpu", weights_only=False)["state_dict"]
    return max(float((sa[k].double() - sb[k].double()).abs().max()) if sa[k].numel() else 0.0
               for k in sa if torch.is_tensor(sa[k]) and sa[k].is_floating_point())


def iter_seconds(work_dir: Path) -> list[float]:
    """Seconds of each training iteration, decoded from ``scalars.json`` (the ``time`` it logs is
    the running mean over mmengine's 10-iteration window; the quick preset logs every iteration)."""
    files = sorted(work_dir.glob("*/vis_data/scalars.json"))
    if not files:
        return []
    means = [(r["step"], r["time"]) for r in map(json.loads, files[-1].read_text().splitlines())
             if "time" in r and "loss" in r]
    out, prev_k, prev_m = [], 0, 0.0
    for step, m in means:
        if step > 10 or step != prev_k + 1:
            break  # past the window (or a gap): not decodable from means
        out.append(step * m - prev_k * prev_m)
        prev_k, prev_m = step, m
    return out


def run_dir(work: Path, rep: int, dtype: str, cap: str | None) -> Path:
    return work / f"r{rep}" / arm_name(dtype, cap)


def checkpoint(out: Path) -> Path | None:
    cks = sorted((out / f"seed_{SEED}" / DETECTOR).glob("epoch_*.pth"))
    return cks[-1] if cks else None


def train_arm(work: Path, out: Path, dtype: str, cap: str | None, threads: int, first: Path | None) -> dict:
    """Train one arm into ``out`` (unless done) in its own process; return its wall seconds and
    the machine's load around it."""
    if (out / "summary.json").is_file() and checkpoint(out) is not None:
        print(f"{out}: done earlier, reusing it", flush=True)
        return json.loads((out / "arm.json").read_text()) if (out / "arm.json").is_file() else {}
    if first is not None and not (out / "pretrain" / "backbone.pth").is_file():
        (out / "pretrain").mkdir(parents=True, exist_ok=True)
        for f in (first / "pretrain").iterdir():
            shutil.copy2(f, out / "pretrain" / f.name)
        print(f"{out}: shared backbone copied from {first / 'pretrain'}", flush=True)
    cmd = [sys.executable, "-m", "retconf", "reproduce", "--preset", "quick", "--seeds", "1",
           "--detectors", DETECTOR, "--jobs", "1", "--no-reports", "--out", str(out),
           "--data-root", str(work / "data")]
    if DTYPES[dtype]:
        cmd += ["--cfg-options", *DTYPES[dtype]]
    print(f"\n=== {out}: ONEDNN_MAX_CPU_ISA={cap or '(unset)'} OMP_NUM_THREADS={threads}: {' '.join(cmd[1:])}",
          flush=True)
    load0 = os.getloadavg()[0]
    t = time.time()
    subprocess.run(cmd, env=arm_env(cap, threads), cwd=ROOT, check=True)
    rec = {"command_wall_s": round(time.time() - t, 1), "loadavg_1min_before": round(load0, 2),
           "loadavg_1min_after": round(os.getloadavg()[0], 2)}
    (out / "arm.json").write_text(json.dumps(rec, indent=1))
    return rec


def _repeat(out: Path) -> dict:
    """One finished training of an arm: hash, seconds, per-iteration seconds."""
    summary = json.loads((out / "summary.json").read_text())
    its = iter_seconds(out / f"seed_{SEED}" / DETECTOR)
    ck = checkpoint(out)
    arm = json.loads((out / "arm.json").read_text()) if (out / "arm.json").is_file() else {}
    return {"run_dir": str(out), "checkpoint": str(ck), **state_hash(ck),
            "train_s": summary["seconds"].get(f"seed_{SEED}/{DETECTOR}/train"),
            "iter_s": [round(x, 4) for x in its], **arm,
            "machine": summary.get("machine"), "metrics": summary["metrics"][str(SEED)][DETECTOR]}


def measure(work: Path, threads: int, repeats: int) -> dict:
    """Every arm's record: its repeats, the oneDNN probe, whether its bits equal the same dtype's
    default arm, its seconds."""
    from retconf.machine import cpu_name

    records = []
    for dtype, cap in arms():
        reps = [_repeat(run_dir(work, r, dtype, cap)) for r in range(repeats)]
        later_iters = [x for rep in reps for x in rep["iter_s"][1:]]  # the first iteration warms up
        records.append({
            "arm": arm_name(dtype, cap), "dtype": dtype, "cap": cap or "unset",
            "sha256": reps[0]["sha256"], "tensors": reps[0]["tensors"], "checkpoint": reps[0]["checkpoint"],
            "deterministic": len({rep["sha256"] for rep in reps}) == 1,
            "probe": probe(dtype, cap, threads),
            "probe_other_dtype": probe("fp32" if dtype == "bf16" else "bf16", cap, threads),
            "train_s": round(statistics.median(rep["train_s"] for rep in reps), 2),
            "iter_s_median_after_first": round(statistics.median(later_iters), 4) if later_iters else None,
            "repeats": reps})
    by = {(r["dtype"], r["cap"]): r for r in records}
    for r in records:
        base = by[(r["dtype"], "unset")]
        r["same_as_default"] = r["sha256"] == base["sha256"]
        r["max_abs_diff_vs_default"] = (0.0 if r["same_as_default"]
                                        else max_abs_diff(Path(base["checkpoint"]), Path(r["checkpoint"])))
    ratios = {}
    for cap in ["unset", *[c for c in CAPS if c]]:
        b, f = by[("bf16", cap)], by[("fp32", cap)]
        ratios[cap] = {"train_s": round(f["train_s"] / b["train_s"], 3),
                       "iter_s": (round(f["iter_s_median_after_first"] / b["iter_s_median_after_first"], 3)
                                  if f["iter_s_median_after_first"] and b["iter_s_median_after_first"] else None),
                       # repeat by repeat (the two arms of a repeat ran one after the other)
                       "iter_s_per_repeat": [round(statistics.median(rf["iter_s"][1:]) / statistics.median(rb["iter_s"][1:]), 3)
                                             for rb, rf in zip(b["repeats"], f["repeats"])
                                             if len(rb["iter_s"]) > 1 and len(rf["iter_s"]) > 1]}
    result = {"cpu": cpu_name(), "threads": threads, "repeats": repeats, "detector": DETECTOR, "seed": SEED,
              "preset": "quick",
              "hashing": "sha256 over every floating-point tensor of state_dict, sorted keys, raw bytes "
                         "(/work/shared/tools/state_hash.py; the integer num_batches_tracked buffers are left out)",
              "arms": records, "fp32_over_bf16": ratios}
    result["answer"] = answer(result)
    return result


def _kernel(r: dict) -> str:
    """The forward convolution kernel oneDNN ran for the arm's dtype ("PyTorch's own" when none)."""
    fwd = [k.split(" (")[0] for k in r["probe"]["conv_kernels"] if "forward" in k]
    return ", ".join(fwd) if fwd else "PyTorch's own (oneDNN not called)"


def answer(result: dict) -> str:
    """The paragraph that answers the question, from the measurements."""
    arms_ = result["arms"]
    parts = []
    for dtype in DTYPES:
        rows = [r for r in arms_ if r["dtype"] == dtype]
        groups: dict[str, list[dict]] = {}
        for r in rows:
            groups.setdefault(r["sha256"], []).append(r)
        desc = "; ".join(" = ".join(f"{r['cap']} ({_kernel(r)})" for r in g) + f" → `{h[:16]}`"
                         for h, g in groups.items())
        diffs = [r["max_abs_diff_vs_default"] for r in rows if not r["same_as_default"]]
        parts.append(f"**{dtype}**: {len(groups)} distinct result{'s' * (len(groups) > 1)} over the three caps "
                     f"({desc})" + (f", differing from the default arm by at most {max(diffs):.1e} in any weight"
                                    if diffs else ""))
    by = {(r["dtype"], r["cap"]): r for r in arms_}
    same_path = []  # arms whose cap left every probed convolution kernel of their dtype as the default's
    for r in arms_:
        base = by[(r["dtype"], "unset")]
        if r is not base and r["probe"]["conv_kernels"] and r["probe"]["conv_kernels"] == base["probe"]["conv_kernels"]:
            same_path.append(r)
            parts.append(f"{r['arm']} runs the same convolution kernels as {base['arm']} (forward, backward data and "
                         f"weights: {', '.join(k.split(' (')[0] for k in r['probe']['conv_kernels'])}) although oneDNN "
                         f"reports a different ISA cap (\"{r['probe']['onednn_isa']}\" against \"{base['probe']['onednn_isa']}\"): "
                         f"the cap names an ISA that path already uses, so {'their equal bits are' if r['same_as_default'] else 'it is'} "
                         f"one path run twice, not two paths agreeing")
    det = [r["arm"] for r in arms_ if not r["deterministic"]]
    rep = (f"Each arm was trained {result['repeats']} times and "
           + ("every arm's repeats gave identical bits, so a differing hash is the path's doing, not run-to-run noise."
              if not det else f"the repeats of {', '.join(det)} did not agree bit for bit."))
    ratio = result["fp32_over_bf16"]
    default = ratio["unset"]
    per = default["iter_s_per_repeat"]
    noise = ""
    for r in same_path:
        if r["same_as_default"]:
            base = by[(r["dtype"], "unset")]
            noise = (f" {base['arm']} and {r['arm']} computed the same bits with the same kernels yet took "
                     f"{base['iter_s_median_after_first']:.3f} and {r['iter_s_median_after_first']:.3f} s/iter: that "
                     f"is how much the machine's load moved a step time while this ran.")
    fp32 = [r for r in arms_ if r["dtype"] == "fp32"]
    bf16 = [r for r in arms_ if r["dtype"] == "bf16"]
    d32 = max(r["max_abs_diff_vs_default"] for r in fp32)
    d16 = max(r["max_abs_diff_vs_default"] for r in bf16)
    if len({r["sha256"] for r in fp32}) == 1:
        lead = "**Yes**: float32 training gave one result on every path this machine offered."
    else:
        other = [r for r in fp32 if not r["same_as_default"]]
        lead = (f"**No**: float32 training gave the same bits only where the cap left its kernels as they were; "
                f"on a path with other float32 kernels ({', '.join(r['cap'] for r in other)}) its weights differ, "
                f"though by at most {d32:.1e} against {d16:.1e} for bfloat16 (about {d16 / d32:.0f}× less) after "
                f"the quick preset's 4 iterations.")
    return (lead + " " + " ".join(f"{p}." for p in parts) + " " + rep
            + f" Step time fp32/bf16 on the default path: {default['iter_s']:.2f}× per iteration (median of "
            f"iterations 2–4 of every repeat; repeat by repeat {min(per):.2f}–{max(per):.2f}×) and "
            f"{default['train_s']:.2f}× the training stage's wall time (which also holds model building, "
            f"validation and the checkpoint)." + noise + f" Under the caps bf16 loses its native kernels and fp32 "
            f"is the faster one (per iteration {ratio['AVX512_CORE']['iter_s']:.2f}× under AVX512_CORE, "
            f"{ratio['AVX2']['iter_s']:.2f}× under AVX2).")


def _fmt_ratio(ratios: dict, key: str) -> str:
    vals = [v[key] for v in ratios.values() if v[key] is not None]
    return " / ".join(f"{v:.2f}" for v in vals)


def markdown(result: dict, command: str) -> str:
    arms_ = result["arms"]
    lines = ["# float32 against bfloat16 training across oneDNN numeric paths", "",
             f"Quick preset, {result['detector']} seed {result['seed']}, {result['repeats']} training(s) per arm "
             f"(`OMP_NUM_THREADS={result['threads']}`, `--jobs 1`), one dataset and one pretrained backbone for all "
             f"arms; CPU: {result['cpu']}, shared with other work while it ran. Command: `{command}`.", "",
             "Hash: SHA-256 of every floating-point tensor of the final checkpoint's `state_dict` "
             "(as `/work/shared/tools/state_hash.py`). \"Same as default\" compares with the arm of the same "
             "dtype with `ONEDNN_MAX_CPU_ISA` unset. oneDNN ISA and kernel: a probe convolution (forward and "
             "backward, the arm's dtype, channels-last) under the arm's cap in a fresh process; the table names "
             "the forward kernel. Train s: the training stage of `summary.json` (median over repeats). "
             "s/iter: median of iterations 2–4 of every repeat (the quick preset has 4 iterations).", "",
             "| arm | oneDNN ISA | conv kernel | hash prefix | same as default? | repeats identical? | "
             "max abs Δ vs default | train s | s/iter |", "|---|---|---|---|---|---|---|---|---|"]
    for r in arms_:
        isa = r["probe"]["onednn_isa"] if r["probe"]["conv_kernels"] else "— (oneDNN not called)"
        s_it = r["iter_s_median_after_first"]
        lines.append(f"| {r['arm']} | {isa} | {_kernel(r)} | `{r['sha256'][:16]}` | "
                     f"{'yes' if r['same_as_default'] else 'no'} | {'yes' if r['deterministic'] else 'no'} | "
                     f"{r['max_abs_diff_vs_default']:.1e} | {r['train_s']:.1f} | "
                     f"{f'{s_it:.3f}' if s_it is not None else 'n/a'} |")
    lines += ["", "fp32 / bf16 per cap (unset / AVX512_CORE / AVX2): s/iter "
              f"{_fmt_ratio(result['fp32_over_bf16'], 'iter_s')}; training stage "
              f"{_fmt_ratio(result['fp32_over_bf16'], 'train_s')}.", "",
              "## Answer", "", result["answer"], "",
              "Scope: one machine, the quick preset (4 iterations of one epoch; how far apart the paths drift over "
              "a full training is not measured here), one thread per training. The times come from a machine that "
              "other trainings shared, so single step times move by tens of percent; the bit results do not "
              "depend on that.", ""]
    if result.get("note"):
        lines += [result["note"], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default=str(ROOT / "runs" / "float32_paths"),
                   help="where the shared dataset and the arms' run directories go")
    p.add_argument("--out", default=str(ROOT / "reports" / "benchmarks" / "float32_paths"))
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every arm (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="trainings per arm (default 3)")
    p.add_argument("--report-only", action="store_true", help="do not train; read the finished arms")
    p.add_argument("--note", help="a file whose markdown is added to the page after the answer")
    args = p.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    first = None  # the first arm's run directory: its pretrained backbone is every other arm's
    for rep in range(args.repeats):
        for dtype, cap in arms():
            out = run_dir(work, rep, dtype, cap)
            if not args.report_only:
                train_arm(work, out, dtype, cap, args.threads, first)
            first = first or out
    result = measure(work, args.threads, args.repeats)
    if args.note:
        result["note"] = Path(args.note).read_text().strip()
    command = "python benchmarks/float32_paths.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result["command"] = command
    from benchmarks.results import write_results

    write_results(args.out, result, markdown(result, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
