#!/usr/bin/env python3
"""report.py: turns a bench run's raw TSV into the results table (markdown + stdout) and plots.

usage: report.py OUTDIR STEM          write OUTDIR/STEM.md and OUTDIR/STEM-*.png, print the table
       report.py --check FILE.md      exit 0 when FILE.md is a well-formed results table

Every figure is the median over rounds, with min and max. A ratio is computed per round
(case / baseline measured in that same round) and the median of those ratios is shown, so
that drift between rounds (a noisy machine) cancels out.
"""
import collections
import os
import re
import statistics
import subprocess
import sys

TCP_CASES = ["direct", "iptables", "ebpf", "ebpf_sockmap", "l4_fastpath"]
HTTP_CASES = ["haproxy", "nginx", "shunt_l7", "shunt_capture_http"]
XDS_CASES = ["xds_sotw", "xds_delta"]
LABELS = {
    "direct": "direct (no mesh)",
    "iptables": "iptables REDIRECT + shunt proxy",
    "ebpf": "eBPF capture, sk_msg off",
    "ebpf_sockmap": "eBPF capture + sk_msg",
    "l4_fastpath": "same-node L4 fast path",
    "haproxy": "HAProxy (L7 reverse proxy)",
    "nginx": "nginx (L7 reverse proxy)",
    "shunt_l7": "shunt (L7 reverse proxy, --config)",
    "shunt_capture_http": "shunt L4 capture path, HTTP (not L7)",
    "xds_sotw": "xDS scale push, state of the world",
    "xds_delta": "xDS scale push, delta",
}
# measure -> (unit, higher is better)
MEASURES = collections.OrderedDict([
    ("lat_p50", ("us", False)),
    ("lat_p90", ("us", False)),
    ("lat_p99", ("us", False)),
    ("lat_p999", ("us", False)),
    ("tps", ("tx/s", True)),
    ("cps", ("conn/s", True)),
    ("bulk_1k_mbps", ("Mbit/s", True)),
    ("bulk_64k_mbps", ("Mbit/s", True)),
    ("rps", ("req/s", True)),
    ("rps_per_core", ("req/s per proxy core", True)),
    ("rps_per_core_workers", ("req/s per core of shuntd's worker threads", True)),
    ("proxy_cpu_us_per_req", ("us CPU", False)),
    ("cpu_us_per_req", ("us CPU (client+server+shuntd)", False)),
    ("shuntd_cpu_us_per_req", ("us CPU (all shuntd threads)", False)),
    ("shuntd_worker_cpu_us_per_req", ("us CPU (shuntd worker threads)", False)),
    ("rss_idle_kb", ("KiB", False)),
    ("rss_load_kb", ("KiB", False)),
    ("rss_per_10k_idle_kb", ("KiB", False)),
    ("idle_conns_opened", ("conns", True)),
    ("xds_maps_ms", ("ms from push to kernel service maps written", False)),
    ("xds_apply_ms", ("ms from push to snapshot active", False)),
    ("xds_shuntd_apply_ms", ("ms of that in shuntd's apply (translate, publish, maps)", False)),
    ("xds_rss_before_kb", ("KiB", False)),
    ("xds_rss_kb", ("KiB", False)),
])
BASELINES = {
    "iptables": ["direct"],
    "ebpf": ["direct", "iptables"],
    "ebpf_sockmap": ["direct", "iptables", "ebpf"],
    "nginx": ["haproxy"],
    "shunt_l7": ["haproxy", "nginx"],
    "shunt_capture_http": ["haproxy", "nginx"],
}
# (description, case, measure, baseline or None for an absolute bound, op, bound)
TARGETS = [
    ("eBPF vs iptables capture: p99 latency", "ebpf_sockmap", "lat_p99", "iptables", "<=", 0.8),
    ("eBPF vs iptables capture: connections/s", "ebpf_sockmap", "cps", "iptables", ">=", 1.3),
    ("sk_msg vs plain loopback (app<->proxy hop): 1 KB throughput", "ebpf_sockmap",
     "bulk_1k_mbps", "ebpf", ">=", 1.3),
    ("L7 vs HAProxy: rps per core", "shunt_l7", "rps_per_core", "haproxy", ">=", 1.0),
    ("L7 vs nginx: rps per core", "shunt_l7", "rps_per_core", "nginx", ">=", 1.2),
    ("L7: shuntd RSS at 1000 rps / 100 connections", "shunt_l7", "rss_load_kb", None, "<=",
     8192),
    ("L4 capture path: shuntd RSS at 1000 rps / 100 connections", "ebpf_sockmap",
     "rss_load_kb", None, "<=", 8192),
    ("xDS push of 10,000 clusters and services (100 in bench-smoke): to maps written",
     "xds_sotw", "xds_maps_ms", None, "<=", 1000),
    ("xDS push of 10,000 clusters and services (100 in bench-smoke): to snapshot active",
     "xds_sotw", "xds_apply_ms", None, "<=", 1000),
    ("xDS push of 10,000 clusters and services (100 in bench-smoke): to maps written",
     "xds_delta", "xds_maps_ms", None, "<=", 1000),
    ("xDS push of 10,000 clusters and services (100 in bench-smoke): to snapshot active",
     "xds_delta", "xds_apply_ms", None, "<=", 1000),
    ("xDS push of 10,000 clusters and services (100 in bench-smoke): shuntd RSS after",
     "xds_sotw", "xds_rss_kb", None, "<=", 204800),
    ("xDS push of 10,000 clusters and services (100 in bench-smoke): shuntd RSS after",
     "xds_delta", "xds_rss_kb", None, "<=", 204800),
]
HEADER = "| case | measure | unit | median | min | max | ratio to baseline (same run) |"


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def load(outdir, stem):
    vals = collections.defaultdict(dict)  # (case, measure) -> {round: value}
    status = {}
    failed = collections.defaultdict(int)
    with open(os.path.join(outdir, stem + ".raw.tsv")) as f:
        next(f)
        for line in f:
            rnd, case, measure, value = line.rstrip("\n").split("\t", 3)
            if measure == "status":
                status[case] = value
            elif measure.endswith(".failed"):
                failed[(case, measure[:-7])] += 1
            elif value:
                try:
                    vals[(case, measure)][int(rnd)] = float(value)
                except ValueError:
                    pass
    env = collections.OrderedDict()
    with open(os.path.join(outdir, stem + ".env.tsv")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            env[k] = v
    return vals, status, failed, env


def ratio(vals, case, base, measure):
    a, b = vals.get((case, measure), {}), vals.get((base, measure), {})
    rs = [a[r] / b[r] for r in a if r in b and b[r]]
    return statistics.median(rs) if rs else None


def table(vals, status, failed, cases):
    rows = [HEADER, "|---|---|---|---:|---:|---:|---|"]
    for case in cases:
        if case in status:
            rows.append("| %s | all | - | %s | - | - | - |" % (LABELS[case], status[case]))
            continue
        for m, (unit, _) in MEASURES.items():
            v = vals.get((case, m))
            if not v:
                continue
            xs = list(v.values())
            rs = []
            for base in BASELINES.get(case, []):
                if base in status:
                    rs.append("%s: not run" % base)
                    continue
                r = ratio(vals, case, base, m)
                if r is not None:
                    rs.append("%.2fx %s" % (r, base))
            note = " (%d failed runs)" % failed[(case, m)] if failed.get((case, m)) else ""
            rows.append("| %s | %s | %s | %s | %s | %s | %s%s |" % (
                LABELS[case], m, unit, fmt(statistics.median(xs)), fmt(min(xs)), fmt(max(xs)),
                ", ".join(rs) or "-", note))
    return rows


def unit_of(measure):
    return "ms" if measure.endswith("_ms") else "KiB"


def targets(vals, status):
    rows = ["| target | bound | measured | verdict |", "|---|---|---|---|"]
    for desc, case, m, base, op, bound in TARGETS:
        missing = [c for c in (case, base) if c and c in status]
        if missing:
            got, verdict = "-", "not measured (%s %s)" % (missing[0], status[missing[0]])
            if case == "shunt_l7" and "shunt_capture_http" not in status:
                r = ratio(vals, "shunt_capture_http", base, m)
                if r is not None:
                    got = "%.2fx (shunt L4 capture path, informational)" % r
        else:
            if base:
                got_v = ratio(vals, case, base, m)
                got = "-" if got_v is None else "%.2fx %s" % (got_v, base)
            else:
                xs = list(vals.get((case, m), {}).values())
                got_v = statistics.median(xs) if xs else None
                got = "-" if got_v is None else "%s %s" % (fmt(got_v), unit_of(m))
            if got_v is None:
                verdict = "not measured"
            else:
                ok = got_v <= bound if op == "<=" else got_v >= bound
                verdict = "met" if ok else "missed"
        b = "%s %s%s" % (op, bound, "x" if base else " " + unit_of(m))
        rows.append("| %s (%s) | %s | %s | %s |" % (desc, LABELS[case], b, got, verdict))
    return rows


def median_cdf(outdir, stem, case):
    d = os.path.join(outdir, stem + ".cdf")
    runs = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if name.startswith(case + ".") and name.endswith(".cdf"):
            with open(os.path.join(d, name)) as f:
                runs.append([tuple(map(float, line.split())) for line in f if line.strip()])
    if not runs:
        return None
    n = min(len(r) for r in runs)
    return [(runs[0][i][0], statistics.median(r[i][1] for r in runs)) for i in range(n)]


def plots(outdir, stem, vals, status):
    made = []
    gp = []
    for kind, cases in (("tcp", TCP_CASES), ("http", HTTP_CASES)):
        series = []
        for c in cases:
            cdf = median_cdf(outdir, stem, c)
            if not cdf or c in status:
                continue
            path = os.path.join(outdir, "%s-cdf-%s.dat" % (stem, c))
            with open(path, "w") as f:
                for p, us in cdf:
                    f.write("%.1f %.4f\n" % (max(us, 1.0), p))
            series.append("'%s' using 1:2 with lines lw 2 title '%s'" % (path, LABELS[c]))
        if series:
            png = "%s-latency-%s.png" % (stem, kind)
            gp += ["set output '%s'" % os.path.join(outdir, png),
                   "set title 'Latency CDF at a fixed rate (%s; median of rounds per percentile)'"
                   % kind.upper(),
                   "set logscale x", "set xlabel 'latency (us, coordinated-omission corrected)'",
                   "set ylabel 'fraction of requests'", "set key bottom right", "set grid",
                   "set yrange [0:1]", "plot " + ", ".join(series), "unset logscale x",
                   "set yrange [*:*]"]
            made.append(png)
    for name, cases, ms, ylabel in (
            ("tcp-throughput", TCP_CASES, ["tps", "cps"], "per second"),
            ("bulk", TCP_CASES, ["bulk_1k_mbps", "bulk_64k_mbps"], "Mbit/s"),
            ("http-rps", HTTP_CASES, ["rps", "rps_per_core"], "requests/s")):
        rows = [c for c in cases if c not in status and any(vals.get((c, m)) for m in ms)]
        if not rows:
            continue
        path = os.path.join(outdir, "%s-%s.dat" % (stem, name))
        with open(path, "w") as f:
            f.write("# case " + " ".join(ms) + "\n")
            for c in rows:
                f.write('"%s" %s\n' % (c, " ".join(
                    fmt(statistics.median(vals[(c, m)].values())) if vals.get((c, m)) else "0"
                    for m in ms)))
        png = "%s-%s.png" % (stem, name)
        cols = ", ".join("'%s' using %d:xtic(1) title '%s'" % (path if i == 0 else "", i + 2, m)
                         for i, m in enumerate(ms))
        gp += ["set output '%s'" % os.path.join(outdir, png),
               "set title '%s (median of rounds)'" % name, "set style data histograms",
               "set style histogram clustered gap 1", "set style fill solid 0.8 border -1",
               "set xlabel ''", "set ylabel '%s'" % ylabel, "set key top right",
               "set yrange [0:*]", "set xtics rotate by -20", "plot " + cols,
               "set xtics norotate", "set style data lines", "set yrange [*:*]"]
        made.append(png)
    if gp:
        script = "set terminal pngcairo size 900,560 noenhanced\n" + "\n".join(gp) + "\n"
        with open(os.path.join(outdir, stem + ".gp"), "w") as f:
            f.write(script)
        r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
        if r.returncode:
            sys.stderr.write("report: gnuplot failed: %s\n" % r.stderr)
            return []
    return made


def check(path):
    """A well-formed table: the header, a row per case (measured or with its reason), numbers
    in the median/min/max columns, and the targets section."""
    text = open(path).read()
    errs = []
    if HEADER not in text:
        errs.append("no table header")
    if "## Targets" not in text:
        errs.append("no targets section")
    # A run limited by BENCH_CASES answers for those cases only.
    picked = os.environ.get("BENCH_CASES", "").split()
    for case in TCP_CASES + HTTP_CASES + XDS_CASES:
        if picked and case not in picked:
            continue
        rows = [r for r in text.splitlines() if r.startswith("| %s |" % LABELS[case])]
        if not rows:
            errs.append("no row for %s" % case)
        for r in rows:
            cells = [c.strip() for c in r.strip("|").split("|")]
            if cells[1] == "all":
                if not cells[3].startswith(("not run", "not implemented")):
                    errs.append("%s: a case without figures must say why" % case)
            elif not all(re.match(r"^-?[0-9.]+$", c) for c in cells[3:6]):
                errs.append("%s %s: not a number in %s" % (case, cells[1], cells[3:6]))
    # The baselines must have their figures, unless they were not run at all (BENCH_CASES
    # picked others, or a tool is missing: their row then says why).
    for base, needs in (("direct", ("lat_p99", "tps", "cps", "bulk_1k_mbps")),
                        ("haproxy", ("rps", "rps_per_core", "lat_p99"))):
        if "| %s | all |" % LABELS[base] in text or (picked and base not in picked):
            continue
        for need in needs:
            if "| %s | %s |" % (LABELS[base], need) not in text:
                errs.append("%s has no %s" % (base, need))
    for e in errs:
        print("report: %s: %s" % (path, e), file=sys.stderr)
    return 1 if errs else 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        return check(sys.argv[2])
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    outdir, stem = sys.argv[1], sys.argv[2]
    vals, status, failed, env = load(outdir, stem)
    present = {c for c, _ in vals} | set(status)
    cases = [c for c in TCP_CASES + HTTP_CASES + XDS_CASES if c in present]
    rows = table(vals, status, failed, cases)
    trows = targets(vals, status)
    pngs = plots(outdir, stem, vals, status)
    md = ["# shunt benchmark, %s" % env.get("date", stem), ""]
    if env.get("note"):
        md += ["> %s" % env["note"], ""]
    md += [
          "Command: `%s`  " % env.get("command", "make bench"),
          "Settings: %s" % env.get("settings", "-"), "",
          "## Machine and versions", "",
          "| | |", "|---|---|"]
    md += ["| %s | %s |" % (k, v) for k, v in env.items()
           if k not in ("command", "settings", "note")]
    md += ["", "## Results", "",
           "Median of the rounds, with min and max; ratios are per round (case / baseline in "
           "the same round), median shown. Latencies are microseconds at a fixed rate, "
           "measured from the intended send time. See bench/README.md for how to read this.",
           ""] + rows
    md += ["", "## Targets", "", "Reported, never asserted.", ""] + trows
    if pngs:
        md += ["", "## Plots", ""] + ["![%s](%s)" % (p, p) for p in pngs]
    with open(os.path.join(outdir, stem + ".md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(rows))
    print()
    print("\n".join(trows))
    print("\nreport: %s" % os.path.join(outdir, stem + ".md"))
    return check(os.path.join(outdir, stem + ".md"))


if __name__ == "__main__":
    sys.exit(main())
