# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""macOS host facts from command output: pure parsers, each fed the text a command printed, so they run (and are
tested from recorded output) on any OS. The commands themselves run through _platform.run.

    sw_vers                                          -> parse_sw_vers
    dscl . -list /Users UniqueID                     -> parse_dscl_users, macos_users
    ps -A -ww -o pid=,ruid=,uid=,command=  (with and without -E) -> parse_ps_environments
    launchctl print <domain>/<label>                 -> parse_launchctl_print
    launchctl list                                   -> parse_launchctl_list
    lsof -F ... (field output, NUL or newline terminated)  -> parse_lsof_fields
    tmutil listlocalsnapshots /                      -> parse_local_snapshots
    diskutil apfs list                               -> parse_apfs_list
    getattrlist(2) buffer with ATTR_CMNEXT_PRIVATESIZE -> decode_private_size (the call: _apfs.private_size)

Every parser takes hostile input (names with newlines, truncated output) without raising: what it cannot read
it leaves out, and the callers report what is missing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import struct
from collections import namedtuple

# uids of people on macOS start at 501; lower ones and `_`-prefixed records are service accounts.
MACOS_UID_MIN = 501
MACOS_UID_MAX = 2 ** 31 - 1  # 'nobody' is -2, printed as such, and never a person

DSCL_USERS = ["dscl", ".", "-list", "/Users", "UniqueID"]
PS_PLAIN = ["ps", "-A", "-ww", "-o", "pid=,ruid=,uid=,command="]
PS_ENV = ["ps", "-A", "-E", "-ww", "-o", "pid=,ruid=,uid=,command="]
TMUTIL_SNAPSHOTS = ["tmutil", "listlocalsnapshots", "/"]
# Every open file of every process (what holds files below a residue: descriptors, cwd, mapped files as 'txt').
LSOF_ALL = ["lsof", "-nP", "-w", "-F", "pcuLfn"]
# The Data volume's directories that appear at the root through firmlinks (/usr/share/firmlinks): a path may be
# reported under either name.
DATA_VOLUME = "/System/Volumes/Data"
FIRMLINKS = ("/AppleInternal", "/Applications", "/Library", "/System/Library/Caches", "/Users", "/Volumes",
             "/cores", "/opt", "/private", "/usr/local", "/usr/libexec/cups", "/usr/share/snmp")
DISKUTIL_APFS = ["diskutil", "apfs", "list"]

_ENV_NAME = re.compile(r"(?:^| )([A-Za-z_][A-Za-z0-9_]*)=")

ProcEnv = namedtuple("ProcEnv", "pid ruid uid environ")
Volume = namedtuple("Volume", "device name role mount_point consumed_bytes")


# ---------------------------------------------------------------------------------------------- sw_vers

def parse_sw_vers(text):
    """`sw_vers` -> {"ProductName": "macOS", "ProductVersion": "14.4.1", "BuildVersion": "23E224"}."""
    facts = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            facts[key.strip()] = value.strip()
    return facts


# ---------------------------------------------------------------------------------------------- users

def parse_dscl_users(text):
    """`dscl . -list /Users UniqueID` -> [(name, uid)]: one record per line, name then the number (padded
    with spaces). Lines that do not end in an integer (a record name with a newline in it splits into such
    lines) are left out."""
    users = []
    for line in text.splitlines():
        fields = line.rsplit(None, 1)
        if len(fields) != 2:
            continue
        name, uid = fields[0].strip(), fields[1]
        if not name or not re.match(r"^-?[0-9]+$", uid):
            continue
        users.append((name, int(uid)))
    return users


def is_person(name, uid):
    """A human account: uid in the people's range and no leading '_' (launchd's service accounts)."""
    return not name.startswith("_") and MACOS_UID_MIN <= uid <= MACOS_UID_MAX


def macos_users(dscl_text, lookup):
    """(people, problems): (name, uid, gid, home) of each human account dscl lists.

    lookup(name) -> an object with pw_uid, pw_gid, pw_dir (pwd.getpwnam, which asks Open Directory on macOS,
    unlike pwd.getpwall, which reads only /etc/passwd); KeyError when unknown. A record whose lookup fails or
    disagrees with dscl's uid is left out and reported (a name that dscl's text cannot carry whole)."""
    people, problems = [], []
    for name, uid in parse_dscl_users(dscl_text):
        if not is_person(name, uid):
            continue
        try:
            entry = lookup(name)
        except KeyError:
            problems.append("users: dscl lists %r (uid %d) but it has no directory entry; skipped" % (name, uid))
            continue
        if entry.pw_uid != uid:
            problems.append("users: dscl gives %r uid %d, the directory %d; skipped" % (name, uid, entry.pw_uid))
            continue
        people.append((name, uid, entry.pw_gid, entry.pw_dir))
    return people, problems


# ---------------------------------------------------------------------------------------------- environments

def _ps_lines(text):
    """{pid: ((ruid, uid), rest of line)} of `ps -o pid=,ruid=,uid=,command=` output."""
    rows = {}
    for line in text.split("\n"):
        fields = line.split(None, 3)
        if len(fields) < 3 or not fields[0].isdigit() or not all(re.match(r"^-?[0-9]+$", f) for f in fields[1:3]):
            continue
        rows[int(fields[0])] = ((int(fields[1]), int(fields[2])), fields[3] if len(fields) > 3 else "")
    return rows


def split_environment(text):
    """'A=1 B=two words C=3' -> {'A': '1', 'B': 'two words', 'C': '3'}: ps -E joins the environment with
    spaces, so a value runs up to the next ' NAME=' (a value that itself holds ' NAME=' is cut there; values are
    evidence, checked before use, never authority)."""
    env = {}
    matches = list(_ENV_NAME.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        env.setdefault(match.group(1), text[match.end():end])
    return env


def parse_ps_environments(plain_text, env_text, names=None):
    """[ProcEnv(pid, ruid, uid, environ)] from the same `ps` listing without and with -E.

    The environment is what -E adds after the command line of the same pid: comparing the two listings is what
    tells arguments from environment (an argument may look like NAME=value). A process whose -E line does not
    start with its plain command line (it exec'd between the two runs, or macOS showed no environment: another
    user's process without root, or a SIP-protected one) gives an empty environ; so does one whose uids changed
    between the runs (the pid was reused). ruid != uid marks a setuid program running with the environment of
    the user who started it. names: keep only these variables."""
    plain = _ps_lines(plain_text)
    found = []
    for pid, (uids, with_env) in sorted(_ps_lines(env_text).items()):
        if pid not in plain or plain[pid][0] != uids:
            continue
        command = plain[pid][1]
        environ = {}
        if with_env.startswith(command) and with_env[len(command):len(command) + 1] == " ":
            environ = split_environment(with_env[len(command) + 1:])
        if names is not None:
            environ = dict((k, v) for k, v in environ.items() if k in names)
        found.append(ProcEnv(pid, uids[0], uids[1], environ))
    return found


# ---------------------------------------------------------------------------------------------- launchd

def parse_launchctl_print(text):
    """`launchctl print <domain>/<label>` -> {target, path, type, state, pid, program, arguments}: the top-level
    `key = value` lines of the service block (nested blocks other than `arguments` skipped). {} when launchctl
    printed no service block (not loaded: "Could not find service ...")."""
    info, depth, in_args = {}, 0, False
    for raw in text.split("\n"):
        line = raw.strip()
        if depth == 0:
            if line.endswith("= {"):
                info["target"] = line[:-3].strip()
                depth = 1
            continue
        if line == "}":
            depth -= 1
            in_args = False
            if depth == 0:
                break
            continue
        if line.endswith("{"):
            depth += 1
            if depth == 2 and line.split(" = ")[0] == "arguments":
                in_args = True
                info["arguments"] = []
            continue
        if in_args and depth == 2:
            info["arguments"].append(line)
            continue
        if depth != 1:
            continue
        key, sep, value = line.partition(" = ")
        if sep:
            info.setdefault(key.strip(), value.strip())
    if "pid" in info:
        info["pid"] = int(info["pid"]) if info["pid"].isdigit() else None
    return info


def parse_launchctl_list(text):
    """`launchctl list` -> [(pid or None, last exit status or None, label)] (tab-separated, header skipped)."""
    jobs = []
    for line in text.split("\n"):
        fields = line.split("\t")
        if len(fields) != 3 or fields[0] == "PID" or not fields[2]:
            continue
        pid = int(fields[0]) if fields[0].isdigit() else None
        status = int(fields[1]) if re.match(r"^-?[0-9]+$", fields[1]) else None
        jobs.append((pid, status, fields[2]))
    return jobs


def bundle_of(path):
    """The .app bundle a plist lives inside ('/Applications/Ollama.app' for
    '/Applications/Ollama.app/Contents/Library/LaunchAgents/com.ollama.ollama.plist'), else None: such a plist
    belongs to the app (SMAppService) and goes with the app, never on its own."""
    parts = path.split("/")
    for i in range(len(parts) - 1, 0, -1):
        if parts[i].endswith(".app") and i + 1 < len(parts) and parts[i + 1] == "Contents":
            return "/".join(parts[:i + 1])
    return None


# ---------------------------------------------------------------------------------------------- lsof

def parse_lsof_fields(output):
    """lsof field output (-F): one field per NUL (with -F...0) or per line, the field's kind in its first
    character. A 'p' field starts a process set, an 'f' field a file set within it.

    Returns [{pid, command, login, uid, files: [{fd, type, size, device, inode, links, name}]}]; numbers are
    ints where lsof printed digits (sizes of pipes and sockets come as offsets or not at all: None).
    Fields before the first 'p' (truncated output) are ignored."""
    processes, process, current = [], None, None
    for token in re.split("[\0\n]", output):
        if not token:
            continue
        kind, value = token[0], token[1:]
        if kind == "p":
            process = {"pid": int(value) if value.isdigit() else None, "command": "", "login": "", "uid": None,
                       "files": []}
            current = None
            processes.append(process)
        elif process is None:
            continue
        elif kind == "f":
            current = {"fd": value, "type": "", "size": None, "device": "", "inode": None, "links": None,
                       "name": ""}
            process["files"].append(current)
        elif current is None:
            if kind == "c":
                process["command"] = value
            elif kind == "L":
                process["login"] = value
            elif kind == "u":
                process["uid"] = int(value) if value.isdigit() else None
        elif kind == "t":
            current["type"] = value
        elif kind == "s":
            current["size"] = int(value) if value.isdigit() else None
        elif kind == "D":
            current["device"] = value
        elif kind == "i":
            current["inode"] = int(value) if value.isdigit() else None
        elif kind == "k":
            current["links"] = int(value) if value.isdigit() else None
        elif kind == "n":
            current["name"] = value
    return [p for p in processes if p["pid"] is not None]


def firmlinked(path):
    """'/System/Volumes/Data/Users/a/x' -> '/Users/a/x' (the name profiles and options use); other paths as given."""
    if path.startswith(DATA_VOLUME + "/"):
        rest = path[len(DATA_VOLUME):]
        if any(rest == link or rest.startswith(link + "/") for link in FIRMLINKS):
            return rest
    return path


def data_volume_name(path):
    """'/Users/a/x' -> '/System/Volumes/Data/Users/a/x' (where a firmlinked file really lives); else None."""
    if any(path == link or path.startswith(link + "/") for link in FIRMLINKS):
        return DATA_VOLUME + path
    return None


def lsof_device(text):
    """lsof's DEVICE field -> the st_dev number: '0x1000012' (macOS), '1,4' or '8:1' (major, minor on the BSDs
    and Linux, needing os.makedev: returned as a (major, minor) tuple); None for anything else."""
    if re.match(r"^0x[0-9a-fA-F]+$", text or ""):
        return int(text, 16)
    match = re.match(r"^([0-9]+)[,:]([0-9]+)$", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def holders_under(output, roots, under):
    """{pid: root} of the processes whose open files (lsof field output) lie under one of roots.
    under(path, roots) -> the root holding path or None (_paths.root_of)."""
    found = {}
    for process in parse_lsof_fields(output):
        for entry in process["files"]:
            root = under(firmlinked(entry["name"]), roots) if entry["name"].startswith("/") else None
            if root:
                found.setdefault(process["pid"], root)
                break
    return found


# ---------------------------------------------------------------------------------------------- APFS

def parse_local_snapshots(text):
    """`tmutil listlocalsnapshots /` -> snapshot names (the header line 'Snapshots for ...:' skipped)."""
    names = []
    for line in text.split("\n"):
        line = line.strip()
        if line and not line.endswith(":") and " " not in line:
            names.append(line)
    return names


_SIZE_BYTES = re.compile(r"^([0-9]+) B\b")


def parse_apfs_list(text):
    """`diskutil apfs list` -> [Volume(device, name, role, mount_point, consumed_bytes)] for each APFS volume of
    every container (mount_point '' when not mounted)."""
    volumes, current = [], None
    for raw in text.split("\n"):
        line = re.sub(r"^[|\s]+", "", raw).rstrip()
        match = re.match(r"^\+-> Volume (disk[0-9]+s[0-9]+)\b", line)
        if match:
            current = {"device": match.group(1), "name": "", "role": "", "mount_point": "",
                       "consumed_bytes": None}
            volumes.append(current)
            continue
        if re.match(r"^\+-- Container ", line) or re.match(r"^\+-< Physical Store ", line):
            current = None
            continue
        if current is None:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "Name":
            current["name"] = re.sub(r" \((Case-(in)?sensitive)\)$", "", value)
        elif key.startswith("APFS Volume Disk (Role)"):
            role = re.search(r"\(([^)]*)\)\s*$", value)
            current["role"] = role.group(1) if role else ""
        elif key == "Mount Point":
            current["mount_point"] = "" if value.startswith("Not Mounted") else value
        elif key == "Capacity Consumed":
            size = _SIZE_BYTES.match(value)
            current["consumed_bytes"] = int(size.group(1)) if size else None
    return [Volume(**v) for v in volumes]


def parse_print_disabled(text):
    """`launchctl print-disabled <domain>` -> {label: disabled (bool)} from its 'disabled services' block
    ('=> disabled'/'=> enabled'; older macOS prints '=> true'/'=> false')."""
    states, inside = {}, False
    for raw in text.split("\n"):
        line = raw.strip()
        if line.endswith("= {"):
            inside = line.startswith("disabled services")
            continue
        if line == "}":
            inside = False
            continue
        match = re.match(r'^"(.*)" => (disabled|enabled|true|false)$', line) if inside else None
        if match:
            states[match.group(1)] = match.group(2) in ("disabled", "true")
    return states


# getattrlist(2), from xnu's bsd/sys/attr.h and bsd/man/man2/getattrlist.2 (apple-oss-distributions/xnu):
#   struct attrlist { u_short bitmapcount; u_int16_t reserved; attrgroup_t commonattr, volattr, dirattr, fileattr,
#                     forkattr; }   attrgroup_t is u_int32_t; bitmapcount must be ATTR_BIT_MAP_COUNT (5)
#   attribute_set_t { attrgroup_t commonattr, volattr, dirattr, fileattr, forkattr; }
#   FSOPT_NOFOLLOW 0x1; FSOPT_ATTR_CMN_EXTENDED 0x20 (forkattr then means the ATTR_CMNEXT_* attributes)
#   ATTR_CMN_RETURNED_ATTRS 0x80000000: an attribute_set_t of what was really returned, always the first attribute
#   ATTR_CMNEXT_PRIVATESIZE 0x8: an off_t, "the number of bytes that are not trapped inside a clone or snapshot,
#   and which would be freed immediately if the file were deleted" (macOS 10.15+, APFS)
# The returned buffer: u_int32_t length of what was returned (the length field included), then the attributes in
# the order the man page lists them (common, volume, directory, file, fork/extended common), each aligned to
# 4 bytes, 64-bit ones included; unsupported attributes are skipped (not packed) unless FSOPT_PACK_INVAL_ATTRS.
ATTR_BIT_MAP_COUNT = 5
ATTR_CMN_RETURNED_ATTRS = 0x80000000
ATTR_CMNEXT_PRIVATESIZE = 0x00000008
FSOPT_NOFOLLOW = 0x00000001
FSOPT_ATTR_CMN_EXTENDED = 0x00000020
# what private_size asks for: common = RETURNED_ATTRS, fork (extended common) = PRIVATESIZE
PRIVATE_SIZE_REQUEST = struct.pack("=HHIIIII", ATTR_BIT_MAP_COUNT, 0, ATTR_CMN_RETURNED_ATTRS, 0, 0, 0,
                                   ATTR_CMNEXT_PRIVATESIZE)
PRIVATE_SIZE_OPTIONS = FSOPT_NOFOLLOW | FSOPT_ATTR_CMN_EXTENDED
_LENGTH = struct.Struct("=I")
_RETURNED = struct.Struct("=5I")
_OFF_T = struct.Struct("=q")
PRIVATE_SIZE_BUFFER = _LENGTH.size + _RETURNED.size + _OFF_T.size  # 32 bytes when the size is returned


def decode_private_size(buf):
    """The ATTR_CMNEXT_PRIVATESIZE (bytes of the file no clone or snapshot shares) in a buffer getattrlist filled
    for PRIVATE_SIZE_REQUEST, native byte order; None when it is not there (not APFS, an older macOS) or the buffer
    is not what was asked for: too short, a length field beyond the buffer, attributes that were not requested
    (their layout would shift the value), a negative size."""
    buf = bytes(buf)
    if len(buf) < _LENGTH.size + _RETURNED.size:
        return None
    (length,) = _LENGTH.unpack_from(buf, 0)
    if length < _LENGTH.size + _RETURNED.size or length > len(buf):
        return None
    common, vol, dirs, files, extended = _RETURNED.unpack_from(buf, _LENGTH.size)
    if common & ~ATTR_CMN_RETURNED_ATTRS or vol or dirs or files or extended & ~ATTR_CMNEXT_PRIVATESIZE:
        return None
    if not extended & ATTR_CMNEXT_PRIVATESIZE or length < PRIVATE_SIZE_BUFFER:
        return None
    (size,) = _OFF_T.unpack_from(buf, _LENGTH.size + _RETURNED.size)
    return size if size >= 0 else None
