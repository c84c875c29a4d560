"""Role READMEs' variable tables, generated from each role's meta/argument_specs.yml.

    python3 tools/role_docs.py         rewrite the table in every roles/*/README.md (make generate)
    tools/role_docs.py --check   exit 1, with a diff, when a README's table differs from its argument specs

The table sits between the two marker lines below, under the README's '## Variables' heading; the rest of a
README is written by hand. Ansible markup in descriptions (V(), O(), C(), L(), M(), ...) is parsed by
antsibull-docs-parser, the parser the Ansible docsite uses, and written as plain Markdown.
"""
import argparse
import difflib
import glob
import json
import os
import re
import sys

import yaml
from antsibull_docs_parser import dom, parser

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- BEGIN generated from meta/argument_specs.yml by tools/role_docs.py (make generate): do not edit -->"
END = "<!-- END generated -->"
SECTION = re.compile(r"^## Variables\n(.*?)(?=^## |\Z)", re.M | re.S)


def _code(text):
    return "`%s`" % text


PARTS = {
    dom.PartType.TEXT: lambda p: p.text,
    dom.PartType.CODE: lambda p: _code(p.text),
    dom.PartType.BOLD: lambda p: "**%s**" % p.text,
    dom.PartType.ITALIC: lambda p: "*%s*" % p.text,
    dom.PartType.LINK: lambda p: "[%s](%s)" % (p.text, p.url),
    dom.PartType.URL: lambda p: "<%s>" % p.url,
    dom.PartType.MODULE: lambda p: _code(p.fqcn),
    dom.PartType.PLUGIN: lambda p: _code(p.plugin.fqcn),
    dom.PartType.RST_REF: lambda p: p.text,
    dom.PartType.OPTION_NAME: lambda p: _code(p.name),
    dom.PartType.OPTION_VALUE: lambda p: _code(p.value),
    dom.PartType.ENV_VARIABLE: lambda p: _code(p.name),
    dom.PartType.RETURN_VALUE: lambda p: _code(p.name),
    dom.PartType.HORIZONTAL_LINE: lambda p: " ",
}


def markdown(text, role):
    """Ansible markup (a string or a list of paragraphs) as one line of Markdown for a table cell."""
    context = parser.Context(current_plugin=dom.PluginIdentifier(fqcn="residue.purge." + role, type="role"),
                             role_entrypoint="main")
    paragraphs = parser.parse(text, context, errors="exception")
    out = " ".join("".join(PARTS[part.type](part) for part in paragraph) for paragraph in paragraphs)
    return " ".join(out.split()).replace("|", "\\|")


def _type(spec):
    kind = spec.get("type", "str")
    if kind == "list" and spec.get("elements"):
        return "list of %s" % spec["elements"]
    return kind


def _default(spec):
    if spec.get("required"):
        return "**required**"
    if "default" not in spec:
        return "unset"
    return _code(json.dumps(spec["default"]) if not isinstance(spec["default"], str) or not spec["default"]
                 else spec["default"])


def rows(options, role, prefix=""):
    for name in options:
        spec = options[name]
        description = markdown(spec.get("description", ""), role)
        if spec.get("choices"):
            description += " Choices: %s." % ", ".join(_code(c) for c in spec["choices"])
        yield "| `%s%s` | %s | %s | %s |" % (prefix, name, _type(spec), _default(spec), description)
        if spec.get("options"):
            yield from rows(spec["options"], role, prefix + name + ".")


def table(role_dir):
    role = os.path.basename(role_dir)
    with open(os.path.join(role_dir, "meta", "argument_specs.yml")) as f:
        specs = yaml.safe_load(f)["argument_specs"]
    out = []
    for entry in sorted(specs, key=lambda e: (e != "main", e)):
        if len(specs) > 1:
            out.append("Entry point `%s`:" % entry)
            out.append("")
        out += ["| variable | type | default | description |", "|---|---|---|---|"]
        out += list(rows(specs[entry].get("options") or {}, role))
        out.append("")
    return "\n".join([BEGIN, ""] + out + [END]) + "\n"


def render(readme, generated):
    """The README with its variable table replaced (the '## Variables' section's body, on first use)."""
    if BEGIN in readme:
        start = readme.index(BEGIN)
        end = readme.index(END, start) + len(END) + 1
        return readme[:start] + generated + readme[end:]
    match = SECTION.search(readme)
    if not match:
        raise SystemExit("role_docs: no '## Variables' section to put the table in")
    return readme[:match.start(1)] + "\n" + generated + "\n" + readme[match.end(1):]


def shared_variable_drift(role_dirs):
    """A residue_* variable is one thing in every role that declares it: the same description, type and
    elements (whether it is required may differ: the report role runs without targets). Messages per drift."""
    seen = {}
    for role_dir in role_dirs:
        with open(os.path.join(role_dir, "meta", "argument_specs.yml")) as f:
            specs = yaml.safe_load(f)["argument_specs"]
        for entry_point, spec in sorted(specs.items()):
            for name, option in sorted((spec.get("options") or {}).items()):
                if name.startswith("residue_"):
                    text = json.dumps([option.get(k) for k in ("description", "type", "elements")])
                    where = "%s (%s)" % (os.path.basename(role_dir), entry_point)
                    seen.setdefault(name, {}).setdefault(text, []).append(where)
    return ["%s differs between roles: %s" % (name, " / ".join(", ".join(w) for w in variants.values()))
            for name, variants in sorted(seen.items()) if len(variants) > 1]


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--check", action="store_true", help="only report READMEs that differ; change nothing")
    check = args.parse_args().check
    stale = []
    role_dirs = [d for d in sorted(glob.glob(os.path.join(TOP, "roles", "*")))
                 if os.path.isfile(os.path.join(d, "meta", "argument_specs.yml"))]
    drift = shared_variable_drift(role_dirs)
    for text in drift:
        print("role_docs: %s" % text, file=sys.stderr)
    if drift:
        return 1
    for role_dir in role_dirs:
        path = os.path.join(role_dir, "README.md")
        with open(path) as f:
            current = f.read()
        wanted = render(current, table(role_dir))
        if wanted == current:
            continue
        stale.append(os.path.relpath(path, TOP))
        if check:
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), wanted.splitlines(True),
                                                       stale[-1], stale[-1] + " (from meta/argument_specs.yml)"))
        else:
            with open(path, "w") as f:
                f.write(wanted)
            print("role_docs: rewrote %s" % stale[-1])
    if check and stale:
        print("role_docs: %s out of date with meta/argument_specs.yml; run `make generate`" % ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
