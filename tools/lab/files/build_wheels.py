"""Build the tiny wheels of the lab's Open-AutoGLM installation (no network, no setuptools).

open-autoglm needs autoglm-core (its own, not requested) and tokenkit (shared with labeler,
another tool that must keep working after the purge).  Usage: build_wheels.py OUTDIR
"""
import base64
import hashlib
import os
import sys
import zipfile

DAEMON = '''import glob, os, sys, time

def main():
    """Serve the phone agent: keep the model weights open, like the real daemon."""
    hf_home = os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface"))
    pattern = os.path.join(hf_home, "hub", "models--zai-org--AutoGLM-Phone-9B", "snapshots", "*", "model.safetensors")
    weights = [open(path, "rb") for path in sorted(glob.glob(pattern))[:1]]
    if "--once" in sys.argv:
        return 0
    while True:
        time.sleep(3600)
'''

LABELER = '''import sys
from tokenkit import tokenize

def main():
    print(" | ".join(tokenize(" ".join(sys.argv[1:]) or "labeler works")))
    if "--serve" in sys.argv:
        import time
        while True:
            time.sleep(3600)
'''

PACKAGES = [
    ("open-autoglm", "0.4.0", ["autoglm-core>=0.4", "tokenkit>=1.0"],
     {"open_autoglm/__init__.py": DAEMON, "open_autoglm/__main__.py": "from open_autoglm import main\nmain()\n"},
     {"open-autoglm": "open_autoglm:main"}),
    ("autoglm-core", "0.4.1", ["tokenkit>=1.0"], {"autoglm_core/__init__.py": "VERSION = '0.4.1'\n"}, {}),
    ("tokenkit", "1.1.0", [], {"tokenkit/__init__.py": "def tokenize(text):\n    return text.split()\n"}, {}),
    ("labeler", "1.2.0", ["tokenkit>=1.0"], {"labeler/__init__.py": LABELER}, {"labeler": "labeler:main"}),
]


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (name, digest, len(data))


def build(outdir, name, version, requires, files, scripts):
    dist = name.replace("-", "_")
    info = "%s-%s.dist-info" % (dist, version)
    meta = ["Metadata-Version: 2.1", "Name: " + name, "Version: " + version]
    meta += ["Requires-Dist: " + r for r in requires]
    entries = dict(files)
    entries[info + "/METADATA"] = "\n".join(meta) + "\n"
    entries[info + "/WHEEL"] = "Wheel-Version: 1.0\nGenerator: residue-purge-lab\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    if scripts:
        entries[info + "/entry_points.txt"] = "[console_scripts]\n" + "".join("%s = %s\n" % kv for kv in scripts.items())
    path = os.path.join(outdir, "%s-%s-py3-none-any.whl" % (dist, version))
    # written aside and renamed into place: two labs seeded at the same time (make test's lanes) build the wheels
    # at once, and seed.yml's `creates` must never see (nor its tar pack) a wheel half written
    part = "%s.%d.part" % (path, os.getpid())
    records = []
    with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as whl:
        for arcname in sorted(entries):
            data = entries[arcname].encode()
            whl.writestr(arcname, data)
            records.append(record_line(arcname, data))
        records.append(info + "/RECORD,,")
        whl.writestr(info + "/RECORD", "\n".join(records) + "\n")
    os.replace(part, path)
    return path


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    for spec in PACKAGES:
        print(build(outdir, *spec))


if __name__ == "__main__":
    main()
