from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _profiles as P

ALICE = P.User("alice", 1001, 1001, "/home/alice")


def ctx(environ=None, user=ALICE, source="default"):
    return P.EnvContext(user, environ or {}, source)


def paths_of(target, environ=None, system="Linux", user=ALICE):
    profile = P.load_profiles()[target]
    values = P.placeholder_values(user, environ or {}, system)
    return [p for p in (P.expand_template(t, values, system) for t in profile["paths"]) if p]


def test_builtin_profiles_are_valid_and_complete():
    profiles = P.load_profiles()
    assert set(profiles) >= {"open_autoglm", "huggingface", "torch_hub", "modelscope", "ollama", "pip_cache"}
    for profile in profiles.values():
        assert set(profile) == set(P.PROFILE_KEYS)


def test_open_autoglm_paths_per_os():
    assert paths_of("open_autoglm")[:2] == ["/home/alice/.cache/open-autoglm", "/home/alice/.config/open-autoglm"]
    assert paths_of("open_autoglm", system="Darwin")[0] == "/home/alice/Library/Caches/open-autoglm"
    win = P.User("alice", 1001, 1001, "C:\\Users\\alice")
    assert paths_of("open_autoglm", {"LOCALAPPDATA": "D:\\Local"}, "Windows", win)[0] == "D:\\Local\\open-autoglm"
    assert paths_of("open_autoglm", {"XDG_CACHE_HOME": "/srv/cache"})[0] == "/srv/cache/open-autoglm"


def test_ollama_paths_include_service_and_env():
    assert paths_of("ollama")[:3] == ["/home/alice/.ollama/models", "/usr/share/ollama/.ollama/models",
                                      "/home/alice/.ollama/logs"]
    assert "/home/alice/.ollama" not in paths_of("ollama")  # the user's key lives there
    assert paths_of("ollama", {"OLLAMA_MODELS": "/data/ollama"})[-1] == "/data/ollama"


def test_no_profile_touches_credentials():
    for name in P.load_profiles():
        for path in paths_of(name):
            assert "token" not in path
            assert path != "/home/alice/.cache/huggingface"


@pytest.mark.parametrize("environ,expected", [
    ({}, "/home/alice/.cache/huggingface/hub"),
    ({"XDG_CACHE_HOME": "/x"}, "/x/huggingface/hub"),
    ({"HF_HOME": "/data/hf"}, "/data/hf/hub"),
    ({"HF_HOME": "/data/hf", "HUGGINGFACE_HUB_CACHE": "/old"}, "/old"),
    ({"HF_HOME": "/data/hf", "HUGGINGFACE_HUB_CACHE": "/old", "HF_HUB_CACHE": "/new"}, "/new"),
    ({"HF_HOME": "~/hf"}, "/home/alice/hf/hub"),
    ({"HF_HOME": "relative/hf"}, "/home/alice/.cache/huggingface/hub"),
])
def test_hub_cache_follows_huggingface_hub_order(environ, expected):
    assert P.placeholder_values(ALICE, environ, "Linux")["hf_hub_cache"] == expected


def test_hub_cache_locations_name_their_source():
    assert P.hub_cache_locations(ctx()) == [("/home/alice/.cache/huggingface/hub", "default")]
    got = P.hub_cache_locations(ctx({"HF_HOME": "/data/hf", "TRANSFORMERS_CACHE": "/tc"}, source="process 42"))
    assert got == [("/data/hf/hub", "process 42 (HF_HOME)"), ("/tc", "process 42 (TRANSFORMERS_CACHE)")]
    assert P.hub_cache_locations(ctx({"HF_HOME": "/h"}, source="env"))[0][1] == "env HF_HOME"


@pytest.mark.parametrize("profile,field", [
    ({"colour": "red"}, "unknown key(s) colour"),
    ({"paths": ["{user_cahce}/x"]}, "paths[0]: unknown placeholder {user_cahce}"),
    ({"paths": ["{home}/../etc"]}, "paths[0]"),
    ({"paths": ["relative/x"]}, "paths[0]"),
    ({"paths": ["{home}/*.bin"]}, "glob"),
    ({"paths": "{home}/{"}, "unbalanced"),
    ({"processes": {"name": ["x"]}}, "processes: unknown key(s) name"),
    ({"processes": {"cmdline": ["("]}}, "processes.cmdline[0]: invalid regular expression"),
    ({"cron": [1]}, "field cron must be a list"),
    ({"hf_repos": ["AutoGLM"]}, "hf_repos[0]"),
    ({"services": {"upstart": ["x"]}}, "services: unknown key(s) upstart"),
])
def test_bad_profiles_name_profile_and_field(profile, field):
    with pytest.raises(P.ProfileError) as e:
        P.load_profiles({"mytool": profile})
    assert "'mytool'" in str(e.value)
    assert field in str(e.value)


def test_user_profile_overrides_keys_of_builtin():
    profiles = P.load_profiles({"ollama": {"paths": ["/srv/models/ollama"]}})
    assert profiles["ollama"]["paths"] == ["/srv/models/ollama"]
    assert profiles["ollama"]["processes"]["names"] == ["ollama", "Ollama"]  # the server, and the macOS app


def test_select_targets():
    profiles = P.load_profiles()
    assert set(P.select_targets(profiles, [])) == set(profiles)
    assert list(P.select_targets(profiles, ["ollama"])) == ["ollama"]
    with pytest.raises(P.ProfileError, match="unknown target.*nope.*known profiles"):
        P.select_targets(profiles, ["nope"])


def test_repo_matches():
    assert P.repo_matches(["zai-org/AutoGLM-*"], "zai-org/AutoGLM-Phone-9B")
    assert not P.repo_matches(["zai-org/AutoGLM-*"], "zai-org/GLM-4")
    assert not P.repo_matches(["zai-org/AutoGLM-*"], "other/zai-org/AutoGLM-x")
    assert P.repo_matches(["*"], "a/b")


def test_protected_paths_refuse_whole_shared_dirs():
    contexts = [ctx({"HF_HOME": "/data/hf"}, source="process 7")]
    protected = P.protected_paths([ALICE], contexts, "Linux")
    for bad in ["/", "/home", "/home/alice", "/home/alice/.cache", "/home/alice/.config", "/usr/share",
                "/home/alice/.cache/huggingface", "/home/alice/.cache/huggingface/hub", "/data/hf", "/data/hf/hub",
                "/home/alice/Library", "/etc"]:
        with pytest.raises(P.ProfileError):
            P.check_path(bad, protected, system="Linux")
    # an ancestor of a protected dir would take it along
    with pytest.raises(P.ProfileError, match="contains the protected directory /data/hf"):
        P.check_path("/data", protected, system="Linux")
    assert P.check_path("/home/alice/.cache/open-autoglm/", protected, system="Linux") == "/home/alice/.cache/open-autoglm"


@pytest.mark.parametrize("bad,msg", [("", "empty"), ("   ", "empty"), ("relative/x", "not an absolute"),
                                     ("~/x", "'~'"), ("/home/alice/../bob", "'..'"), ("/tmp/x/*", "glob"),
                                     ("/", "root"), ("//", "root"), (None, "empty")])
def test_check_path_refuses_bad_input(bad, msg):
    with pytest.raises(P.ProfileError, match=msg):
        P.check_path(bad, set(), field="paths", system="Linux")


def test_windows_protected():
    win = P.User("bob", 1, 1, "C:\\Users\\bob")
    protected = P.protected_paths([win], system="Windows")
    for bad in ["C:\\", "C:\\Windows", "C:\\Users", "C:\\Users\\bob\\AppData\\Local"]:
        with pytest.raises(P.ProfileError):
            P.check_path(bad, protected, system="Windows")
    assert P.check_path("C:\\Users\\bob\\AppData\\Local\\open-autoglm", protected, system="Windows")


def test_resolve_paths_refuses_profile_path_on_protected_dir():
    profiles = P.load_profiles({"bad": {"paths": ["{user_cache}"]}})
    protected = P.protected_paths([ALICE], system="Linux")
    with pytest.raises(P.ProfileError, match="profile 'bad' field paths\\[0\\].*protected"):
        P.resolve_paths("bad", profiles["bad"], ctx(), protected, "Linux")


def test_env_placeholder_unset_skips_path():
    profiles = P.load_profiles()
    got = P.resolve_paths("ollama", profiles["ollama"], ctx(), set(), "Linux")
    assert [r.template for r in got] == [t for t in profiles["ollama"]["paths"] if t != "{env:OLLAMA_MODELS}"]
    assert len(got) == len(profiles["ollama"]["paths"]) - 1


def test_parse_environment_file():
    text = '# comment\nPATH="/usr/bin"\nexport HF_HOME=/data/hf\nBAD LINE\nTORCH_HOME=\'/t\'\n'
    assert P.parse_environment_file(text) == {"PATH": "/usr/bin", "HF_HOME": "/data/hf", "TORCH_HOME": "/t"}


def test_parse_proc_environ_keeps_cache_vars_only():
    data = b"PATH=/bin\0HF_HOME=/data/hf\0SECRET=x\0OLLAMA_MODELS=/m\xff\0"
    env = P.parse_proc_environ(data)
    assert env["HF_HOME"] == "/data/hf"
    assert set(env) == {"HF_HOME", "OLLAMA_MODELS"}


def test_list_users_explicit_homes(tmp_path):
    home = tmp_path / "h1"
    home.mkdir()
    users = P.list_users(homes=[str(home) + "/"])
    assert users[0].home == str(home)
    assert users[0].name == pwd.getpwuid(os.getuid()).pw_name
    for bad in ["relative", "/", str(tmp_path / "missing"), str(home) + "/../h1"]:
        with pytest.raises(P.ProfileError, match="homes"):
            P.list_users(homes=[bad])


def test_list_users_from_passwd_includes_root_and_only_real_users():
    users = P.list_users()
    names = [u.name for u in users]
    assert "root" in names
    assert "nobody" not in names
    assert all(os.path.isdir(u.home) for u in users)
    with pytest.raises(P.ProfileError, match="no such user"):
        P.list_users(users=["no-such-user-xyz"])
    assert [u.name for u in P.list_users(users=["root"])] == ["root"]


def test_user_environments_reads_environment_file_and_own_env(tmp_path):
    envfile = tmp_path / "environment"
    envfile.write_text("HF_HOME=/srv/hf\n")
    me = P.User("me", os.getuid(), os.getgid(), str(tmp_path))
    contexts = P.user_environments([me], scan_processes=False, environ={"TORCH_HOME": "/t", "PATH": "/bin"},
                                   environment_file=str(envfile))
    sources = dict((c.source, c.environ) for c in contexts)
    assert sources == {"default": {}, "file:" + str(envfile): {"HF_HOME": "/srv/hf"}, "env": {"TORCH_HOME": "/t"}}
