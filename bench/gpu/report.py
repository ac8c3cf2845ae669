#!/usr/bin/env python3
"""Reports for bench/gpu/run.sh; the standard library only (no torch, no numpy).

  report.py junit DIR        one line summarising the JUnit XML reports in DIR, cuda tests apart
  report.py markdown DIR     writes DIR/RESULTS-gpu.md from DIR/env.txt, DIR/steps.tsv and
                             DIR/bench/bench.jsonl (the JSON lines of GpuLogProbsBench and bench_torch.py)
"""
import glob
import json
import os
import re
import sys
import xml.etree.ElementTree as ET


# ------------------------------------------------------------------ JUnit XML

def junit(reports_dir):
    counts = dict(tests=0, passed=0, skipped=0, failed=0, cuda_passed=0, cuda_skipped=0, cuda_failed=0)
    skip_reasons = set()
    failed_names = []
    for f in sorted(glob.glob(os.path.join(reports_dir, "TEST-*.xml"))):
        for case in ET.parse(f).getroot().iter("testcase"):
            out = case.findtext("system-out") or ""
            m = re.search(r"display-name: (.*)", out)
            name = m.group(1).strip() if m else case.get("name", "")
            cuda = re.search(r"\bcuda\b", name) is not None
            if case.find("failure") is not None or case.find("error") is not None:
                status = "failed"
                failed_names.append("%s %s" % (case.get("classname", "").rsplit(".", 1)[-1], name))
            elif case.find("skipped") is not None:
                status = "skipped"
                text = case.findtext("skipped") or ""
                r = re.search(r"Assumption failed: (.*)", text)
                if r:
                    skip_reasons.add(r.group(1).strip())
            else:
                status = "passed"
            counts["tests"] += 1
            counts[status] += 1
            if cuda:
                counts["cuda_" + status] += 1
    line = ("%(tests)d tests: %(passed)d passed, %(failed)d failed, %(skipped)d skipped; "
            "cuda: %(cuda_passed)d passed, %(cuda_failed)d failed, %(cuda_skipped)d skipped" % counts)
    if skip_reasons:
        line += " (" + "; ".join(sorted(skip_reasons)[:3]) + ")"
    if failed_names:
        line += "; failed: " + ", ".join(failed_names[:10]) + (" ..." if len(failed_names) > 10 else "")
    print(line)
    return 0


# ------------------------------------------------------------------ Markdown

def read_env(path):
    env = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if ":" in line:
                    k, v = line.split(":", 1)
                    env.setdefault(k.strip(), v.strip())
    return env


def read_steps(path):
    steps = []
    if os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 2:
                    steps.append((parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
    return steps


def read_jsonl(path):
    lines = []
    if os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        lines.append(json.loads(line))
                    except ValueError:
                        pass
    return lines


ESIZE = {"f32": 4, "bf16": 2, "f16": 2}
OPS = [("forward", "forward: logp, lse"), ("forward_entropy", "forward: logp, lse, entropy"), ("backward", "backward")]


def bytes_moved(op, rows, vocab, dtype):
    """The fewest bytes an op must move (ARCHITECTURE §9), as bench/LogProbsBenchmark counts them."""
    logits = rows * vocab * ESIZE[dtype]
    if op == "backward":
        return logits + rows * vocab * 4 + rows * 8  # reads logits, lse, g; writes an f32 gradient
    return logits + rows * (8 if op == "forward" else 12)  # reads logits; writes logp, lse (, entropy)


def fmt_ms(x):
    return "—" if x is None else ("%.4f" % x if x < 1 else "%.3f" % x if x < 10 else "%.2f" % x)


def fmt_ratio(ours, base):
    return "—" if ours is None or base is None or ours <= 0 else "%.2fx" % (base / ours)


def fmt_err(x):
    return "—" if x is None else ("inf" if x == float("inf") else "%.1e" % x)


def markdown(results_dir):
    env = read_env(os.path.join(results_dir, "env.txt"))
    steps = read_steps(os.path.join(results_dir, "steps.tsv"))
    lines = read_jsonl(os.path.join(results_dir, "bench", "bench.jsonl"))

    copies = {l.get("impl"): l for l in lines if l.get("kind") == "copy"}
    ceiling = copies.get("torch") or copies.get("rlkernels")
    ceiling_gbps = ceiling["gbps"] if ceiling else None

    def key(l):
        return (l.get("rows"), l.get("vocab"), l.get("dtype"))

    ops = {}
    errors = []
    for l in lines:
        if l.get("kind") == "op":
            impl = l["impl"] + ("-" + l["variant"] if l.get("variant") else "")
            ops[(key(l), l["op"], impl)] = l["ms"]
        elif l.get("kind") == "error":
            errors.append(l)
    acc = {(key(l), l["impl"]): l for l in lines if l.get("kind") == "accuracy"}
    cases = sorted({k for (k, _, _) in ops}, key=lambda k: (k[0] or 0, k[1] or 0, k[2] != "f32"))
    temps = sorted({l.get("temperature") for l in lines if l.get("kind") == "op"})
    inputs = [l for l in lines if l.get("kind") == "inputs"]

    md = []
    w = md.append
    w("## Token log-probs on a GPU (issue 3)")
    w("")
    gpu = env.get("gpu", "none")
    host = "host %s, %s cores, %s; %s" % (env.get("cpu", "?"), env.get("cores", "?"), env.get("memory", "?"), env.get("os", "?"))
    if "driver" in env:
        w("- Machine: %s (compute capability %s, %s GiB), NVIDIA driver %s, CUDA %s (driver API); %s."
          % (gpu, env.get("compute_capability", "?"), env.get("gpu_memory_gib", "?"), env.get("driver", "?"),
             env.get("cuda_driver", "?"), host))
    else:
        w("- Machine: no GPU (%s); %s." % (gpu[4:].strip(" ()") if gpu.startswith("none") else gpu, host))
    w("- Software: bundled JRE %s; rlkernels commit %s (%s); PyTorch %s; compute-sanitizer %s."
      % (env.get("java", "?").split(" ")[0], env.get("bundle_commit", "?"), env.get("kernels", "?"),
         env.get("torch", "not found"), env.get("compute_sanitizer", "not found")))
    w("- Date: %s. Command: `%s` in the unpacked bundle (%s)." % (env.get("date", "?"), env.get("command", "./run.sh"),
                                                                 env.get("bundle", "?")))
    if not cases:
        w("- No GPU benchmark ran: see the steps below.")
    else:
        if inputs:
            w("- Inputs: generated on the GPU by `bench_torch.py case` (torch.Generator, seed %s): logits N(0, 3²) drawn in "
              "f32 (and rounded to bf16 for bf16 rows), targets uniform in [0, V), grad_logp N(0, 1); written as .npy and "
              "read by `GpuLogProbsBench --in`, so both sides compute on the same values. Temperature %s, no ignored rows."
              % (inputs[0].get("seed"), ", ".join(str(t) for t in temps)))
        else:
            w("- Inputs: generated by GpuLogProbsBench (no PyTorch: no baselines, no accuracy check). Temperature %s."
              % ", ".join(str(t) for t in temps))
        w("- rlkernels: the `cuda` backend on device-resident tensors (`GpuLogProbsBench`); **kernel** = the launch the "
          "public call makes, replayed back to back; **API** = the public call (`backend.logProbs` / `logProbsBackward`), "
          "which also copies the target ids to the host to check them, and waits. Backward: `grad_logp` only, into a "
          "separate f32 gradient.")
        w("- PyTorch: `torch.log_softmax(logits.float() / T, -1).gather(-1, targets[:, None])` (forward: logp, lse), plus "
          "`-(ls.exp() * ls).sum(-1)` (forward: logp, lse, entropy), eager and `torch.compile(dynamic=False)`; backward = "
          "`torch.autograd.grad` of the first w.r.t. the logits with `grad_logp[:, None]`, timed alone (events around it, "
          "after an untimed forward); its gradient has the logits' dtype.")
        w("- Timing: batches of back-to-back calls; ms = the batch mean per call, median over batches (trials x repeats: %s)."
          % ", ".join(sorted({"%s x %s" % (l.get("trials"), l.get("repeats")) for l in lines if l.get("kind") == "op"})))
        if ceiling:
            extra = ""
            if "rlkernels" in copies and ceiling is not copies["rlkernels"]:
                extra = "; cuMemcpyDtoD of the same size: %.0f GB/s" % copies["rlkernels"]["gbps"]
            w("- Ceiling: device-to-device copy, %s of %d MiB: **%.0f GB/s** (bytes read + written / time, best of %s)%s."
              % ("torch `b.copy_(a)`" if ceiling["impl"] == "torch" else "cuMemcpyDtoD", ceiling["bytes"] // 2 >> 20,
                 ceiling["gbps"], ceiling.get("trials"), extra))
        else:
            w("- Ceiling: not measured.")
        w("- GB/s = bytes the op must move / time: the forward reads the logits once (N·V·element size) and writes 2–3 "
          "floats a row; the backward reads them once and writes an f32 gradient (N·V·4), for every column alike.")
    w("")
    if cases:
        w("| op | logits | N x V | rlkernels kernel ms | GB/s | of copy | torch eager ms | speed-up | torch.compile ms | "
          "speed-up | rlkernels API ms |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        for op, label in OPS:
            for k in cases:
                rows, vocab, dtype = k
                ours = ops.get((k, op, "rlkernels-kernel"))
                api = ops.get((k, op, "rlkernels-api"))
                eager = ops.get((k, op, "torch-eager"))
                comp = ops.get((k, op, "torch-compile"))
                gbps = bytes_moved(op, rows, vocab, dtype) / (ours / 1e3) / 1e9 if ours else None
                frac = "%.0f %%" % (100 * gbps / ceiling_gbps) if gbps and ceiling_gbps else "—"
                w("| %s | %s | %d x %d | %s | %s | %s | %s | %s | %s | %s | %s |"
                  % (label, dtype, rows, vocab, fmt_ms(ours), "%.0f" % gbps if gbps else "—", frac, fmt_ms(eager),
                     fmt_ratio(ours, eager), fmt_ms(comp), fmt_ratio(ours, comp), fmt_ms(api)))
        w("")
    if any(i == "rlkernels" for (_, i) in acc):
        w("Accuracy on the same inputs, against f64 (max |x − ref| / max |ref|; grad: the first 8 rows). rlkernels must be "
          "within %s." % next(l for (k, i), l in acc.items() if i == "rlkernels").get("tolerance"))
        w("")
        w("| logits | N x V | rlkernels logp | lse | entropy | grad | within | torch eager logp | entropy | grad |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for k in sorted({k for (k, _) in acc}, key=lambda k: (k[0] or 0, k[1] or 0, k[2] != "f32")):
            o = acc.get((k, "rlkernels"), {})
            t = acc.get((k, "torch-eager"), {})
            w("| %s | %d x %d | %s | %s | %s | %s | %s | %s | %s | %s |"
              % (k[2], k[0], k[1], fmt_err(o.get("logp")), fmt_err(o.get("lse")), fmt_err(o.get("entropy")),
                 fmt_err(o.get("grad_rows")), "—" if not o else "yes" if o.get("ok") else "**NO**", fmt_err(t.get("logp")), fmt_err(t.get("entropy")), fmt_err(t.get("grad_rows"))))
        w("")
    if errors:
        w("Errors and skipped measurements:")
        w("")
        for e in errors:
            w("- %s %s %s: %s" % (e.get("impl"), e.get("op", e.get("stage", "")),
                                  "%s %sx%s" % (e.get("dtype"), e.get("rows"), e.get("vocab")) if e.get("rows") else "",
                                  e.get("message")))
        w("")
    for table in ("ops.md", "linear.md"):  # GpuOpsBench and GpuLinearHeadBench write their own tables
        extra = os.path.join(results_dir, "bench", table)
        if os.path.exists(extra):
            with open(extra, encoding="utf-8") as f:
                w(f.read().rstrip("\n"))
            w("")
    w("Steps of this run (`run.sh`):")
    w("")
    w("| step | status | note |")
    w("|---|---|---|")
    for name, status, note in steps:
        w("| %s | %s | %s |" % (name, status, note.replace("|", "/")))
    w("")
    out = os.path.join(results_dir, "RESULTS-gpu.md")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    print(out)
    return 0


def main(argv):
    if len(argv) != 3 or argv[1] not in ("junit", "markdown"):
        print(__doc__, file=sys.stderr)
        return 2
    return junit(argv[2]) if argv[1] == "junit" else markdown(argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
