"""Build the benchmarks' hub caches in a child process, under Debian's eatmydata when it is installed.

huggingface_hub's shared-store functions (publish_blob_to_shared_store, try_link_from_shared_store) fsync
every payload, manifest and directory they write, as they should on a user's machine; at the benchmarks' size
(tens of thousands of moved blobs, on a disk other jobs share) that made building the cache take longer than
measuring it. eatmydata (LD_PRELOAD) turns fsync into a no-op for the building child only: the files are
still written by hfgen and huggingface_hub's own functions, byte for byte, and nothing measured runs under it.
"""
import json
import os
import shutil
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(TOP, ".build", "collections")

_CHILD = r"""
import json, os, sys
sys.path.insert(0, %(collections)r)
from ansible_collections.residue.purge.tests.unit.support import hfgen, hfshared
a = json.loads(sys.argv[1])
if a["source"]:
    made = [hfgen.GenRepo(r[0], r[1], os.path.join(a["path"], r[2])) for r in a["source"]]
else:
    made = hfgen.make_cache(a["path"], repos=a["repos"], revisions_per_repo=2, files_per_revision=a["files"],
                            shared_fraction=0.8, seed=2026, max_file_size=512)
moved = {}
if a["share"]:
    moved = hfshared.share(a["path"], made, payloads=a["payloads"], fraction=0.25, seed=2026)
print(json.dumps({"repos": [[r.repo_id, r.repo_type, r.folder] for r in made],
                  "moved": dict((k, len(v)) for k, v in moved.items()),
                  "entries": hfgen.count_entries(a["path"])}))
"""


def fsync_off():
    """The command prefix that makes fsync a no-op ([] when eatmydata is not installed)."""
    tool = shutil.which("eatmydata")
    return [tool] if tool else []


def build(path, repos, files, share=False, copy_of=None):
    """Generate a hub cache at path (repos x 2 revisions x files, 80% of blobs shared between revisions, seed
    2026), or copy copy_of (cp -a, a {repos...} result of an earlier build) there; with share, a quarter of its
    blobs moved into huggingface_hub 2.x's shared store by huggingface_hub's own functions, one payload per
    16 repo blobs of the cache (about 8 repo blobs per payload). Returns {repos: [[repo_id, type, folder]],
    moved: {xet hash: repo blobs linked to it}, entries, seconds, fsync_off}."""
    start = time.time()
    source = None
    if copy_of is not None:
        subprocess.run(["cp", "-a", copy_of["path"], path], check=True)
        source = copy_of["repos"]
    args = {"path": path, "repos": repos, "files": files, "share": share, "source": source,
            "payloads": max(1, repos * files // 16)}
    out = subprocess.run(fsync_off() + [sys.executable, "-c", _CHILD % {"collections": COLLECTIONS},
                                        json.dumps(args)], capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result.update(path=path, seconds=time.time() - start, fsync_off=bool(fsync_off()))
    return result


def how_built(result):
    return "built in %.0f s%s" % (result["seconds"], " (fsync off: eatmydata, building only)"
                                  if result["fsync_off"] else "")
