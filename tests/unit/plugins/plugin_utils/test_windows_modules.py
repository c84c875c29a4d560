# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What can be proven about the Windows modules without Windows or PowerShell.

- every .ps1/.psm1 parses with the tree-sitter PowerShell grammar (a syntax floor, not PowerShell's parser);
- each win_<name>.ps1's literal $spec matches its win_<name>.py DOCUMENTATION (options, types, elements,
  defaults, choices) and the POSIX module's docs where both must agree; it only sets documented return keys
  and sets every documented one;
- the module_utils each module requires resolve the way ansible-core builds a PowerShell payload;
- every C# module_util compiles with Mono's C# compiler at C# 5 (the level of Windows PowerShell 5.1's Add-Type)
  against the assemblies Add-Type references by default;
- routing: residue.purge.<name> resolves to win_<name>.ps1 for a PowerShell shell and to <name>.py otherwise.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import tree_sitter  # requirements-dev.txt and tests/unit/requirements.txt
import tree_sitter_powershell


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
MODULES = os.path.join(ROOT, "plugins", "modules")
UTILS = os.path.join(ROOT, "plugins", "module_utils")
COLLECTION = "residue.purge"

TARGETS = os.path.join(ROOT, "tests", "integration", "targets")
PS_FILES = sorted(glob.glob(os.path.join(MODULES, "*.ps1")) + glob.glob(os.path.join(UTILS, "*.psm1"))
                  + glob.glob(os.path.join(TARGETS, "win_*", "files", "*.ps1"))
                  + glob.glob(os.path.join(ROOT, "playbooks", "files", "*.ps1")))
WIN_MODULES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(MODULES, "win_*.ps1")))
CS_FILES = sorted(glob.glob(os.path.join(UTILS, "*.cs")))

# Options that exist on one side only, each with the reason; everything else must agree exactly (type, elements,
# default, choices, required). None today: every option of a POSIX module is accepted by its Windows twin, so one
# task runs on every host. A POSIX-only option (say reap gains `namespaces`) must be listed here with its reason
# and named in the win_<name>.py notes, and the roles must not pass it to Windows hosts (Ansible.Basic refuses an
# unknown option). Usually better: accept it on Windows too and list it in NO_EFFECT_ON_WINDOWS.
WINDOWS_ONLY_OPTIONS = {}
POSIX_ONLY_OPTIONS = {
    "win_reap": {"namespaces": "PID namespaces (containers' processes seen from the host) exist only on Linux"},
}
# Options a Windows module accepts (its POSIX twin's) that do nothing there, each with the reason; each one's
# win_<name>.py description says so. test_every_option_is_used_or_said_to_have_no_effect finds the others used.
NO_EFFECT_ON_WINDOWS = {
    "win_discover": {
        "scan_processes": "other processes' environments are not read on Windows; the registry environments are",
        "one_file_system": "a mounted volume is a reparse point there, never entered",
    },
    "win_hf_cache": {
        "one_file_system": "a mounted volume is a reparse point there, never entered",
        "store_orphans": "huggingface_hub 2.x's shared blob store is not read on Windows yet",
    },
    "win_remove": {
        "backup_format": "the Windows backup is always a zip",
        "cross_filesystems": "a mounted volume is a reparse point there, never entered",
        "scan_processes": "other processes' environments are not read on Windows; the registry environments are",
    },
}
# Return keys of what exists only on Windows (the POSIX keys are returned too, always empty there).
WINDOWS_ONLY_RETURNS = {
    "win_autostart": {"services", "scheduled_tasks", "run_keys", "startup_items"},
}
# Keys Ansible.Basic and the module itself may set besides the documented ones.
ALWAYS_ALLOWED_RESULT_KEYS = {"changed", "diff"}


def _parser():
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def parse(path):
    with open(path, "rb") as f:
        return _parser().parse(f.read())


def syntax_errors(node, found=None):
    found = [] if found is None else found
    if node.type == "ERROR" or node.is_missing:
        found.append("%s at line %d" % ("missing " + node.type if node.is_missing else "syntax error",
                                        node.start_point[0] + 1))
    for child in node.children:
        syntax_errors(child, found)
    return found


class NotLiteral(Exception):
    pass


def _unwrap(node):
    while node.named_child_count == 1 and node.type not in ("string_literal", "hash_literal_expression",
                                                            "array_expression"):
        node = node.named_children[0]
    return node


def literal(node):
    """The Python value of a literal PowerShell expression (hashtables, arrays, strings, numbers, $true...)."""
    node = _unwrap(node)
    kind = node.type
    if kind == "hash_literal_expression":
        result = {}
        for entry in _hash_entries(node):
            key_node, value_node = entry.named_children[0], entry.named_children[-1]
            key = literal(key_node) if _unwrap(key_node).type == "string_literal" else _unwrap(key_node).text.decode()
            result[key] = literal(value_node)
        return result
    if kind == "array_expression":
        inner = list(node.named_children)
        if not inner:
            return []
        value = literal(inner[0])
        return value if isinstance(value, list) else [value]
    if kind == "array_literal_expression":
        return [literal(c) for c in node.named_children]
    if kind == "string_literal":
        text = node.text.decode()
        if text[0] in "'\"" and text[-1] == text[0]:
            if text[0] == '"' and ("$" in text or "`" in text):
                raise NotLiteral(text)
            return text[1:-1].replace("''", "'") if text[0] == "'" else text[1:-1]
        raise NotLiteral(text)
    if kind == "variable":
        name = node.text.decode().lower()
        if name in ("$true", "$false", "$null"):
            return {"$true": True, "$false": False, "$null": None}[name]
        raise NotLiteral(name)
    if kind == "decimal_integer_literal":
        return int(node.text.decode())
    if kind == "real_literal":
        return float(node.text.decode())
    raise NotLiteral("%s: %s" % (kind, node.text.decode()[:80]))


def _hash_entries(node):
    for child in node.named_children:
        if child.type == "hash_entry":
            yield child
        elif child.type == "hash_literal_body":
            for entry in child.named_children:
                if entry.type == "hash_entry":
                    yield entry


def walk(node):
    yield node
    for child in node.children:
        yield from walk(child)


def module_spec(tree):
    """The literal hashtable assigned to $spec."""
    for node in walk(tree.root_node):
        if node.type == "assignment_expression":
            target = _unwrap(node.named_children[0])
            if target.type == "variable" and target.text.decode().lower() == "$spec":
                return literal(node.named_children[-1])
    raise AssertionError("no '$spec = @{...}' assignment")


def _is_result(node):
    node = _unwrap(node)
    if node.type != "member_access" or len(node.named_children) < 2:
        return False
    owner, member = _unwrap(node.named_children[0]), node.named_children[-1]
    return owner.type == "variable" and owner.text.decode().lower() == "$module" and member.text.decode() == "Result"


def result_keys(tree):
    """Names set as $module.Result.<key> or $module.Result['key']; other uses of $module.Result fail the test."""
    keys = set()
    for node in walk(tree.root_node):
        if node.type in ("member_access", "element_access") and _is_result(node.named_children[0]):
            key_node = node.named_children[-1]
            if node.type == "member_access":
                keys.add(key_node.text.decode())
            else:
                keys.add(literal(key_node))
    return keys


# ------------------------------------------------------------------ docs

class _Fragments(object):
    """The doc fragment loader get_docstring needs, importing this collection's fragments directly: no global
    plugin loader state, whatever other tests imported first."""

    @staticmethod
    def get(name):
        parts = name.split(".")
        if len(parts) != 3:
            return None  # 'ns.coll.fragment.VAR': add_fragments then asks for 'ns.coll.fragment'
        namespace, collection, fragment = parts
        module = __import__("ansible_collections.%s.%s.plugins.doc_fragments.%s" % (namespace, collection, fragment),
                            fromlist=["ModuleDocFragment"])
        return type("ModuleDocFragment", (module.ModuleDocFragment,), {"ansible_name": name})


@pytest.fixture(scope="module")
def docs():
    from ansible.utils.plugin_docs import get_docstring

    cache = {}

    def load(name):
        if name not in cache:
            doc, _plainexamples, returndocs, _metadata = get_docstring(
                os.path.join(MODULES, name + ".py"), _Fragments(), collection_name=COLLECTION, is_module=True)
            cache[name] = (doc, returndocs or {})
        return cache[name]
    return load


def _doc_option(option):
    """An option's documented contract, in Ansible.Basic's terms."""
    return {
        "type": option.get("type", "str"),
        "elements": option.get("elements"),
        "default": option.get("default"),
        "choices": option.get("choices"),
        "required": bool(option.get("required", False)),
    }


def _spec_option(option):
    return {
        "type": option.get("type", "str"),
        "elements": option.get("elements"),
        "default": option.get("default"),
        "choices": option.get("choices"),
        "required": bool(option.get("required", False)),
    }


def _posix_name(win_name):
    return win_name[len("win_"):]


@pytest.mark.parametrize("path", PS_FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_powershell_parses(path):
    errors = syntax_errors(parse(path).root_node)
    assert not errors, "%s: %s" % (path, "; ".join(errors[:5]))


def test_the_parse_check_can_fail():
    broken = _parser().parse(b"$spec = @{ options = @{ a = @{ type = 'str' }\nif ($x) { Write-Output 'y'\n")
    assert syntax_errors(broken.root_node)


def test_there_are_windows_modules():
    assert "win_discover" in WIN_MODULES


@pytest.mark.parametrize("name", WIN_MODULES)
def test_layout(name):
    posix = _posix_name(name)
    assert os.path.isfile(os.path.join(MODULES, name + ".py")), "docs of %s belong in %s.py" % (name, name)
    # the loader would pick <name>.ps1 for POSIX hosts too
    assert not os.path.exists(os.path.join(MODULES, posix + ".ps1"))
    with open(os.path.join(MODULES, name + ".ps1")) as f:
        text = f.read()
    assert text.startswith("#!powershell\n")
    assert "#AnsibleRequires -CSharpUtil Ansible.Basic" in text
    assert "[Ansible.Basic.AnsibleModule]::Create($args, $spec)" in text
    assert "Ansible.ModuleUtils.Legacy" not in text


@pytest.mark.parametrize("name", WIN_MODULES)
def test_spec_matches_documentation(name, docs):
    spec = module_spec(parse(os.path.join(MODULES, name + ".ps1")))
    assert spec.get("supports_check_mode") is True
    doc, _returns = docs(name)
    spec_options = dict((k, _spec_option(v)) for k, v in spec["options"].items())
    doc_options = dict((k, _doc_option(v)) for k, v in doc["options"].items())
    assert sorted(spec_options) == sorted(doc_options)
    for option in spec_options:
        assert spec_options[option] == doc_options[option], option


@pytest.mark.parametrize("name", WIN_MODULES)
def test_documentation_agrees_with_the_posix_module(name, docs):
    win, win_returns = docs(name)
    posix, posix_returns = docs(_posix_name(name))
    win_only = set(WINDOWS_ONLY_OPTIONS.get(name, {}))
    posix_only = set(POSIX_ONLY_OPTIONS.get(name, {}))
    assert set(win["options"]) - win_only == set(posix["options"]) - posix_only
    for option in set(win["options"]) & set(posix["options"]):
        assert _doc_option(win["options"][option]) == _doc_option(posix["options"][option]), option
    assert sorted(set(win_returns) - WINDOWS_ONLY_RETURNS.get(name, set())) == sorted(posix_returns)
    for key in posix_returns:
        assert win_returns[key].get("type") == posix_returns[key].get("type"), key


# What a POSIX module's RETURN names in a value's description (C(sub_key), V(value): entry keys such as survivors'
# parents and restarted_by, outcomes such as V(respawned)) its Windows twin names too, but these, each with why.
RETURN_WORDS_NOT_ON_WINDOWS = {
    ("win_reap", "other_namespaces"): ("Windows has no PID namespaces: never returned there", None),
    ("win_discover", "hf_caches"): ("huggingface_hub 2.x's shared blob store is not read on Windows yet",
                                    {"C(store_bytes)"}),
    ("win_hf_cache", "held_back"): ("huggingface_hub 2.x's shared blob store is not read on Windows yet",
                                    {"C(<xx>/<hash>)", "V(shared_blob)"}),
}
# RETURN keys whose `returned` differs on Windows, with why (elements and type must always agree).
RETURNED_DIFFERS_ON_WINDOWS = {
    ("win_reap", "other_namespaces"): "Windows has no PID namespaces",
    ("win_hf_cache", "store_swept"): "huggingface_hub 2.x's shared blob store is not read on Windows yet",
}


def _words(entry):
    text = entry.get("description", [])
    text = " ".join(text) if isinstance(text, list) else text
    return set("%s(%s)" % m for m in re.findall(r"\b([CV])\(([^()]*)\)", text))


@pytest.mark.parametrize("name", WIN_MODULES)
def test_return_values_say_what_the_posix_ones_say(name, docs):
    """An entry key or outcome added to a POSIX module's results (say reap's survivors gain parents and
    restarted_by) and not documented for its Windows twin fails here, as an option added on one side does."""
    _win, win_returns = docs(name)
    _posix, posix_returns = docs(_posix_name(name))
    for key, entry in posix_returns.items():
        why, words = RETURN_WORDS_NOT_ON_WINDOWS.get((name, key), (None, set()))
        missing = _words(entry) - _words(win_returns[key])
        if words is None:  # not returned on Windows at all
            assert why and win_returns[key].get("returned", "").startswith("never"), key
            continue
        assert missing == set(words), "%s.py RETURN %s does not name %s" % (name, key, sorted(missing - set(words)))
        assert win_returns[key].get("elements") == entry.get("elements"), key
        if (name, key) not in RETURNED_DIFFERS_ON_WINDOWS:
            assert win_returns[key].get("returned") == entry.get("returned"), key


def test_return_words_catch_a_missing_sub_key():
    posix = {"description": ["A V(respawned) entry also has C(parents) and C(restarted_by)."]}
    win = {"description": ["Processes with C(outcome) V(respawned)."]}
    assert _words(posix) - _words(win) == {"C(parents)", "C(restarted_by)"}


@pytest.mark.parametrize("name", WIN_MODULES)
def test_posix_only_options_are_named_in_the_windows_docs(name, docs):
    win, _returns = docs(name)
    notes = " ".join(win.get("notes", []) + win.get("description", []))
    for option, why in POSIX_ONLY_OPTIONS.get(name, {}).items():
        # O(option) would name an option this module lacks (validate-modules refuses it): the POSIX module's is named
        named = ("O(%s)" % option, "O(%s.%s#module:%s)" % (COLLECTION, _posix_name(name), option))
        assert why and any(n in notes for n in named), "win_%s.py must say that %s is POSIX-only" % (name, option)


@pytest.mark.parametrize("name", WIN_MODULES)
def test_every_option_is_used_or_said_to_have_no_effect(name, docs):
    """An option of the $spec that the module never reads is silently ignored: list it, with why, and say so."""
    with open(os.path.join(MODULES, name + ".ps1")) as f:
        code = f.read()
    with open(os.path.join(UTILS, "_WinResidue.psm1")) as f:
        code += f.read()  # the shared options (targets, profiles, homes, users) are read there
    spec = module_spec(parse(os.path.join(MODULES, name + ".ps1")))
    unused = set(option for option in spec["options"]
                 if not re.search(r"Params(?:\.%s\b|\[['\"]%s['\"]\])" % (option, option), code))
    assert unused == set(NO_EFFECT_ON_WINDOWS.get(name, {})), (
        "options %s are never read by %s.ps1: implement them, or list them in NO_EFFECT_ON_WINDOWS with why"
        % (sorted(unused), name))
    win, _returns = docs(name)
    for option in unused:
        text = " ".join(win["options"][option]["description"])
        assert "Windows" in text, "win_%s.py: the description of %s must say it does nothing on Windows" % (name, option)


@pytest.mark.parametrize("name", WIN_MODULES)
def test_only_documented_results(name, docs):
    keys = result_keys(parse(os.path.join(MODULES, name + ".ps1")))
    _doc, returns = docs(name)
    undocumented = keys - set(returns) - ALWAYS_ALLOWED_RESULT_KEYS
    assert not undocumented, "undocumented return keys: %s" % sorted(undocumented)
    always = set(k for k, v in returns.items() if v.get("returned", "always") == "always")
    assert always <= keys, "documented but never set: %s" % sorted(always - keys)


def test_result_key_extraction_sees_both_forms():
    tree = _parser().parse(b"$module.Result.alpha = 1\n$module.Result['beta'] = 2\n$other.Result.gamma = 3\n")
    assert result_keys(tree) == {"alpha", "beta"}


# ------------------------------------------------------------------ payload and routing

# Resolution runs in a fresh interpreter: ansible-core's collection loader must be installed before anything
# imports ansible_collections, which other unit tests do.
_RESOLVE = r"""
import json, sys
from ansible.plugins.loader import init_plugin_loader, module_loader
from ansible.executor.powershell.module_manifest import PSModuleDepFinder
init_plugin_loader([sys.argv[1]])
out = {"routes": {}, "deps": {}}
for name in json.loads(sys.argv[2]):
    for shell, mod_type in (("powershell", ".ps1"), ("posix", "")):
        found = module_loader.find_plugin_with_context("residue.purge." + name, mod_type=mod_type, collection_list=None)
        out["routes"]["%s/%s" % (name, shell)] = found.plugin_resolved_path if found.resolved else None
    finder = PSModuleDepFinder()
    with open(sys.argv[3] + "/win_%s.ps1" % name, "rb") as f:
        deps = finder.scan_module(f.read(), fqn="ansible_collections.residue.purge.plugins.modules.win_" + name)
    if deps is None:  # ansible-core < 2.19 returns nothing and keeps what it found, by name without extension
        deps = [m + ".cs" for m in finder.cs_utils_module] + [m + ".psm1" for m in finder.ps_modules]
    out["deps"][name] = sorted(deps)
print(json.dumps(out))
"""


def _collections_root():
    parent = os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))
    if os.path.basename(os.path.dirname(os.path.dirname(ROOT))) == "ansible_collections":
        return parent  # ansible-test's tree: .../ansible_collections/residue/purge
    return os.path.join(ROOT, ".build", "collections")


@pytest.fixture(scope="module")
def resolved():
    names = [n[len("win_"):] for n in WIN_MODULES]
    proc = subprocess.run([sys.executable, "-c", _RESOLVE, _collections_root(), json.dumps(names), MODULES],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=_collections_root()))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", WIN_MODULES)
def test_required_module_utils_resolve(name, resolved):
    deps = resolved["deps"][name[len("win_"):]]
    assert "Ansible.Basic.cs" in deps
    with open(os.path.join(MODULES, name + ".ps1")) as f:
        wanted = re.findall(r"(?m)^#AnsibleRequires -(?:CSharpUtil|PowerShell) (ansible_collections\.\S+)", f.read())
    for util in wanted:
        assert any(d.startswith(util + ".") for d in deps), util


@pytest.mark.parametrize("name", WIN_MODULES)
def test_what_each_util_uses_is_shipped_with_the_module(name, resolved):
    """The payload compiles every util of a module into one assembly: each util's 'using Ansible.X;' (a builtin such
    as Ansible.AccessToken, which _WinActAs's token handling uses) and 'using ansible_collections...;' must be among
    the module's dependencies, or Add-Type fails on the host."""
    deps = resolved["deps"][name[len("win_"):]]
    for dep in deps:
        if not dep.startswith("ansible_collections.residue.purge.") or not dep.endswith(".cs"):
            continue
        with open(os.path.join(UTILS, dep.rsplit(".", 2)[-2] + ".cs")) as f:
            used = re.findall(r"(?m)^using ((?:Ansible\.\w+)|(?:ansible_collections\.[\w.]+));", f.read())
        for util in used:
            assert util + ".cs" in deps, (dep, util)


@pytest.mark.parametrize("name", [n[len("win_"):] for n in WIN_MODULES])
def test_routing_by_shell(name, resolved):
    windows = resolved["routes"][name + "/powershell"]
    assert windows and windows.endswith(os.sep + "win_%s.ps1" % name)
    posix = resolved["routes"][name + "/posix"]
    assert posix and posix.endswith(os.sep + "%s.py" % name)


def test_runtime_routes_every_windows_module():
    import yaml

    with open(os.path.join(ROOT, "meta", "runtime.yml")) as f:
        routing = yaml.safe_load(f)["plugin_routing"]["modules"]
    wanted = dict(("%s.ps1" % n[len("win_"):], {"redirect": "residue.purge.%s" % n}) for n in WIN_MODULES)
    assert dict((k, v) for k, v in routing.items() if k.endswith(".ps1")) == wanted


# ------------------------------------------------------------------ C#

MCS = shutil.which("mcs")
ANSIBLE_CSHARP = os.path.join(os.path.dirname(__import__("ansible").__file__), "module_utils", "csharp")


def assembly_references(paths=None):
    """-r: options for the .NET Framework assemblies our utils reference (//AssemblyReference -Name X.dll)."""
    refs = []
    for path in paths or CS_FILES:
        with open(path) as f:
            for name, clr in re.findall(r"(?m)^//\s*AssemblyReference\s+-Name\s+([\w.]+)(?:\s+-CLR\s+(\w+))?", f.read()):
                if clr in ("", "Framework") and "-r:" + name not in refs:
                    refs.append("-r:" + name)
    return refs


def test_a_util_without_its_assembly_reference_does_not_compile(tmp_path):
    """The //AssemblyReference line of _WinBackup is what makes System.IO.Compression resolve (as on Windows)."""
    assert "-r:System.IO.Compression.dll" in assembly_references()
    cmd = [MCS, "-langversion:5", "-target:library", "-d:WINDOWS", "-r:System.dll", "-r:System.Core.dll",
           "-out:" + str(tmp_path / "x.dll")] + CS_FILES + [os.path.join(ANSIBLE_CSHARP, "Ansible.Privilege.cs")]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert proc.returncode != 0 and "ZipArchive" in proc.stdout, proc.stdout


def test_csharp_module_utils_compile(tmp_path):
    assert MCS, "mcs not found: tools/bootstrap.sh installs Debian's mono-mcs"
    assert CS_FILES
    # the builtin utils ours use ('using Ansible.X;'), as the payload builder adds them
    builtin = set()
    for path in CS_FILES:
        with open(path) as f:
            builtin.update(re.findall(r"(?m)^using (Ansible\.\w+);", f.read()))
    out = str(tmp_path / "residue.dll")
    # Windows PowerShell 5.1's Add-Type compiles C# 5 against System and System.Core, plus what a util names in
    # an //AssemblyReference line (Ansible.ModuleUtils.AddType); Ansible defines WINDOWS.
    cmd = [MCS, "-langversion:5", "-target:library", "-warnaserror+", "-nowarn:169,414,649",
           "-d:WINDOWS", "-r:System.dll", "-r:System.Core.dll", "-out:" + out] + assembly_references() + CS_FILES + [
        os.path.join(ANSIBLE_CSHARP, name + ".cs") for name in sorted(builtin)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stdout


def test_the_compile_check_can_fail(tmp_path):
    assert MCS, "mcs not found: tools/bootstrap.sh installs Debian's mono-mcs"
    bad = tmp_path / "bad.cs"
    bad.write_text("namespace X { public class Y { public string Z() { return $\"{1}\"; } } }\n")  # C# 6
    proc = subprocess.run([MCS, "-langversion:5", "-target:library", "-out:" + str(tmp_path / "x.dll"), str(bad)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert proc.returncode != 0


def test_type_accelerators_name_one_type_each():
    """Ansible's AddType compiles every util of a module into one assembly and binds //TypeAccelerator to the first
    type whose short name is -TypeName: that name must be declared in the util and nowhere else."""
    declared, accelerated = {}, []
    for path in CS_FILES:
        with open(path) as f:
            text = f.read()
        for name in re.findall(r"\b(?:class|struct|enum|interface|delegate\s+[\w<>\[\],]+)\s+([A-Za-z_]\w*)", text):
            declared.setdefault(name, []).append(os.path.basename(path))
        accelerated += [(os.path.basename(path), alias, name) for alias, name in
                        re.findall(r"(?m)^//\s*TypeAccelerator\s+-Name\s+([\w.]+)\s+-TypeName\s+(\w+)", text)]
    assert accelerated
    for util, alias, name in accelerated:
        assert declared.get(name) == [util], (alias, name, declared.get(name))
    assert len(set(alias for _u, alias, _n in accelerated)) == len(accelerated)


@pytest.mark.parametrize("path", CS_FILES, ids=os.path.basename)
def test_csharp_util_namespace_matches_its_name(path):
    name = os.path.basename(path)[:-3]
    with open(path) as f:
        text = f.read()
    assert "namespace ansible_collections.residue.purge.plugins.module_utils.%s" % name in text


@pytest.mark.parametrize("name", WIN_MODULES)
def test_every_module_has_a_windows_integration_target(name):
    if name == "win_discover":
        name = "win_remove"  # discover is exercised there, on the same sandbox
    target = os.path.join(TARGETS, name)
    with open(os.path.join(target, "aliases")) as f:
        assert "windows" in f.read().split()
    with open(os.path.join(target, "tasks", "main.yml")) as f:
        assert "residue.purge.%s:" % name[len("win_"):] in f.read()


def test_sanity_ignores_are_only_powershell_skips():
    # the only ignores the project allows: validate-modules and pslint cannot read .ps1 without pwsh
    allowed = re.compile(r"^plugins/modules/win_[a-z_]+\.ps1 (validate-modules|pslint)!skip$")
    files = glob.glob(os.path.join(ROOT, "tests", "sanity", "ignore-*.txt"))
    assert files
    for path in files:
        with open(path) as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
        bad = [line for line in lines if not allowed.match(line)]
        assert not bad, "%s: %s" % (os.path.basename(path), bad)
        for name in WIN_MODULES:
            for test in ("validate-modules", "pslint"):
                assert "plugins/modules/%s.ps1 %s!skip" % (name, test) in lines, (path, name, test)


def test_restore_has_a_windows_branch_of_ansible_windows_modules():
    """playbooks/restore.yml restores win_remove's zip on Windows hosts with ansible.windows modules (FQCN), in a
    task file included for those hosts only (a module Ansible cannot resolve fails the whole playbook at load
    time: a controller without ansible.windows must still restore POSIX hosts), with the collection's own backup
    code, whose files it reads by paths that exist in the collection."""
    import yaml
    with open(os.path.join(ROOT, "playbooks", "restore.yml")) as f:
        text = f.read()
    assert "ansible.windows." not in text
    tasks = yaml.safe_load(text)[0]["tasks"][0]["block"]
    include = [t for t in tasks if "ansible.builtin.include_tasks" in t]
    wanted = [("tasks/restore_windows.yml", "restore_windows")]
    assert [(t["ansible.builtin.include_tasks"], t["when"]) for t in include] == wanted
    posix = [t for t in tasks if t.get("when") == "not restore_windows"]
    assert [next(k for k in t if k.startswith("ansible.")) for t in posix] == [
        "ansible.builtin.stat", "ansible.builtin.assert", "ansible.builtin.unarchive"]
    with open(os.path.join(ROOT, "playbooks", "tasks", "restore_windows.yml")) as f:
        windows = yaml.safe_load(f)
    assert [next(k for k in t if k.startswith("ansible.")) for t in windows] == [
        "ansible.windows.win_stat", "ansible.builtin.assert", "ansible.windows.win_powershell",
        "ansible.builtin.set_fact", "ansible.builtin.assert"]
    assert windows[1]["ansible.builtin.assert"] == posix[1]["ansible.builtin.assert"]  # the same sha256 check
    files = re.findall(r"lookup\('ansible.builtin.file', playbook_dir ~ '/([^']+)'\)", json.dumps(windows))
    assert len(files) == 4, files
    for rel in files:
        assert os.path.isfile(os.path.normpath(os.path.join(ROOT, "playbooks", rel))), rel
