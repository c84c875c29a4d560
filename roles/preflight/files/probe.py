# Read-only host probe for the preflight role: does psutil import for this Python, and how much space is free
# where the backup goes (the nearest existing ancestor of the backup dir).  Prints one JSON object.
import json
import os
import sys

try:
    import psutil  # noqa: F401  pylint: disable=unused-import
    HAVE_PSUTIL = True
except ImportError:
    HAVE_PSUTIL = False

result = {"psutil": HAVE_PSUTIL, "python": sys.executable, "backup_free": None, "backup_probe": None}
if len(sys.argv) > 1 and sys.argv[1]:
    probe = os.path.abspath(sys.argv[1])
    while not os.path.isdir(probe):
        probe = os.path.dirname(probe)
    st = os.statvfs(probe)
    result.update(backup_free=st.f_bavail * st.f_frsize, backup_probe=probe)
print(json.dumps(result))
