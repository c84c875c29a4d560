# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ollama models dirs with Ollama's on-disk layout, for tests: manifests referencing content-addressed layers
shared between models, as `ollama pull` writes them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os


def layer(store, content, mtime=None):
    """Write blobs/sha256-<hex> for content; returns its digest ('sha256:<hex>')."""
    digest = hashlib.sha256(content).hexdigest()
    blobs = os.path.join(store, "blobs")
    os.makedirs(blobs, exist_ok=True)
    path = os.path.join(blobs, "sha256-" + digest)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return "sha256:" + digest


def model(store, name, layers, registry="registry.ollama.ai", namespace="library", mtime=None):
    """A manifest for name ('model:tag') referencing layers (list of bytes, or (media type suffix, bytes); the
    first one is the config, the others default to weights, application/vnd.ollama.image.model)."""
    model_name, tag = name.split(":")
    kinds = ["model" if isinstance(c, bytes) else c[0] for c in layers]
    layers = [c if isinstance(c, bytes) else c[1] for c in layers]
    digests = [layer(store, content, mtime) for content in layers]
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": digests[0],
                      "size": len(layers[0])},
           "layers": [{"mediaType": "application/vnd.ollama.image." + k, "digest": d, "size": len(c)}
                      for k, d, c in zip(kinds[1:], digests[1:], layers[1:])]}
    path = os.path.join(store, "manifests", registry, namespace, model_name, tag)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def blob_names(store):
    return sorted(os.listdir(os.path.join(store, "blobs")))


def listing(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(out)
