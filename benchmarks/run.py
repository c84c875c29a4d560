"""Run the benchmarks and rewrite benchmarks/RESULTS.md.

Each benchmarks/bench_<name>.py defines `run(workdir) -> str`: it builds its own data
under workdir, measures our code and the peer tool in the same run, and returns a
Markdown section (figures, ratios, the command that reproduces them).
Usage: python benchmarks/run.py [name ...]   (default: all)
"""
import datetime
import fcntl
import importlib.util
import os
import platform
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def load(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(names):
    available = sorted(f[len("bench_"):-3] for f in os.listdir(HERE) if f.startswith("bench_") and f.endswith(".py"))
    chosen = names or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        sys.exit("unknown benchmark(s): %s (have: %s)" % (", ".join(unknown), ", ".join(available)))
    results_path = os.path.join(HERE, "RESULTS.md")
    fresh = {}
    for name in chosen:
        workdir = os.path.join(HERE, "work", name)
        shutil.rmtree(workdir, ignore_errors=True)
        os.makedirs(workdir)
        print("== benchmark %s" % name, flush=True)
        fresh[name] = load(os.path.join(HERE, "bench_%s.py" % name)).run(workdir).strip() + "\n"
        shutil.rmtree(workdir, ignore_errors=True)
    # Benchmarks may run concurrently: merge under a lock, re-reading the sections others wrote meanwhile.
    with open(results_path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sections = parse_sections(results_path) if (names and os.path.exists(results_path)) else {}
        sections.update(fresh)
        with open(results_path, "w") as f:
            f.write("# Benchmark results\n\n")
            f.write("Written by `make bench` (`python benchmarks/run.py [name ...]`). Each section was measured in one "
                    "run,\nours against the peer tool on the same data; ratios are ours / peer unless a section says "
                    "otherwise.\n\n")
            for name in sorted(sections):
                f.write("<!-- bench:%s -->\n%s\n" % (name, sections[name]))
    print("wrote %s" % results_path)


def parse_sections(path):
    sections, name, lines = {}, None, []
    with open(path) as f:
        for line in f:
            if line.startswith("<!-- bench:"):
                if name:
                    sections[name] = "".join(lines).strip() + "\n"
                name, lines = line.strip()[len("<!-- bench:"):-len(" -->")], []
            elif name:
                lines.append(line)
    if name:
        sections[name] = "".join(lines).strip() + "\n"
    return sections


def machine_line():
    return "%s, Python %s, %d cores, %s" % (
        platform.platform(), platform.python_version(), os.cpu_count(), datetime.date.today().isoformat())


if __name__ == "__main__":
    main(sys.argv[1:])
