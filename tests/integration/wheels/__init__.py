# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tiny real wheels for pip tests, written by hand (a wheel is a zip with a dist-info): no index, no network."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import os
import zipfile


def _record_hash(data):
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def build_wheel(wheel_dir, name, version, requires=(), extras=(), imports=()):
    """Write <name>-<version>-py3-none-any.whl into wheel_dir and return its path.

    The wheel holds a package (name with '-' -> '_') whose __init__ imports `imports` at import time, so
    "it still imports" proves its dependencies are still there.
    """
    module = name.replace("-", "_")
    dist_info = "%s-%s.dist-info" % (module, version)
    init = "".join("import %s\n" % m for m in imports) + "VERSION = %r\n" % version
    metadata = ["Metadata-Version: 2.1", "Name: %s" % name, "Version: %s" % version]
    metadata += ["Provides-Extra: %s" % e for e in extras]
    metadata += ["Requires-Dist: %s" % r for r in requires]
    files = [
        ("%s/__init__.py" % module, init.encode()),
        ("%s/METADATA" % dist_info, ("\n".join(metadata) + "\n\nTest package.\n").encode()),
        ("%s/WHEEL" % dist_info, b"Wheel-Version: 1.0\nGenerator: residue-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    ]
    record = "".join("%s,%s,%d\n" % (path, _record_hash(data), len(data)) for path, data in files)
    record += "%s/RECORD,,\n" % dist_info
    path = os.path.join(wheel_dir, "%s-%s-py3-none-any.whl" % (module, version))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        for arcname, data in files:
            whl.writestr(arcname, data)
        whl.writestr("%s/RECORD" % dist_info, record)
    return path
