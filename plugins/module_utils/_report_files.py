# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report's files, written in one module run (residue.purge.report_files).

The report role used to write one host record per task loop item (one module run per host, the report play's
whole slope) and each page in its own task. run() writes them all: `records` as <dest>/hosts/<host>.json (JSON as
to_nice_json(indent=2) writes it), `files` (name relative to dest, and text `content` or `data` written as JSON),
then points `latest` at dest. Every file goes to a temporary name in its directory and is renamed over the old one,
so a reader never sees half a record. A name is relative, without '..', and stays inside dest; a directory that
has to be created gets dir_mode. changed: some file or the link did not already hold what was asked.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import stat
import tempfile

from ansible_collections.residue.purge.plugins.module_utils._paths import lexical


def dumps(data):
    """JSON text as the to_nice_json(indent=2) filter writes it, with the template's final newline."""
    return json.dumps(data, indent=2, sort_keys=True, separators=(",", ": ")) + "\n"


def _mode(value, option):
    if isinstance(value, int):
        return value
    try:
        return int(str(value), 8)
    except ValueError:
        raise ValueError("%s: %r is not an octal mode" % (option, value))


def _relative(name, option):
    """The normalised relative name; ValueError for an absolute name, a '..' component, NUL or nothing."""
    if not isinstance(name, str) or "\0" in name or name.startswith("/"):
        raise ValueError("%s: %r is not a relative file name" % (option, name))
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError("%s: %r must name a file inside dest, without '..'" % (option, name))
    return "/".join(parts)


def record_name(host):
    """hosts/<host>.json; a '/' in an inventory name would be a directory, so it is written %2F (and '%' as %25)."""
    host = str(host)
    if "/" in host or host in (".", ".."):
        host = host.replace("%", "%25").replace("/", "%2F")
        if host in (".", ".."):
            host = host.replace(".", "%2E")
    return "hosts/%s.json" % host


def _same(path, content):
    try:
        with open(path, "rb") as f:
            return f.read() == content
    except (IOError, OSError):
        return False


def _makedirs(path, dir_mode, top):
    """Create path and its missing parents below top with dir_mode; a symlink on the way is refused."""
    missing = []
    while path != top and not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    if path != top and (os.path.islink(path) or not os.path.isdir(path)):
        raise ValueError("%s is not a directory (a symlink is not followed here)" % path)
    for directory in reversed(missing):
        os.mkdir(directory, dir_mode)
        os.chmod(directory, dir_mode)  # the umask does not decide the report's permissions


def _write(path, content, mode):
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            os.fchmod(f.fileno(), mode)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _link(path, target):
    """Point the symlink path at target (replacing a symlink or a file, never a directory); True when changed."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode) and os.readlink(path) == target:
        return False
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise ValueError("latest: %s is a directory, not a link" % path)
    tmp = os.path.join(os.path.dirname(path), ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.rename(tmp, path)
    return True


def plan(params):
    """[(absolute path, bytes)] for every file asked for, in the order given (records first)."""
    dest = lexical(params["dest"], "dest")
    out = []
    for record in params.get("records") or []:
        if not isinstance(record, dict) or "host" not in record:
            raise ValueError("records: every record is a dict with a host: %r" % (record,))
        out.append((os.path.join(dest, record_name(record["host"])), dumps(record).encode("utf-8")))
    for item in params.get("files") or []:
        name = _relative(item.get("name"), "files")
        if (item.get("content") is None) == (item.get("data") is None):
            raise ValueError("files: %s needs content or data, one of them" % name)
        text = item["content"] if item.get("content") is not None else dumps(item["data"])
        out.append((os.path.join(dest, name), text.encode("utf-8", "surrogateescape")))
    names = [p for p, _content in out]
    if len(set(names)) != len(names):
        raise ValueError("files: %s named twice" % sorted(set(p for p in names if names.count(p) > 1)))
    return dest, out


def run(params, check_mode=False):
    dest, files = plan(params)
    mode = _mode(params.get("mode") or "0640", "mode")
    dir_mode = _mode(params.get("dir_mode") or "0750", "dir_mode")
    latest = lexical(params["latest"], "latest") if params.get("latest") else None
    written = [path for path, content in files if os.path.islink(path) or not _same(path, content)]
    link_target = os.path.relpath(dest, os.path.dirname(latest)) if latest else None
    link_changed = bool(latest) and not (os.path.islink(latest) and os.readlink(latest) == link_target)
    result = dict(changed=bool(written) or link_changed, dest=dest, files=[p for p, _c in files], written=written,
                  latest=latest)
    if check_mode:
        return result
    top = os.path.dirname(dest)
    while not os.path.isdir(top):
        top = os.path.dirname(top)
    _makedirs(dest, dir_mode, top)
    _makedirs(os.path.join(dest, "hosts"), dir_mode, dest)
    for path, content in files:
        _makedirs(os.path.dirname(path), dir_mode, dest)
        if path in written:
            _write(path, content, mode)
        elif stat.S_IMODE(os.stat(path).st_mode) != mode:
            os.chmod(path, mode)
    if latest:
        if not os.path.isdir(os.path.dirname(latest)):
            raise ValueError("latest: %s is not a directory" % os.path.dirname(latest))
        _link(latest, link_target)
    return result
