# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Text that is safe to return to Ansible, whatever bytes a file name or an argv holds; an OSError's text."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def error_text(exc):
    """An OSError as a problem's text: the system's message (strerror) without errno and path, else str(exc)."""
    return exc.strerror or str(exc)


def printable(value):
    """value (bytes, or str carrying undecodable bytes as surrogates) as text where those bytes are \\xNN.

    Ansible refuses a whole module result that carries one undecodable name, and a hostile file name must
    not be able to hide everything else; valid text comes back unchanged."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    value = str(value)
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name decoding makes
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
