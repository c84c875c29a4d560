# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn a generated hub cache into a huggingface_hub 2.x shared-store cache with huggingface_hub's own code.

Blobs are published to (or linked from) the cache-wide store by huggingface_hub.utils._shared_blobs'
publish_blob_to_shared_store / try_link_from_shared_store, offline: the xet hashes are made up, the store,
manifests, locks and links are exactly what huggingface_hub writes. Payloads are shared between repos.
Test and benchmark support only: huggingface_hub is never needed on a managed host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import random


def share(root, repos, payloads=8, fraction=0.6, seed=0):
    """Move about `fraction` of the repos' blobs into the store of cache `root`, spread over at most
    `payloads` xet hashes (so several repos' blobs end up as links to one payload). Returns
    {xet hash: [repo blob paths linked to it]}."""
    from huggingface_hub.utils import _shared_blobs

    rng = random.Random(seed)
    hashes = [hashlib.sha256(("payload-%d-%d" % (seed, i)).encode()).hexdigest() for i in range(payloads)]
    linked = {}
    for repo in repos:
        blobs = os.path.join(repo.path, "blobs")
        for name in sorted(os.listdir(blobs)):
            path = os.path.join(blobs, name)
            if os.path.islink(path) or name.endswith(".incomplete") or rng.random() >= fraction:
                continue
            xet = rng.choice(hashes)
            store = _shared_blobs.shared_blob_path(root, xet)
            if xet in linked and os.path.isfile(store):
                ok = _shared_blobs.try_link_from_shared_store(blob_path=path, xet_hash=xet, cache_dir=root,
                                                              expected_size=os.lstat(store).st_size)
            else:
                ok = _shared_blobs.publish_blob_to_shared_store(blob_path=path, xet_hash=xet, cache_dir=root,
                                                                expected_size=os.lstat(path).st_size)
            assert ok, path
            linked.setdefault(xet, []).append(path)
    return linked


def listing(root):
    """Every non-directory entry under root: relative path, link target, and the content of manifests
    (what two trees must agree on, byte for byte where huggingface_hub writes metadata)."""
    out = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                rel += " -> " + os.readlink(full)
            elif name.endswith(".refs"):
                with open(full) as f:
                    rel += " = " + repr(f.read())
            out.append(rel)
    return sorted(out)
