"""Offline stand-in for ansible-test's get-pip bootstrap script.

ansible-test downloads get-pip.py from a host this network cannot reach; it first looks
in ~/.ansible/test/cache/.  This stand-in runs pip straight from the wheel the interpreter's
ensurepip bundles (in a subprocess, so /etc/pip.conf stays visible) to install the requested
pip from the package index, as get-pip.py does: nothing else goes into the environment (no
setuptools unless asked for).  ansible-test bootstraps every environment it makes this way
(30 or so in a fresh `make test`); installing the bundled pip and setuptools first and then
replacing that pip cost twice the CPU.  An interpreter without a bundled pip wheel gets
ensurepip's pip first, as before.
"""
import glob
import os
import subprocess
import sys

GET_PIP_ONLY_FLAGS = {"--no-setuptools", "--no-wheel"}


def bundled_pip():
    try:
        import ensurepip
    except ImportError:
        return None
    wheels = glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl"))
    try:  # the newest (an interpreter upgraded in place can keep an older one next to it)
        return max(wheels, key=lambda w: [int(n) for n in os.path.basename(w).split("-")[1].split(".")])
    except ValueError:
        return None


def main():
    args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY_FLAGS]
    wheel = bundled_pip()
    if wheel:
        # a wheel on sys.path is importable: `python pip-X.whl/pip` runs that pip without installing it
        subprocess.check_call([sys.executable, os.path.join(wheel, "pip"), "install", "--upgrade"] + args)
    else:
        subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade"] + args)


if __name__ == "__main__":
    main()
