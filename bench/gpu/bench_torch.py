#!/usr/bin/env python3
"""PyTorch baselines for bench/gpu: token log-probs forward and backward, and the
device-to-device copy rate that serves as the bandwidth ceiling. Prints one JSON object per line
on stdout (logs go to stderr); bench/gpu/report.py joins them with GpuLogProbsBench's lines.

  bench_torch.py check                      torch version, CUDA device; exit 3 without torch, 4 without CUDA
  bench_torch.py copy [--mib 2048]          b.copy_(a) on the device: bytes read + written / time, best of the trials
  bench_torch.py case --rows N --vocab V --dtype f32|bf16 --work DIR [...]
      generates the inputs on the device from --seed, writes them to DIR as .npy for
      GpuLogProbsBench (bf16 as uint16 bits), writes f64 reference outputs (ref_*.npy), and times
      the PyTorch baselines on the same tensors
  bench_torch.py compare --work DIR         numpy only: GpuLogProbsBench's outputs (DIR/ours/*.npy)
                                            against the f64 reference
  bench_torch.py linear --rows N --hidden D --vocab V --dtype bf16 [--md FILE]
      log-probs from hidden states as PyTorch trainers write them (logits = h @ w.T, log_softmax,
      gather, backward into h and w), eager and torch.compile: ms a step and peak device memory
      beyond h, w and their gradients (torch.cuda.max_memory_allocated); appends a table to FILE

Timing: CUDA events around `trials` batches of `repeats` back-to-back calls; the figure is the
batch mean (median and minimum over batches). The backward is timed alone: each iteration runs
the forward untimed, then CUDA events bracket torch.autograd.grad.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import time

EXIT_NO_TORCH = 3
EXIT_NO_CUDA = 4
GRAD_ROWS = 8


def log(msg):
    print("bench_torch: " + msg, file=sys.stderr, flush=True)


def emit(**kv):
    print(json.dumps(kv), flush=True)


def import_torch():
    try:
        import torch  # noqa: F401
        return torch
    except Exception as e:  # ImportError, or a broken install
        log("skipped: no torch (%s: %s)" % (type(e).__name__, e))
        sys.exit(EXIT_NO_TORCH)


class Timer:
    """CUDA events on a GPU; perf_counter on the CPU (only for trying the script without a GPU)."""

    def __init__(self, torch, device):
        self.torch = torch
        self.cuda = device.startswith("cuda")

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def mark(self):
        if self.cuda:
            e = self.torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def ms(self, start, end):
        if self.cuda:
            end.synchronize()
            return start.elapsed_time(end)
        return (end - start) * 1e3


def batches(timer, fn, warmup, repeats, trials):
    """ms per call: median and minimum over `trials` batches of `repeats` back-to-back calls."""
    for _ in range(warmup):
        fn()
    timer.sync()
    per_call = []
    for _ in range(trials):
        s = timer.mark()
        for _ in range(repeats):
            fn()
        e = timer.mark()
        per_call.append(timer.ms(s, e) / repeats)
    return statistics.median(per_call), min(per_call)


def backward_batches(timer, torch, fwd, x, y, gout, warmup, repeats, trials):
    """The backward alone: an untimed forward, then events around torch.autograd.grad."""
    xl = x.detach().requires_grad_(True)

    def once():
        out = fwd(xl, y)
        s = timer.mark()
        (gx,) = torch.autograd.grad(out, xl, gout)
        e = timer.mark()
        del gx, out
        return s, e

    for _ in range(warmup):
        once()
    timer.sync()
    per_call = []
    for _ in range(trials):
        marks = [once() for _ in range(repeats)]
        timer.sync()
        per_call.append(sum(timer.ms(s, e) for s, e in marks) / repeats)
    return statistics.median(per_call), min(per_call)


def cmd_check(args):
    torch = import_torch()
    info = {"kind": "torch_env", "torch": torch.__version__, "torch_cuda": torch.version.cuda,
            "python": sys.version.split()[0], "cuda_available": bool(torch.cuda.is_available()),
            "compile": hasattr(torch, "compile")}
    if info["cuda_available"]:
        p = torch.cuda.get_device_properties(0)
        info.update(device=p.name, capability="%d.%d" % (p.major, p.minor), memory_gib=round(p.total_memory / 2**30, 1))
    emit(**info)
    if not info["cuda_available"] and args.device.startswith("cuda"):
        log("skipped: torch %s sees no CUDA device" % torch.__version__)
        return EXIT_NO_CUDA
    return 0


def cmd_copy(args):
    torch = import_torch()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        log("skipped: no CUDA device")
        return EXIT_NO_CUDA
    timer = Timer(torch, args.device)
    n = args.mib << 20
    a = torch.empty(n, dtype=torch.uint8, device=args.device).fill_(1)
    b = torch.empty_like(a)
    best = float("inf")
    for i in range(args.trials + 2):
        s = timer.mark()
        b.copy_(a)
        e = timer.mark()
        if i >= 2:  # two warm-up copies
            best = min(best, timer.ms(s, e))
    emit(kind="copy", impl="torch", method="copy_", bytes=2 * n, ms=best, gbps=2 * n / (best / 1e3) / 1e9,
         trials=args.trials)
    return 0


DTYPES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def make_inputs(torch, rows, vocab, dtype, seed, device):
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    z = torch.randn(rows, vocab, generator=g, device=device, dtype=torch.float32).mul_(3.0)
    if dtype != "f32":
        z = z.to(getattr(torch, DTYPES[dtype]))
    y = torch.randint(0, vocab, (rows,), generator=g, device=device, dtype=torch.int64)
    gu = torch.randn(rows, generator=g, device=device, dtype=torch.float32)
    return z, y, gu


def save_inputs(np, torch, work, z, y, gu, dtype):
    host = z.cpu()
    if dtype == "bf16":
        arr = host.view(torch.int16).numpy().view(np.uint16)  # bf16 travels as uint16 bits
    else:
        arr = host.numpy()
    for name, a in (("targets", y.cpu().numpy()), ("grad_logp", gu.cpu().numpy()), ("logits", arr)):
        path = os.path.join(work, name + ".npy")
        with open(path + ".part", "wb") as f:  # renamed when complete: GpuLogProbsBench never sees half a file
            np.save(f, a)
        os.replace(path + ".part", path)


def reference(np, torch, work, z, y, gu, temperature):
    """f64 logp, lse and entropy of every row, and the gradient of the first rows; saved as ref_*.npy."""
    rows, vocab = z.shape
    chunk = max(1, (1 << 31) // (vocab * 8 * 3))
    logp, lse, ent = [], [], []
    for i0 in range(0, rows, chunk):
        zc = z[i0:i0 + chunk].double() / temperature
        l = torch.logsumexp(zc, -1)
        logp.append((zc.gather(-1, y[i0:i0 + chunk, None]).squeeze(-1) - l).cpu())
        p = torch.exp(zc - l[:, None])
        ent.append((l - (p * zc).sum(-1)).cpu())
        lse.append(l.cpu())
        del zc, p
    k = min(rows, GRAD_ROWS)
    zc = z[:k].double() / temperature
    p = torch.softmax(zc, -1)
    onehot = torch.zeros_like(p).scatter_(-1, y[:k, None], 1.0)
    grad = gu[:k, None].double() * (onehot - p) / temperature
    out = {"logp": torch.cat(logp), "lse": torch.cat(lse), "entropy": torch.cat(ent), "grad_rows": grad.cpu()}
    for name, t in out.items():
        np.save(os.path.join(work, "ref_%s.npy" % name), t.numpy())
    return out


def normwise(np, got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return None
    scale = float(np.max(np.abs(want))) or 1.0
    d = np.abs(got - want)
    if not np.all(np.isfinite(got)):
        return float("inf")
    return float(np.max(d)) / scale


def cmd_case(args):
    torch = import_torch()
    import numpy as np

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        log("skipped: no CUDA device")
        return EXIT_NO_CUDA
    timer = Timer(torch, args.device)
    rows, vocab, dtype, T = args.rows, args.vocab, args.dtype, args.temperature
    ident = dict(rows=rows, vocab=vocab, dtype=dtype, temperature=T)
    os.makedirs(args.work, exist_ok=True)
    t0 = time.time()
    z, y, gu = make_inputs(torch, rows, vocab, dtype, args.seed, args.device)
    esize = 4 if dtype == "f32" else 2
    need = rows * vocab * esize + rows * 12 + 4096
    free = shutil.disk_usage(args.work).free
    if free < need * 1.1:
        emit(kind="error", impl="torch", stage="inputs", message="not enough disk for the inputs in %s: %.1f GiB needed, %.1f GiB free"
             % (args.work, need / 2**30, free / 2**30), **ident)
        return 1
    save_inputs(np, torch, args.work, z, y, gu, dtype)
    log("inputs %s[%d, %d] written to %s in %.1f s" % (dtype, rows, vocab, args.work, time.time() - t0))
    ref = reference(np, torch, args.work, z, y, gu, T)
    emit(kind="inputs", impl="torch", seed=args.seed, work=args.work, **ident)

    def fwd_logp(x, t):
        return torch.log_softmax(x.float() / T, -1).gather(-1, t[:, None])

    def fwd_logp_entropy(x, t):
        ls = torch.log_softmax(x.float() / T, -1)
        return ls.gather(-1, t[:, None]), -(ls.exp() * ls).sum(-1)

    # accuracy of the eager baseline against the same f64 reference, for context
    try:
        with torch.no_grad():
            lp, h = fwd_logp_entropy(z, y)
            acc = dict(logp=normwise(np, lp.squeeze(-1).cpu().numpy(), ref["logp"].numpy()),
                       entropy=normwise(np, h.cpu().numpy(), ref["entropy"].numpy()))
            del lp, h
        xl = z.detach().requires_grad_(True)
        (gx,) = torch.autograd.grad(fwd_logp(xl, y), xl, gu[:, None])
        acc["grad_rows"] = normwise(np, gx[:GRAD_ROWS].float().cpu().numpy(), ref["grad_rows"].numpy())
        del gx, xl
        emit(kind="accuracy", impl="torch-eager", **acc, **ident)
    except Exception as e:  # out of memory on a small GPU: the timings below may still fit
        emit(kind="error", impl="torch-eager", stage="accuracy", oom="out of memory" in str(e).lower(),
             message="%s: %s" % (type(e).__name__, str(e).splitlines()[0][:300]), **ident)
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()

    impls = [("torch-eager", fwd_logp, fwd_logp_entropy)]
    if args.no_compile:
        emit(kind="skipped", impl="torch-compile", reason="--no-compile", **ident)
    elif not hasattr(torch, "compile"):
        emit(kind="skipped", impl="torch-compile", reason="torch %s has no torch.compile" % torch.__version__, **ident)
    else:
        try:
            import torch._dynamo as dynamo
            for knob in ("cache_size_limit", "recompile_limit"):
                if hasattr(dynamo.config, knob):
                    setattr(dynamo.config, knob, max(64, getattr(dynamo.config, knob)))
        except Exception:
            pass
        impls.append(("torch-compile", torch.compile(fwd_logp, dynamic=False), torch.compile(fwd_logp_entropy, dynamic=False)))

    rc = 0
    gout = gu[:, None]
    for impl, f, fh in impls:
        for op in ("forward", "forward_entropy", "backward"):
            t1 = time.time()
            try:
                if op == "backward":
                    med, mn = backward_batches(timer, torch, f, z, y, gout, args.warmup, args.repeats, args.trials)
                else:
                    fn = f if op == "forward" else fh
                    with torch.no_grad():
                        med, mn = batches(timer, lambda: fn(z, y), args.warmup, args.repeats, args.trials)
                emit(kind="op", impl=impl, op=op, variant="", ms=med, ms_min=mn, repeats=args.repeats, trials=args.trials,
                     **ident)
                log("%-13s %-16s %9.4f ms (min %.4f; %.0f s with warm-up%s)"
                    % (impl, op, med, mn, time.time() - t1, " and compilation" if impl == "torch-compile" else ""))
            except Exception as e:  # out of memory, a compiler failure: recorded, and the next one runs
                oom = "out of memory" in str(e).lower()
                emit(kind="error", impl=impl, op=op, oom=oom, message="%s: %s" % (type(e).__name__, str(e).splitlines()[0][:300]),
                     **ident)
                log("%s %s failed: %s" % (impl, op, e))
                if args.device.startswith("cuda"):
                    torch.cuda.empty_cache()
                if not oom:
                    rc = 1
    return rc


def cmd_compare(args):
    import numpy as np

    work, ours = args.work, os.path.join(args.work, "ours")
    out = {}
    for name in ("logp", "lse", "entropy", "grad_rows"):
        try:
            out[name] = normwise(np, np.load(os.path.join(ours, name + ".npy")), np.load(os.path.join(work, "ref_%s.npy" % name)))
        except FileNotFoundError as e:
            out[name] = None
            log("compare: %s" % e)
    ok = all(v is not None and v <= args.tolerance for v in out.values())
    emit(kind="accuracy", impl="rlkernels", tolerance=args.tolerance, ok=ok, rows=args.rows, vocab=args.vocab,
         dtype=args.dtype, temperature=args.temperature, **out)
    return 0 if ok else 1


def cmd_linear(args):
    torch = import_torch()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        log("skipped: no CUDA device")
        return EXIT_NO_CUDA
    timer = Timer(torch, args.device)
    n, d, v = args.rows, args.hidden, args.vocab
    dt = getattr(torch, DTYPES[args.dtype])
    gen = torch.Generator(device=args.device).manual_seed(args.seed)
    h = torch.randn(n, d, generator=gen, device=args.device).to(dt).requires_grad_(True)
    w = (torch.randn(v, d, generator=gen, device=args.device) / d ** 0.5).to(dt).requires_grad_(True)
    y = torch.randint(0, v, (n,), generator=gen, device=args.device)
    g = torch.randn(n, generator=gen, device=args.device) / n

    def step(hh, ww, yy, gg):
        logp = torch.log_softmax((hh @ ww.t()).float(), -1).gather(-1, yy[:, None]).squeeze(-1)
        (logp * gg).sum().backward()

    ident = dict(rows=n, hidden=d, vocab=v, dtype=args.dtype)
    rows = []
    impls = [("torch-eager", step)]
    if not args.no_compile and hasattr(torch, "compile"):
        impls.append(("torch-compile", torch.compile(step, dynamic=False)))
    rc = 0
    for impl, fn in impls:
        try:
            def once():
                h.grad = None
                w.grad = None
                fn(h, w, y, g)
            for _ in range(args.warmup):
                once()
            timer.sync()
            h.grad = None
            w.grad = None
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated() if args.device.startswith("cuda") else 0
            times = []
            for _ in range(args.trials):
                s = timer.mark()
                once()
                e = timer.mark()
                times.append(timer.ms(s, e))
            grads = h.grad.numel() * h.grad.element_size() + w.grad.numel() * w.grad.element_size()
            peak = (torch.cuda.max_memory_allocated() - before - grads) if args.device.startswith("cuda") else float("nan")
            med = statistics.median(times)
            emit(kind="linear", impl=impl, ms=med, ms_min=min(times), peak_beyond_bytes=peak, trials=args.trials, **ident)
            rows.append("| %s | %.2f | %.1f MB |" % (impl, med, peak / 1e6))
            log("%-13s linear %9.2f ms, peak beyond h, w and grads %.1f MB" % (impl, med, peak / 1e6))
        except Exception as e:  # out of memory, a compiler failure: recorded, the next one runs
            oom = "out of memory" in str(e).lower()
            emit(kind="error", impl=impl, op="linear", oom=oom, message="%s: %s" % (type(e).__name__, str(e).splitlines()[0][:300]),
                 **ident)
            rows.append("| %s | %s | |" % (impl, "out of memory" if oom else "failed: " + type(e).__name__))
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
            if not oom:
                rc = 1
    if args.md:
        with open(args.md, "a", encoding="utf-8") as f:
            f.write("\nPyTorch %s on the same sizes (its own random data; a step: h @ w.T, log_softmax, gather, backward "
                    "into bf16 h and w), median of %d steps:\n\n| impl | ms a step | device memory beyond h, w and their "
                    "gradients |\n|---|---|---|\n%s\n" % (torch.__version__, args.trials, "\n".join(rows)))
    return rc


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # "cpu" tries the script without a GPU
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check")
    c = sub.add_parser("copy")
    c.add_argument("--mib", type=int, default=2048)
    c.add_argument("--trials", type=int, default=10)
    for name in ("case", "compare"):
        s = sub.add_parser(name)
        s.add_argument("--rows", type=int, required=True)
        s.add_argument("--vocab", type=int, required=True)
        s.add_argument("--dtype", choices=sorted(DTYPES), required=True)
        s.add_argument("--temperature", type=float, default=1.0)
        s.add_argument("--work", required=True)
        if name == "case":
            s.add_argument("--seed", type=int, default=1234)
            s.add_argument("--repeats", type=int, default=20)
            s.add_argument("--trials", type=int, default=10)
            s.add_argument("--warmup", type=int, default=3)
            s.add_argument("--no-compile", action="store_true")
        else:
            s.add_argument("--tolerance", type=float, default=1e-4)
    li = sub.add_parser("linear")
    li.add_argument("--rows", type=int, default=16384)
    li.add_argument("--hidden", type=int, default=4096)
    li.add_argument("--vocab", type=int, default=151936)
    li.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    li.add_argument("--seed", type=int, default=1234)
    li.add_argument("--trials", type=int, default=5)
    li.add_argument("--warmup", type=int, default=2)
    li.add_argument("--no-compile", action="store_true")
    li.add_argument("--md", default=None)
    args = p.parse_args()
    return {"check": cmd_check, "copy": cmd_copy, "case": cmd_case, "compare": cmd_compare,
            "linear": cmd_linear}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
