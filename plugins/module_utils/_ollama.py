# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ollama model stores: list models, remove them by pattern, age or size budget, sweep orphaned layers.

Layout (Ollama's own, $OLLAMA_MODELS or ~/.ollama/models, /usr/share/ollama/.ollama/models for the service):

    <store>/manifests/<registry>/<namespace>/<model>/<tag>   JSON: config and layers, each {"digest": "sha256:<hex>"}
    <store>/blobs/sha256-<hex>                                content-addressed layers, shared between models
    <store>/blobs/sha256-<hex>-partial[-<n>]                  a download in progress

Removing a model is what `ollama rm` does: its manifest goes (and the directories it leaves empty), then only the
layers no remaining manifest references (the manifests are read again right before). When a manifest cannot be
read, no layer is removed from that store: what it references is unknown. A model one of whose layers a process
(the Ollama server) has open or mapped is held back; an orphaned layer or partial download is swept only when it is
older than the threshold and no process holds it. Every path is opened from the store's descriptor downwards,
never through a link.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fnmatch
import json
import os
import re

from ansible_collections.residue.purge.plugins.module_utils import _privileges, _stores
from ansible_collections.residue.purge.plugins.module_utils._blobs import BlobStat
from ansible_collections.residue.purge.plugins.module_utils._hfcache.inuse import OpenFiles
from ansible_collections.residue.purge.plugins.module_utils._paths import O_DIR as _O_DIR, O_FILE as _O_FILE
from ansible_collections.residue.purge.plugins.module_utils._paths import open_below, read_all
from ansible_collections.residue.purge.plugins.module_utils._text import error_text as _err
from ansible_collections.residue.purge.plugins.module_utils._units import parse_duration

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_LAYER = re.compile(r"sha256-[0-9a-f]{64}\Z")
_PARTIAL = re.compile(r"sha256-[0-9a-f]{64}-partial(-[0-9]+)?\Z")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
DEFAULT_REGISTRY = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
MAX_MANIFEST = 1 << 20
MAX_LISTED = 50


class Model(object):
    """One manifest: registry/namespace/model:tag and the blobs (config and layers) it references."""

    __slots__ = ("registry", "namespace", "model", "tag", "mtime", "blobs", "bytes", "exclusive_bytes",
                 "last_used", "weights")

    def __init__(self, registry, namespace, model, tag, mtime, blobs):
        self.registry = registry
        self.namespace = namespace
        self.model = model
        self.tag = tag
        self.mtime = mtime
        self.blobs = blobs  # sorted unique blob names (sha256-<hex>)
        self.weights = []  # of those, the weight layers (model, projector, adapter): what loading it reads
        self.bytes = 0
        self.exclusive_bytes = 0
        self.last_used = mtime

    @property
    def full(self):
        return "%s/%s/%s:%s" % (self.registry, self.namespace, self.model, self.tag)

    @property
    def name(self):
        """The name `ollama list` shows: registry and namespace left out when they are the defaults."""
        if self.registry == DEFAULT_REGISTRY:
            if self.namespace == DEFAULT_NAMESPACE:
                return "%s:%s" % (self.model, self.tag)
            return "%s/%s:%s" % (self.namespace, self.model, self.tag)
        return self.full

    @property
    def manifest(self):
        return "manifests/%s/%s/%s/%s" % (self.registry, self.namespace, self.model, self.tag)

    def matches(self, pattern):
        if fnmatch.fnmatchcase(self.name, pattern) or fnmatch.fnmatchcase(self.full, pattern):
            return True
        if ":" not in pattern:  # 'llama3' means every tag of llama3
            return fnmatch.fnmatchcase(self.name.rsplit(":", 1)[0], pattern) or fnmatch.fnmatchcase(
                self.full.rsplit(":", 1)[0], pattern)
        return False


class OllamaStore(object):
    __slots__ = ("path", "user", "source", "models", "blobs", "partials", "problems", "unreadable", "dev")

    def __init__(self, path, user=None, source=None):
        self.path = path
        self.user = user
        self.source = source
        self.models = []
        self.blobs = {}  # name -> BlobStat, every sha256-<hex> layer file
        self.partials = []  # (name, BlobStat) of downloads in progress
        self.problems = []
        self.unreadable = []  # manifests that could not be read: no layer may go while there are any
        self.dev = None

    def refcounts(self, models=None):
        counts = {}
        for m in self.models if models is None else models:
            for b in m.blobs:
                counts[b] = counts.get(b, 0) + 1
        return counts

    def blob_bytes(self):
        return sum(b.size for b in self.blobs.values())


_WEIGHTS = ("application/vnd.ollama.image.model", "application/vnd.ollama.image.projector",
            "application/vnd.ollama.image.adapter")


def parse_manifest(data):
    """(blob names a manifest references (config and layers), names of its weight layers), or ValueError."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except RecursionError:  # '[[[[...' nested deeper than the parser goes: a user's file must not end the run
        raise ValueError("nested too deeply to be a manifest")
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    entries = list(doc.get("layers") or [])
    if doc.get("config"):
        entries.append(doc["config"])
    names, weights = set(), set()
    for entry in entries:
        digest = entry.get("digest") if isinstance(entry, dict) else None
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise ValueError("layer digest %r is not sha256:<hex>" % (digest,))
        names.add(digest.replace(":", "-"))
        if entry.get("mediaType") in _WEIGHTS:
            weights.add(digest.replace(":", "-"))
    return sorted(names), sorted(weights)


def _read_at(dir_fd, name, limit=MAX_MANIFEST):
    fd = os.open(name, _O_FILE, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if (st.st_mode & 0o170000) != 0o100000:
            raise OSError(errno.EINVAL, "not a regular file")
        if st.st_size > limit:
            raise OSError(errno.EFBIG, "larger than %d bytes" % limit)
        return read_all(fd), st
    finally:
        os.close(fd)


def _manifests(store_fd, store_path, problems, unreadable):
    """[(registry, namespace, model, tag, mtime, blobs)] of every manifest, four levels below manifests/."""
    out = []
    try:
        top = os.open("manifests", _O_DIR, dir_fd=store_fd)
    except OSError as e:
        if e.errno != errno.ENOENT:
            problems.append("cannot read %s/manifests: %s" % (store_path, _err(e)))
            unreadable.append(store_path + "/manifests")
        return out

    def walk(fd, parts):
        try:
            with os.scandir(fd) as it:
                entries = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
        except OSError as e:
            problems.append("cannot read %s: %s" % ("/".join([store_path, "manifests"] + parts), _err(e)))
            unreadable.append("/".join([store_path, "manifests"] + parts))
            return
        for name, is_dir in entries:
            path = "/".join([store_path, "manifests"] + parts + [name])
            if len(parts) < 3:
                if not is_dir:
                    problems.append("not a manifest (too shallow): %s" % path)
                    continue
                try:
                    sub = os.open(name, _O_DIR, dir_fd=fd)
                except OSError as e:
                    problems.append("cannot read %s: %s" % (path, _err(e)))
                    unreadable.append(path)
                    continue
                try:
                    walk(sub, parts + [name])
                finally:
                    os.close(sub)
                continue
            if is_dir:
                problems.append("not a manifest (a directory): %s" % path)
                unreadable.append(path)
                continue
            try:
                data, st = _read_at(fd, name)
                blobs, weights = parse_manifest(data)
            except (OSError, ValueError) as e:
                problems.append("cannot read manifest %s: %s" % (path, _err(e) if isinstance(e, OSError) else e))
                unreadable.append(path)
                continue
            out.append((parts[0], parts[1], parts[2], name, st.st_mtime, blobs, weights))

    try:
        walk(top, [])
    finally:
        os.close(top)
    return out


def scan_store(path, user=None, source=None):
    """Read one Ollama models dir: its models (with sizes and exclusive sizes), layers and partial downloads."""
    store = OllamaStore(path, user, source)
    try:
        store_fd = os.open(path, _O_DIR & ~_NOFOLLOW)  # the store itself may be a link (OLLAMA_MODELS=/data/...)
    except OSError as e:
        store.problems.append("cannot read Ollama models dir %s: %s" % (path, _err(e)))
        return store
    try:
        store.dev = os.fstat(store_fd).st_dev
        try:
            blobs_fd = os.open("blobs", _O_DIR, dir_fd=store_fd)
        except OSError as e:
            blobs_fd = None
            if e.errno != errno.ENOENT:
                store.problems.append("cannot read %s/blobs: %s" % (path, _err(e)))
        if blobs_fd is not None:
            try:
                with os.scandir(blobs_fd) as it:
                    for entry in it:
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        if (st.st_mode & 0o170000) != 0o100000:
                            continue
                        if _LAYER.match(entry.name):
                            store.blobs[entry.name] = BlobStat(entry.name, st)
                        elif _PARTIAL.match(entry.name):
                            store.partials.append((entry.name, BlobStat(entry.name, st)))
            finally:
                os.close(blobs_fd)
        found = _manifests(store_fd, path, store.problems, store.unreadable)
        for registry, namespace, model, tag, mtime, blobs, weights in found:
            m = Model(registry, namespace, model, tag, mtime, blobs)
            m.weights = weights
            store.models.append(m)
    finally:
        os.close(store_fd)
    store.partials.sort(key=lambda p: p[0])
    counts = store.refcounts()
    for m in store.models:
        present = [store.blobs[b] for b in m.blobs if b in store.blobs]
        missing = [b for b in m.blobs if b not in store.blobs]
        if missing:
            store.problems.append("model %s in %s references missing layers: %s" % (m.name, path, ", ".join(missing[:3])))
        m.bytes = sum(b.size for b in present)
        m.exclusive_bytes = _freed_bytes([b for b in present if counts[b.name] == 1], ())
        # last used: loading a model reads its weight layers (atime); a pull writes the manifest (mtime)
        weights = [store.blobs[b] for b in m.weights if b in store.blobs] or present
        m.last_used = max([m.mtime] + [b.atime for b in weights])
    return store


_MODEL_FIELDS = ("registry", "namespace", "model", "tag", "mtime", "blobs", "weights", "bytes", "exclusive_bytes",
                 "last_used")


def scan_plain(path, _one_fs=None):
    """scan_store(path) as plain data: what crosses from the child that read the store as its user (_one_fs: unused,
    the signature _budget._read_store_as calls). from_plain reads it back."""
    store = scan_store(path)
    return {"models": [[getattr(m, k) for k in _MODEL_FIELDS] for m in store.models],
            "blobs": [b.plain() for b in store.blobs.values()], "partials": [b.plain() for _n, b in store.partials],
            "problems": store.problems, "unreadable": store.unreadable, "dev": store.dev}


def from_plain(data, path, user=None, source=None):
    """The OllamaStore scan_plain's answer describes."""
    store = OllamaStore(path, user, source)
    for row in data["models"]:
        m = Model.__new__(Model)
        for key, value in zip(_MODEL_FIELDS, row):
            setattr(m, key, value)
        store.models.append(m)
    store.blobs = dict((row[0], BlobStat.from_plain(row)) for row in data["blobs"])
    store.partials = [(row[0], BlobStat.from_plain(row)) for row in data["partials"]]
    store.problems, store.unreadable, store.dev = list(data["problems"]), list(data["unreadable"]), data["dev"]
    return store


def scan_store_as(actor, path, user=None, source=None):
    """scan_store with actor's rights (docs/trust.md): a user's store is listed, its manifests read and its layers
    stat'ed by a child that dropped to them, so the kernel refuses what that user could not read (a root-only
    directory in it, a store that is the user's link into another user's home) and only the user's own view of it
    is sized and planned. Raises _privileges.ChildFailed (the child was killed, stopped, refused the drop) or
    NotReachable: then the store was not read at all, and nothing of it may be planned."""
    if not _privileges.acts_for(actor):
        return scan_store(path, user, source)
    return from_plain(_privileges.call_as(actor, scan_plain, path), path, user, source)


def _freed_bytes(blobs, already):
    """Bytes removing blobs frees: a blob with other hard links counts once all of them go."""
    groups = {}
    for b in list(already) + list(blobs):
        groups.setdefault(b.key, []).append(b)
    total = 0
    for b in blobs:
        members = groups[b.key]
        if len(members) >= b.nlink and members[-1] is b:
            total += b.size
    return total


# ------------------------------------------------------------------------------------------ planning

class OllamaSelection(_stores.ModelSelection):
    """_stores.ModelSelection, and the age an orphaned layer or partial download must have to be swept."""

    __slots__ = ("orphans_older_than",)

    def __init__(self, patterns=(), keep=(), older_than=None, max_size=None, orphans_older_than=None, now=None):
        super(OllamaSelection, self).__init__(patterns, keep, older_than, max_size, now)
        self.orphans_older_than = orphans_older_than  # None: no sweep


class OllamaPlan(object):
    __slots__ = ("store", "removed", "blobs", "freed", "sweep", "held_back", "bytes_before", "bytes_after",
                 "max_size", "reasons")

    def __init__(self, store):
        self.store = store
        self.removed = []  # Models
        self.reasons = {}  # model full name -> 'selected' | 'budget'
        self.blobs = {}  # model full name -> [BlobStat] that go with it
        self.freed = {}  # model full name -> bytes
        self.sweep = []  # (kind, BlobStat) orphaned layers and stale partial downloads
        self.held_back = []
        self.bytes_before = store.blob_bytes() + sum(b.size for _n, b in store.partials)
        self.bytes_after = self.bytes_before
        self.max_size = None


def plan_store(store, selection, held_of):
    """What to remove from one store. held_of(blob names) -> None or (reason, detail)."""
    plan = OllamaPlan(store)
    plan.max_size = selection.max_size
    layers_may_go = not store.unreadable
    if store.unreadable:
        store.problems.append("%s: %d manifest(s) could not be read, so no layer is removed there (first: %s)" % (
            store.path, len(store.unreadable), store.unreadable[0]))
    counts = store.refcounts()
    gone_blobs = []

    def remove(model, reason):
        held = held_of(model.blobs)
        if held:
            plan.held_back.append({"store": store.path, "name": model.name, "reason": held[0], "detail": held[1]})
            return 0
        freed_now = []
        for b in model.blobs:
            counts[b] -= 1
            if counts[b] == 0 and b in store.blobs and layers_may_go:
                freed_now.append(store.blobs[b])
        got = _freed_bytes(freed_now, gone_blobs)
        gone_blobs.extend(freed_now)
        plan.removed.append(model)
        plan.reasons[model.full] = reason
        plan.blobs[model.full] = freed_now
        plan.freed[model.full] = got
        return got

    scope = [m for m in store.models if selection.in_scope(m)]
    for m in scope:
        if selection.picks(m):
            remove(m, "selected")
    if selection.orphans_older_than is not None:
        cutoff = selection.now - selection.orphans_older_than
        referenced = set(b for m in store.models for b in m.blobs)
        candidates = []
        if layers_may_go:
            candidates.extend(("orphan_layer", b) for n, b in sorted(store.blobs.items()) if n not in referenced)
        candidates.extend(("partial", b) for _n, b in store.partials)
        for kind, b in candidates:
            if b.mtime >= cutoff:
                continue
            held = held_of([b.name])
            if held:
                plan.held_back.append({"store": store.path, "name": b.name, "reason": held[0], "detail": held[1]})
                continue
            plan.sweep.append((kind, b))
    swept = _freed_bytes([b for _k, b in plan.sweep], gone_blobs)
    gone_blobs.extend(b for _k, b in plan.sweep)
    after = plan.bytes_before - sum(plan.freed.values()) - swept
    if selection.max_size is not None and after > selection.max_size:
        for m in sorted((m for m in scope if m not in plan.removed), key=lambda m: (m.last_used, m.full)):
            if after <= selection.max_size:
                break
            after -= remove(m, "budget")
    plan.bytes_after = after
    return plan


# ------------------------------------------------------------------------------------------ removal

def _live_references(store_fd, store_path):
    """Every blob the manifests reference now, or None when one cannot be read."""
    problems, unreadable = [], []
    found = _manifests(store_fd, store_path, problems, unreadable)
    if unreadable:
        return None
    return set(b for item in found for b in item[5])


def _unlink_blob(blobs_fd, blob, failures, path):
    """Unlink blobs/<name> if it is still the file planned (same inode). Returns the bytes freed."""
    try:
        st = os.stat(blob.name, dir_fd=blobs_fd, follow_symlinks=False)
        if (st.st_dev, st.st_ino) != blob.key or (st.st_mode & 0o170000) != 0o100000:
            failures.append("%s: replaced since it was scanned, not removed" % path)
            return 0
        os.unlink(blob.name, dir_fd=blobs_fd)
        return st.st_size if st.st_nlink <= 1 else 0
    except OSError as e:
        if e.errno != errno.ENOENT:
            failures.append("%s: %s" % (path, _err(e)))
        return 0


def execute(plan, held_of):
    """Carry out a plan: manifests first (and the directories they leave empty), then the layers no manifest
    references any more (read again now), then the sweep. Returns failures; updates the plan's figures."""
    store = plan.store
    failures = []
    try:
        store_fd = os.open(store.path, _O_DIR & ~_NOFOLLOW)
    except OSError as e:
        return ["%s: %s" % (store.path, _err(e))]
    try:
        if store.dev is not None and os.fstat(store_fd).st_dev != store.dev:
            return ["%s: changed since it was scanned, nothing removed" % store.path]
        done = []
        for model in plan.removed:
            held = held_of(model.blobs)
            if held:
                plan.held_back.append({"store": store.path, "name": model.name, "reason": held[0],
                                       "detail": held[1]})
                continue
            parts = model.manifest.split("/")
            path = store.path + "/" + model.manifest
            try:
                fd = open_below(store_fd, parts[:-1])
            except OSError as e:
                failures.append("%s: %s" % (path, _err(e)))
                continue
            try:
                os.unlink(parts[-1], dir_fd=fd)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    failures.append("%s: %s" % (path, _err(e)))
                    continue
            finally:
                os.close(fd)
            for depth in range(len(parts) - 1, 1, -1):  # model, namespace, registry dirs left empty
                try:
                    fd = open_below(store_fd, parts[:depth - 1])
                except OSError:
                    break
                try:
                    os.rmdir(parts[depth - 1], dir_fd=fd)
                except OSError:
                    break
                finally:
                    os.close(fd)
            done.append(model)
        plan.removed = done
        live = _live_references(store_fd, store.path)
        try:
            blobs_fd = os.open("blobs", _O_DIR, dir_fd=store_fd)
        except OSError as e:
            if plan.blobs or plan.sweep:
                failures.append("%s/blobs: %s" % (store.path, _err(e)))
            blobs_fd = None
        if blobs_fd is not None:
            try:
                for model in done:
                    got = 0
                    deleted = []
                    for blob in plan.blobs.get(model.full, []):
                        if live is None or blob.name in live:
                            continue  # referenced again (a pull since the scan) or unknown: stays
                        before = len(failures)
                        got += _unlink_blob(blobs_fd, blob, failures, store.path + "/blobs/" + blob.name)
                        if len(failures) == before:
                            deleted.append(blob)
                    plan.blobs[model.full] = deleted
                    plan.freed[model.full] = got
                swept = []
                for kind, blob in plan.sweep:
                    if kind == "orphan_layer" and (live is None or blob.name in live):
                        continue
                    if held_of([blob.name]):
                        continue
                    before = len(failures)
                    got = _unlink_blob(blobs_fd, blob, failures, store.path + "/blobs/" + blob.name)
                    if len(failures) == before:
                        swept.append((kind, blob, got))
                plan.sweep = swept
            finally:
                os.close(blobs_fd)
        else:
            plan.sweep = []
            for model in done:
                plan.blobs[model.full] = []
                plan.freed[model.full] = 0
        for model in list(plan.freed):
            if model not in set(m.full for m in done):
                plan.freed.pop(model)
        plan.bytes_after = plan.bytes_before - sum(plan.freed.values()) - sum(x[2] for x in plan.sweep)
    finally:
        os.close(store_fd)
    return failures


def execute_as(plan, held_of, actor):
    """execute(plan, held_of) with actor's rights (docs/trust.md): in a child that dropped to the user when we
    are root and the store is a user's, so the kernel refuses what that user could not remove (a root-owned
    manifest dir, a bind mount of a root directory as blobs/, a store that is a link to root's). held_of must
    answer from what the parent already read (the user cannot see other users' open files). A child that failed
    (killed, stopped, refused the drop) fails the store's planned items: nothing of them is done by root
    instead, and nothing is reported removed. Returns failures, like execute."""
    if not _privileges.acts_for(actor):
        return execute(plan, held_of)

    def work():
        failures = execute(plan, held_of)
        return {"failures": failures, "removed": [m.full for m in plan.removed],
                "blobs": dict((name, [b.name for b in blobs]) for name, blobs in plan.blobs.items()),
                "freed": dict(plan.freed), "sweep": [(kind, b.name, got) for kind, b, got in plan.sweep],
                "held_back": plan.held_back, "bytes_after": plan.bytes_after}

    store = plan.store
    planned_sweep = dict((b.name, b) for _kind, b in plan.sweep)
    planned_blobs = dict((b.name, b) for blobs in plan.blobs.values() for b in blobs)
    try:
        out = _privileges.call_as(actor, work)
    except (_privileges.ChildFailed, _privileges.NotReachable) as exc:
        models = len(plan.removed) + len(plan.sweep)
        plan.removed, plan.blobs, plan.freed, plan.sweep = [], {}, {}, []
        plan.bytes_after = plan.bytes_before
        return ["%s: %s (%d planned removal(s) not done)" % (store.path, exc, models)]
    by_full = dict((m.full, m) for m in plan.removed)
    plan.removed = [by_full[name] for name in out["removed"]]
    plan.blobs = dict((name, [planned_blobs[b] for b in blobs]) for name, blobs in out["blobs"].items())
    plan.freed = dict(out["freed"])
    plan.sweep = [(kind, planned_sweep[name], got) for kind, name, got in out["sweep"]]
    plan.held_back[:] = out["held_back"]
    plan.bytes_after = out["bytes_after"]
    return list(out["failures"])


# ------------------------------------------------------------------------------------------ one run

def _found_at(resolved):
    """(path, source) of a resolved profile path: the source says whether OLLAMA_MODELS named it."""
    if "{env:" not in resolved.template:
        return resolved.path, "default"
    return resolved.path, "%s (OLLAMA_MODELS)" % resolved.source


def store_locations(params, problems=None, actors=None):
    """[(path, user, source)] of the Ollama models dirs: given ones, else every user's ~/.ollama/models, the
    service's, and OLLAMA_MODELS from each user's environment; each by the first name it was found by, and
    actors filled as _stores.locations says (the service's store: root's)."""
    return _stores.locations(params, "models_dirs", "an Ollama models dir", "ollama", _found_at, problems, actors)


def selection_from(params, now=None):
    _stores.check_globs([(option, params.get(option) or []) for option in ("models", "keep")],
                        "model pattern such as llama3:8b, llama3 or hf.co/*")
    older_than, max_size = _stores.age_and_size(params)
    orphans = None
    if params.get("orphans"):
        orphans = parse_duration(params.get("orphans_older_than") or "1d", "orphans_older_than")
    return OllamaSelection(patterns=params.get("models") or [], keep=params.get("keep") or [],
                           older_than=older_than, max_size=max_size, orphans_older_than=orphans, now=now)


def _model_entry(store, m):
    return {"store": store.path, "name": m.name, "model": m.full, "tag": m.tag, "manifest": store.path + "/" + m.manifest,
            "bytes": m.bytes, "exclusive_bytes": m.exclusive_bytes, "layers": len(m.blobs),
            "last_used": m.last_used, "modified": m.mtime}


def run(params, check_mode=False, now=None, actors=None):
    """The module's result. actors: {models dir: user} whose rights each store's removals run with (model_budget
    passes the ones it found); found by store_locations when not given."""
    selection = selection_from(params, now)
    locations, found_actors, env_problems = _stores.located(store_locations, params, actors)
    force = params.get("force", False)
    problems = env_problems  # environment values not used come first
    opened = OpenFiles([p for p, _u, _s in locations], problems,
                       "could not check which processes have model files open (no /proc here)")

    result = {"changed": False, "models": [], "removed": [], "swept": [], "held_back": [], "stores": [],
              "freed_bytes": 0, "problems": problems, "failures": []}
    before_lines, after_lines = [], []
    for path, user, source in locations:
        try:
            store = scan_store_as(found_actors.get(path), path, user, source)
        except (_privileges.ChildFailed, _privileges.NotReachable) as exc:
            # the store's user's child failed (killed, stopped): nothing of it is read, planned or removed, and
            # root does not read it instead
            result["failures"].append("%s: %s (not read, nothing removed there)" % (path, exc))
            continue
        real = os.path.realpath(path)

        def held_of(names, real=real):
            if force:
                return None
            for name in names:
                procs = opened().get(real + "/blobs/" + name)
                if procs:
                    return ("in_use", "%s/blobs/%s is open in process %d (%s)" % (real, name, procs[0][0], procs[0][1]))
            return None

        plan = plan_store(store, selection, held_of)
        if not check_mode and (plan.removed or plan.sweep):
            if not force:
                opened()  # read here, with root's sight of every process; the child asks this answer again
            result["failures"].extend(execute_as(plan, held_of, found_actors.get(path)))
            sweep = plan.sweep
        else:
            sweep = [(kind, b, b.size if b.nlink <= 1 else 0) for kind, b in plan.sweep]
        problems.extend(store.problems)
        result["models"].extend(_model_entry(store, m) for m in sorted(store.models, key=lambda m: m.full))
        gone = set(m.full for m in plan.removed)
        for m in sorted(store.models, key=lambda m: m.full):
            before_lines.append("%s %s" % (store.path, m.name))
            if m.full not in gone:
                after_lines.append("%s %s" % (store.path, m.name))
        for m in plan.removed:
            result["removed"].append({"store": store.path, "name": m.name, "model": m.full,
                                      "manifest": store.path + "/" + m.manifest, "freed_bytes": plan.freed[m.full],
                                      "layers_deleted": len(plan.blobs[m.full]), "reason": plan.reasons[m.full]})
            result["freed_bytes"] += plan.freed[m.full]
        for kind, b, got in sweep:
            result["swept"].append({"store": store.path, "path": store.path + "/blobs/" + b.name, "kind": kind,
                                    "bytes": got, "modified": b.mtime})
            result["freed_bytes"] += got
            before_lines.append("%s blobs/%s (%s)" % (store.path, b.name, kind))
        result["held_back"].extend(plan.held_back)
        summary = {"path": store.path, "user": user, "source": source, "bytes_before": plan.bytes_before,
                   "bytes_after": plan.bytes_after, "max_size": plan.max_size,
                   "over_budget": plan.max_size is not None and plan.bytes_after > plan.max_size}
        result["stores"].append(summary)
        if summary["over_budget"]:
            problems.append("Ollama models dir %s stays over its budget (%d > %d bytes): what is left is kept, held "
                            "back or out of scope" % (store.path, plan.bytes_after, plan.max_size))
    for key in ("failures",):
        items = result[key]
        if len(items) > MAX_LISTED:
            more = len(items) - MAX_LISTED
            del items[MAX_LISTED:]
            items.append("... and %d more" % more)
    result["changed"] = bool(result["removed"] or result["swept"])
    return _stores.close_result(result, "ollama_models", "name", "store", before_lines, after_lines, problems)
