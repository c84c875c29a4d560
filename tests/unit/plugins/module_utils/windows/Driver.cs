// Test driver: runs the pure parts of the Windows C# module_utils under Mono, so that
// test_windows_logic.py can compare them with the Python module_utils they port (the oracle).
// Reads a JSON array of {"fn": name, "args": {...}} on stdin, writes a JSON array of {"ok": value} or {"error": text}.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using ansible_collections.residue.purge.plugins.module_utils._WinHost;
using ansible_collections.residue.purge.plugins.module_utils._WinHfCache;
using ansible_collections.residue.purge.plugins.module_utils._WinPip;
using ansible_collections.residue.purge.plugins.module_utils._WinBackup;
using ansible_collections.residue.purge.plugins.module_utils._WinProcs;
using ansible_collections.residue.purge.plugins.module_utils._WinActAs;
using ansible_collections.residue.purge.plugins.module_utils._WinFiles;

public static class Driver
{
    public static int Main()
    {
        string input = Console.In.ReadToEnd();
        List<object> cases = (List<object>)new Json(input).Parse();
        List<object> results = new List<object>();
        foreach (object c in cases)
        {
            Dictionary<string, object> call = (Dictionary<string, object>)c;
            Dictionary<string, object> result = new Dictionary<string, object>();
            try
            {
                result["ok"] = Run((string)call["fn"], (Dictionary<string, object>)call["args"]);
            }
            catch (ProfileException e)
            {
                result["error"] = e.Message;
            }
            catch (BackupException e)
            {
                result["error"] = e.Message;
            }
            results.Add(result);
        }
        StringBuilder sb = new StringBuilder();
        Json.Write(sb, results);
        Console.Out.Write(sb.ToString());
        return 0;
    }

    private static Dictionary<string, string> Strings(object o)
    {
        Dictionary<string, string> d = new Dictionary<string, string>();
        foreach (KeyValuePair<string, object> kv in (Dictionary<string, object>)o)
            d[kv.Key] = (string)kv.Value;
        return d;
    }

    private static List<string> StringList(object o)
    {
        return ((List<object>)o).Select(x => (string)x).ToList();
    }

    private static double? Num(object o)
    {
        if (o == null)
            return null;
        return Convert.ToDouble(o, CultureInfo.InvariantCulture);
    }

    private static object Run(string fn, Dictionary<string, object> a)
    {
        switch (fn)
        {
            case "placeholders":
                return WinHost.PlaceholderValues((string)a["home"], Strings(a["env"])).ToDictionary(kv => kv.Key, kv => (object)kv.Value);
            case "expand":
                return WinHost.ExpandTemplate((string)a["template"], Strings(a["values"]));
            case "check_path":
                return WinHost.CheckPath((string)a["path"], StringList(a["protected"]), (string)a["field"]);
            case "protected":
            {
                List<UserProfile> users = ((List<object>)a["users"]).Select(u => (Dictionary<string, object>)u)
                    .Select(u => new UserProfile((string)u["name"], null, (string)u["home"])).ToList();
                List<EnvContext> contexts = ((List<object>)a["contexts"]).Select(c => (Dictionary<string, object>)c)
                    .Select(c => new EnvContext(users[Convert.ToInt32(c["user"])], Strings(c["env"]), "env")).ToList();
                return WinHost.ProtectedPaths(users, contexts).Select(p => (object)p).ToList();
            }
            case "hub_caches":
            {
                UserProfile user = new UserProfile("u", null, (string)a["home"]);
                return WinHost.HubCacheLocations(new EnvContext(user, Strings(a["env"]), (string)a["source"]))
                    .Select(pair => (object)pair.Select(x => (object)x).ToList()).ToList();
            }
            case "resolve":
            {
                List<object> paths = new List<object>();
                Dictionary<string, string> values = WinHost.PlaceholderValues((string)a["home"], Strings(a["env"]));
                List<string> protectedPaths = StringList(a["protected"]);
                foreach (string template in StringList(a["templates"]))
                {
                    string path = WinHost.ExpandTemplate(template, values);
                    if (path != null)
                        paths.Add(WinHost.CheckPath(path, protectedPaths, "paths"));
                }
                return paths;
            }
            case "entry_name":
                return ZipBackup.EntryName((string)a["path"]);
            case "entry_needs":
                return ZipBackup.EntryNeeds((string)a["path"], Convert.ToInt64(a["size"]));
            case "manifest_quote":
                return ManifestJson.Quote((string)a["text"]);
            case "zip_write":
                return ZipWrite(a);
            case "zip_restore":
            {
                // each Windows path under a staging root: C:\a\b -> <root>/C/a/b (the member name)
                string root = (string)a["root"];
                ResiduePurgeRestore.RestoreResult r = ResiduePurgeRestore.ZipRestore.Restore((string)a["archive"],
                    (string)a["manifest"], p => System.IO.Path.Combine(root, ZipBackup.EntryName(p)), (bool)a["dry_run"]);
                Dictionary<string, object> d = new Dictionary<string, object>();
                d["entries"] = r.Entries;
                d["files"] = r.Files.Select(x => (object)x).ToList();
                d["refused"] = r.Refused.Select(x => (object)x).ToList();
                return d;
            }
            case "zip_verify":
                return ZipBackup.Verify((string)a["archive"], (string)a["manifest"]);
            case "duration":
                return WinHost.ParseDuration((string)a["text"], "older_than");
            case "size":
                return WinHost.ParseSize((string)a["text"], "max_size");
            case "pip_plan":
                return PipPlan(a);
            case "hf_plan":
                return HfPlan(a);
            case "vet":
            {
                FakeFacts facts = new FakeFacts(a);
                UserProfile user = User(a["user"]);
                Vetted v = Trust.VetValue(user, (string)a["name"], (string)a["value"], facts, Trust.HomeIdentity(user, facts));
                Dictionary<string, object> r = new Dictionary<string, object>();
                r["path"] = v.Path;
                r["why"] = v.Why;
                r["foreign"] = v.Foreign;
                return r;
            }
            case "contexts":
                return Contexts(a);
            case "stop":
                return SimHost.Stop(a);
            case "lineage":
            {
                List<ProcRow> rows = ((List<object>)a["procs"]).Cast<Dictionary<string, object>>().Select(p => new ProcRow {
                    Pid = Convert.ToInt32(p["pid"]), Ppid = Convert.ToInt32(p["ppid"]), Name = (string)p["name"],
                    CreateTime = Convert.ToDouble(p["ctime"]) }).ToList();
                Dictionary<int, ProcRow> table = Stopper.ByPid(rows);
                ProcRow of = table[Convert.ToInt32(a["pid"])];
                ProcRow by = Stopper.RestarterIn(of, table);
                Dictionary<string, object> r = new Dictionary<string, object>();
                r["parents"] = Stopper.Lineage(of, table).Select(x => (object)x.Pid).ToList();
                r["restarted_by"] = by == null ? null : (object)by.Pid;
                return r;
            }
            case "resolve_all":
            {
                List<UserProfile> users = ((List<object>)a["users"]).Select(User).ToList();
                List<EnvContext> contexts = ((List<object>)a["contexts"]).Select(c => (Dictionary<string, object>)c)
                    .Select(c => new EnvContext(users[Convert.ToInt32(c["user"])], Strings(c["env"]), (string)c["source"])).ToList();
                List<string> problems = new List<string>();
                List<ResolvedPath> resolved = WinHost.ResolveAll((IDictionary)a["profiles"], StringList(a["selected"]), users,
                    contexts, problems);
                Dictionary<string, object> r = new Dictionary<string, object>();
                r["resolved"] = resolved.Select(x => (object)new Dictionary<string, object> {
                    { "target", x.Target }, { "path", x.Path }, { "user", x.User }, { "source", x.Source } }).ToList();
                r["problems"] = problems.Select(x => (object)x).ToList();
                return r;
            }
            case "act_as":
                return ActAs(a);
            case "act_refused":
                return ActRefused(a);
            case "read_head":
            {
                List<string> lines = (a.ContainsKey("refused") && (bool)a["refused"]
                    ? ActingUser.Refused(new UserProfile("HOST\\bob", "S-1-5-21-1-1-1-1004", "C:\\Users\\bob"), "no token")
                    : ActingUser.Self).ReadHead((string)a["path"], Convert.ToInt32(a["lines"]), Convert.ToInt32(a["bytes"]));
                return lines == null ? null : (object)lines.Select(x => (object)x).ToList();
            }
            case "env_actors":
            {
                // _WinActAs.Actors.ForEnvironment: whose token an environment's pip runs under (null: the module's)
                List<UserProfile> users = ((List<object>)a["users"]).Select(User).ToList();
                using (Actors actors = new Actors(users, (bool)a["elevated"], null, null, u => ActingUser.Refused(u, "no token for " + u.Name)))
                    return ((List<object>)a["items"]).Select(o =>
                    {
                        Dictionary<string, object> item = (Dictionary<string, object>)o;
                        ActingUser acting = actors.ForEnvironment((string)item["path"], (string)item["owner"]);
                        return acting.IsSelf ? null : (object)acting.User.Name;
                    }).ToList();
            }
            case "start_refused":
            {
                // a user without a token: Start refuses before any Windows call (under Mono one would throw
                // DllNotFoundException, not ActAsFailed) and counts no process
                ActingUser refused = ActingUser.Refused(new UserProfile("HOST\\bob", "S-1-5-21-1-1-1-1004", "C:\\Users\\bob"), (string)a["error"]);
                Dictionary<string, object> r = new Dictionary<string, object>();
                int before = ActingUser.ProcessesStarted;
                try
                {
                    refused.Start("C:\\Users\\bob\\venv\\Scripts\\python.exe", "-m pip uninstall -y x", "C:\\Users\\bob", null);
                    r["error"] = null;
                }
                catch (ActAsFailed e)
                {
                    r["error"] = e.Message;
                }
                r["started"] = ActingUser.ProcessesStarted - before;
                try
                {
                    ActingUser.Self.Start("python.exe", "", null, null);
                    r["self"] = "started";
                }
                catch (InvalidOperationException)
                {
                    r["self"] = "refused";
                }
                return r;
            }
            case "user_env":
            {
                Dictionary<string, string> module = ((Dictionary<string, object>)a["module"]).ToDictionary(kv => kv.Key, kv => (string)kv.Value);
                Dictionary<string, string> extra = a["extra"] == null ? null
                    : ((Dictionary<string, object>)a["extra"]).ToDictionary(kv => kv.Key, kv => (string)kv.Value);
                Dictionary<string, string> env = Whose.UserEnvironment(module, a["user"] == null ? null : User(a["user"]), extra);
                Dictionary<string, object> r = new Dictionary<string, object>();
                r["env"] = env.ToDictionary(kv => kv.Key, kv => (object)kv.Value);
                r["block"] = Whose.EnvironmentBlock(env);
                return r;
            }
            case "find_envs":
            {
                // _WinActAs.Actors.FindEnvironments over a real tree (Mono: the module's own rights run for real);
                // the stand-in for the S4U logon refuses every user, so a user's part is never walked here
                List<UserProfile> users = ((List<object>)a["users"]).Select(User).ToList();
                UserProfile self = a["self"] == null ? null : users[Convert.ToInt32(a["self"])];
                Dictionary<string, object> asked = new Dictionary<string, object>();
                Func<UserProfile, ActingUser> obtain = delegate (UserProfile u)
                {
                    asked[u.Name] = asked.ContainsKey(u.Name) ? (object)(Convert.ToInt32(asked[u.Name]) + 1) : (object)1;
                    return ActingUser.Refused(u, "no token for " + u.Name);
                };
                List<string> problems = new List<string>();
                Dictionary<string, object> r = new Dictionary<string, object>();
                using (Actors actors = new Actors(users, (bool)a["elevated"], self, null, obtain))
                    r["found"] = actors.FindEnvironments(((List<object>)a["roots"]).Select(x => (string)x), Convert.ToInt32(a["max_depth"]), problems)
                        .Select(f => (object)f.Select(x => (object)x).ToList()).ToList();
                r["problems"] = problems.Select(x => (object)x).ToList();
                r["asked"] = asked;
                return r;
            }
            case "level_refusal":
                return Whose.LevelRefusal(Convert.ToInt32(a["level"]), (string)a["user"], (string)a["stage"]);
        }
        throw new ArgumentException("unknown fn " + fn);
    }

    // _WinActAs.Actors over users: which runner each item gets (null: the module's own rights), and how often a
    // user's token was asked for (once per user: Actors caches it). The stand-in for the S4U logon refuses every
    // user, so nothing here needs Windows.
    private static object ActAs(Dictionary<string, object> a)
    {
        List<UserProfile> users = ((List<object>)a["users"]).Select(User).ToList();
        UserProfile self = a["self"] == null ? null : users[Convert.ToInt32(a["self"])];
        Dictionary<string, object> asked = new Dictionary<string, object>();
        Func<UserProfile, ActingUser> obtain = delegate (UserProfile u)
        {
            asked[u.Name] = asked.ContainsKey(u.Name) ? (object)(Convert.ToInt32(asked[u.Name]) + 1) : (object)1;
            return ActingUser.Refused(u, "no token for " + u.Name);
        };
        List<object> runners = new List<object>();
        using (Actors actors = new Actors(users, (bool)a["elevated"], self, a.ContainsKey("self_sid") ? (string)a["self_sid"] : null, obtain))
        {
            foreach (object o in (List<object>)a["items"])
            {
                Dictionary<string, object> item = (Dictionary<string, object>)o;
                ActingUser acting = item.ContainsKey("template")
                    ? actors.ForResolved(new ResolvedPath("t", (string)item["path"], (string)item["claimant"], (string)item["template"], "default"))
                    : item.ContainsKey("claimant") ? actors.ForClaimed((string)item["path"], (string)item["claimant"])
                    : actors.ForPath((string)item["path"]);
                runners.Add(acting.IsSelf ? null : acting.User.Name);
            }
        }
        Dictionary<string, object> r = new Dictionary<string, object>();
        r["runners"] = runners;
        r["asked"] = asked;
        return r;
    }

    // A user whose token could not be had: what removing, sizing and running work for them do. WinFiles itself is
    // never reached (under Mono its Windows calls would throw DllNotFoundException, not return a failure).
    private static object ActRefused(Dictionary<string, object> a)
    {
        ActingUser refused = ActingUser.Refused(new UserProfile("HOST\\bob", "S-1-5-21-1-1-1-1004", "C:\\Users\\bob"), (string)a["error"]);
        Dictionary<string, object> r = new Dictionary<string, object>();
        RemoveOptions options = new RemoveOptions();
        options.DryRun = (bool)a["dry_run"];
        RemovalResult removal = refused.RemoveTree((string)a["path"], (string)a["path"], options);
        r["failures"] = removal.Failures.Select(f => (object)f.Select(x => (object)x).ToList()).ToList();
        r["removed"] = removal.Files + removal.Dirs;
        List<string> problems = new List<string>();
        r["measured"] = refused.Measure((string)a["path"], false, problems) != null;
        r["problems"] = problems.Select(x => (object)x).ToList();
        bool ran = false;
        try
        {
            refused.Run<bool>(() => ran = true);
            r["run_error"] = null;
        }
        catch (ActAsFailed e)
        {
            r["run_error"] = e.Message;
        }
        r["ran"] = ran;
        r["self_ran"] = ActingUser.Self.Run<string>(() => "done");
        List<string> scanProblems = new List<string>(), scanFailures = new List<string>();
        r["scanned"] = HfCache.ScanAs(refused, (string)a["path"], scanProblems, scanFailures) != null;
        r["scan_problems"] = scanProblems.Select(x => (object)x).ToList();
        r["scan_failures"] = scanFailures.Select(x => (object)x).ToList();
        HfRepo repo = new HfRepo();
        repo.Path = (string)a["path"] + "\\models--org--m";
        repo.Folder = "models--org--m";
        HfRepoPlan plan = new HfRepoPlan(repo);
        plan.Whole = true;
        r["execute_failures"] = HfCache.ExecuteAs(refused, (string)a["path"], plan).Select(x => (object)x).ToList();
        r["lock"] = HfCache.HeldLockAs(refused, (string)a["path"], repo);
        r["usable"] = refused.Usable;
        return r;
    }

    private static UserProfile User(object o)
    {
        Dictionary<string, object> u = (Dictionary<string, object>)o;
        return new UserProfile((string)u["name"], (string)u["sid"], (string)u["home"]);
    }

    // Trust.Contexts over a fake file system: users, the machine's raw environment, each user's own (by SID),
    // the module's own environment and its user (an index into users, or null).
    private static object Contexts(Dictionary<string, object> a)
    {
        FakeFacts facts = new FakeFacts(a);
        List<UserProfile> users = ((List<object>)a["users"]).Select(User).ToList();
        Dictionary<string, Dictionary<string, string>> userEnvs = new Dictionary<string, Dictionary<string, string>>();
        foreach (KeyValuePair<string, object> kv in (Dictionary<string, object>)a["user_envs"])
            userEnvs[kv.Key] = Strings(kv.Value);
        UserProfile mine = a["mine"] == null ? null : users[Convert.ToInt32(a["mine"])];
        List<string> problems = new List<string>();
        List<EnvContext> contexts = Trust.Contexts(users, Strings(a["machine"]), @"registry:HKLM\Environment", userEnvs,
            mine, Strings(a["own"]), facts, problems);
        Dictionary<string, object> r = new Dictionary<string, object>();
        r["contexts"] = contexts.Select(c => (object)new Dictionary<string, object> {
            { "user", c.User.Name }, { "source", c.Source },
            { "env", c.Environ.ToDictionary(kv => kv.Key, kv => (object)kv.Value) } }).ToList();
        r["problems"] = problems.Select(p => (object)p).ToList();
        r["protected"] = users.ToDictionary(u => u.Name, u => (object)WinHost.ProtectedPaths(users, contexts, u)
            .OrderBy(p => p, StringComparer.Ordinal).Select(p => (object)p).ToList());
        return r;
    }

    // A file system described by the test: {"fs": {path: {"name", "owner", "reparse", "id", "target"}},
    // "accounts": {sid: name}}; paths compare without regard to case (NTFS), a trailing backslash ignored.
    private sealed class FakeFacts : IPathFacts
    {
        private readonly Dictionary<string, Dictionary<string, object>> fs =
            new Dictionary<string, Dictionary<string, object>>(StringComparer.OrdinalIgnoreCase);
        private readonly Dictionary<string, object> accounts;

        public FakeFacts(Dictionary<string, object> a)
        {
            foreach (KeyValuePair<string, object> kv in (Dictionary<string, object>)a["fs"])
                fs[kv.Key.TrimEnd('\\')] = (Dictionary<string, object>)kv.Value;
            accounts = (Dictionary<string, object>)a["accounts"];
        }

        public PathFact Look(string path)
        {
            Dictionary<string, object> e;
            if (!fs.TryGetValue(path.TrimEnd('\\'), out e))
                return null;
            PathFact f = new PathFact();
            f.Name = e.ContainsKey("name") ? (string)e["name"] : null;
            f.OwnerSid = (string)e["owner"];
            f.Reparse = e.ContainsKey("reparse") && (bool)e["reparse"];
            f.Identity = (string)e["id"];
            return f;
        }

        public string Target(string path)
        {
            Dictionary<string, object> e;
            return fs.TryGetValue(path.TrimEnd('\\'), out e) && e.ContainsKey("target") ? (string)e["target"] : null;
        }

        public string AccountName(string sid)
        {
            return accounts.ContainsKey(sid) ? (string)accounts[sid] : sid;
        }
    }

    // A backup as WinBackup.Write makes it, from Linux files standing in for what the Windows walk visits;
    // fail_after: throw after that many entries (the caller's failure path: Discard).
    private static object ZipWrite(Dictionary<string, object> a)
    {
        DateTime now = new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddSeconds((double)Num(a["now"]));
        ZipBackup backup = ZipBackup.Create((string)a["directory"], now, Convert.ToInt32(a["pid"]));
        int failAfter = a.ContainsKey("fail_after") && a["fail_after"] != null ? Convert.ToInt32(a["fail_after"]) : -1;
        try
        {
            int n = 0;
            foreach (Dictionary<string, object> e in ((List<object>)a["entries"]).Cast<Dictionary<string, object>>())
            {
                if (n++ == failAfter)
                    throw new System.IO.IOException("simulated read error");
                if ((string)e["type"] == "dir")
                    backup.AddDirectory((string)e["path"], (double)Num(e["mtime"]));
                else
                    using (System.IO.FileStream content = System.IO.File.OpenRead((string)e["source"]))
                        backup.AddFile((string)e["path"], content, (double)Num(e["mtime"]));
            }
            backup.Close();
            long entries = ZipBackup.Verify(backup.Archive, backup.Manifest);
            Dictionary<string, object> r = new Dictionary<string, object>();
            r["archive"] = backup.Archive;
            r["manifest"] = backup.Manifest;
            r["entries"] = entries;
            r["sha256"] = ZipBackup.Sha256Of(backup.Archive);
            return r;
        }
        catch (BackupException)
        {
            backup.Discard();
            throw;
        }
        catch (Exception e)
        {
            backup.Discard();
            throw new BackupException("backup: writing " + backup.Archive + " failed: " + e.Message + "; nothing was removed");
        }
    }

    private static object PipPlan(Dictionary<string, object> a)
    {
        List<PipDist> dists = new List<PipDist>();
        foreach (Dictionary<string, object> d in ((List<object>)a["dists"]).Cast<Dictionary<string, object>>())
        {
            PipDist pd = new PipDist();
            pd.Name = (string)d["name"];
            pd.Version = (string)d["version"];
            pd.Requested = (bool)d["requested"];
            pd.Installer = (string)d["installer"];
            pd.Requires = StringList(d["requires"]);
            dists.Add(pd);
        }
        PipPlan plan = WinPip.PlanRemoval(dists, StringList(a["packages"]), StringList(a["keep"]), (bool)a["orphans"], (bool)a["remove_required"]);
        Dictionary<string, object> r = new Dictionary<string, object>();
        r["remove"] = plan.Remove.Select(d => (object)d.Name).ToList();
        r["orphans"] = plan.Orphans.Select(d => (object)d.Name).ToList();
        r["kept_shared"] = plan.KeptShared.Select(kv => (object)new List<object> { kv.Key.Name, kv.Value.Select(x => (object)x).ToList() }).ToList();
        r["kept"] = plan.Kept.Select(kv => (object)new List<object> { kv.Key.Name, kv.Value }).ToList();
        r["not_installed"] = plan.NotInstalled.Select(x => (object)x).ToList();
        return r;
    }

    private static object HfPlan(Dictionary<string, object> a)
    {
        List<HfRepo> repos = new List<HfRepo>();
        foreach (Dictionary<string, object> d in ((List<object>)a["repos"]).Cast<Dictionary<string, object>>())
        {
            HfRepo repo = new HfRepo();
            repo.RepoId = (string)d["repo_id"];
            repo.RepoType = (string)d["repo_type"];
            repo.Path = (string)d["path"];
            repo.BlobBytes = Convert.ToInt64(d["blob_bytes"]);
            foreach (Dictionary<string, object> r in ((List<object>)d["revisions"]).Cast<Dictionary<string, object>>())
            {
                HfRevision rev = new HfRevision();
                rev.Commit = (string)r["commit"];
                rev.Refs = StringList(r["refs"]);
                rev.LastModified = Num(r["last_modified"]).Value;
                rev.LastAccess = Num(r["last_access"]).Value;
                repo.Revisions.Add(rev);
            }
            foreach (List<object> inc in ((List<object>)d["incomplete"]).Cast<List<object>>())
                repo.Incomplete.Add(new string[] { (string)inc[0], Convert.ToInt64(inc[1]).ToString(CultureInfo.InvariantCulture),
                    Num(inc[2]).Value.ToString("R", CultureInfo.InvariantCulture) });
            foreach (KeyValuePair<string, object> kv in (Dictionary<string, object>)d["blob_sizes"])
                repo.BlobSizes[kv.Key] = Convert.ToInt64(kv.Value);
            foreach (KeyValuePair<string, object> kv in (Dictionary<string, object>)d["revision_blobs"])
                repo.RevisionBlobs[kv.Key] = new HashSet<string>(StringList(kv.Value));
            foreach (KeyValuePair<string, object> kv in (Dictionary<string, object>)d["revision_copy_bytes"])
                repo.RevisionCopyBytes[kv.Key] = Convert.ToInt64(kv.Value);
            repos.Add(repo);
        }
        Dictionary<string, object> s = (Dictionary<string, object>)a["selection"];
        HfSelection sel = new HfSelection();
        sel.Patterns = StringList(s["patterns"]);
        sel.RepoType = (string)s["repo_type"];
        sel.Keep = StringList(s["keep"]);
        sel.Revisions = (string)s["revisions"];
        sel.OlderThan = Num(s["older_than"]) ?? -1;
        sel.AgeBy = (string)s["age_by"];
        sel.MaxSize = s["max_size"] == null ? -1 : Convert.ToInt64(s["max_size"]);
        sel.IncompleteOlderThan = Num(s["incomplete_older_than"]) ?? -1;
        sel.Now = Num(s["now"]).Value;
        Dictionary<string, object> held = (Dictionary<string, object>)a["held"];
        HfCachePlan plan = HfCache.Plan((string)a["cache"], repos, sel, delegate (HfRepo repo, bool whole)
        {
            object reason;
            if (held.TryGetValue(repo.Path + "|" + (whole ? "whole" : "part"), out reason))
                return StringList(reason).ToArray();
            return null;
        });
        Dictionary<string, object> r2 = new Dictionary<string, object>();
        r2["repos"] = plan.Repos.Select(rp => (object)new Dictionary<string, object> {
            { "repo_id", rp.Repo.RepoId }, { "revisions", rp.Revisions.Select(x => (object)x).ToList() },
            { "whole", rp.Whole }, { "blobs", rp.Blobs.Select(x => (object)x).ToList() },
            { "blobs_kept_shared", rp.BlobsKeptShared }, { "refs", rp.Refs.Select(x => (object)x).ToList() },
            { "freed_bytes", rp.FreedBytes }, { "incomplete", rp.Incomplete.Select(i => (object)i[0]).ToList() },
            { "reason", rp.Reason.Select(x => (object)x).ToList() } }).ToList();
        r2["held_back"] = plan.HeldBack.Select(h => (object)h.Select(x => (object)x).ToList()).ToList();
        r2["bytes_before"] = plan.BytesBefore;
        r2["bytes_after"] = plan.BytesAfter;
        r2["kept_over_budget"] = plan.KeptOverBudget.Select(x => (object)x).ToList();
        return r2;
    }
}

/// <summary>Just enough JSON for the driver (the test writes the input, so it is well formed).</summary>
public class Json
{
    private readonly string text;
    private int pos;

    public Json(string text)
    {
        this.text = text;
    }

    public object Parse()
    {
        Skip();
        char c = text[pos];
        if (c == '{')
        {
            pos++;
            Dictionary<string, object> d = new Dictionary<string, object>();
            Skip();
            if (text[pos] == '}')
            {
                pos++;
                return d;
            }
            while (true)
            {
                Skip();
                string key = (string)Parse();
                Skip();
                pos++;  // :
                d[key] = Parse();
                Skip();
                if (text[pos++] == '}')
                    return d;
            }
        }
        if (c == '[')
        {
            pos++;
            List<object> l = new List<object>();
            Skip();
            if (text[pos] == ']')
            {
                pos++;
                return l;
            }
            while (true)
            {
                l.Add(Parse());
                Skip();
                if (text[pos++] == ']')
                    return l;
            }
        }
        if (c == '"')
        {
            StringBuilder sb = new StringBuilder();
            pos++;
            while (text[pos] != '"')
            {
                if (text[pos] == '\\')
                {
                    char e = text[++pos];
                    if (e == 'u')
                    {
                        sb.Append((char)Convert.ToInt32(text.Substring(pos + 1, 4), 16));
                        pos += 4;
                    }
                    else
                        sb.Append(e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e);
                }
                else
                    sb.Append(text[pos]);
                pos++;
            }
            pos++;
            return sb.ToString();
        }
        if (String.CompareOrdinal(text, pos, "true", 0, 4) == 0)
        {
            pos += 4;
            return true;
        }
        if (String.CompareOrdinal(text, pos, "false", 0, 5) == 0)
        {
            pos += 5;
            return false;
        }
        if (String.CompareOrdinal(text, pos, "null", 0, 4) == 0)
        {
            pos += 4;
            return null;
        }
        int start = pos;
        while (pos < text.Length && "+-0123456789.eE".IndexOf(text[pos]) >= 0)
            pos++;
        string num = text.Substring(start, pos - start);
        if (num.IndexOfAny(new char[] { '.', 'e', 'E' }) >= 0)
            return Double.Parse(num, CultureInfo.InvariantCulture);
        return Int64.Parse(num, CultureInfo.InvariantCulture);
    }

    private void Skip()
    {
        while (pos < text.Length && Char.IsWhiteSpace(text[pos]))
            pos++;
    }

    public static void Write(StringBuilder sb, object o)
    {
        if (o == null)
            sb.Append("null");
        else if (o is string)
        {
            sb.Append('"');
            foreach (char c in (string)o)
            {
                if (c == '"' || c == '\\')
                    sb.Append('\\').Append(c);
                else if (c < 0x20)
                    sb.AppendFormat("\\u{0:x4}", (int)c);
                else
                    sb.Append(c);
            }
            sb.Append('"');
        }
        else if (o is bool)
            sb.Append((bool)o ? "true" : "false");
        else if (o is double)
            sb.Append(((double)o).ToString("R", CultureInfo.InvariantCulture));
        else if (o is long || o is int)
            sb.Append(Convert.ToInt64(o).ToString(CultureInfo.InvariantCulture));
        else if (o is IDictionary)
        {
            sb.Append('{');
            bool first = true;
            foreach (DictionaryEntry kv in (IDictionary)o)
            {
                if (!first)
                    sb.Append(',');
                first = false;
                Write(sb, kv.Key.ToString());
                sb.Append(':');
                Write(sb, kv.Value);
            }
            sb.Append('}');
        }
        else if (o is IEnumerable)
        {
            sb.Append('[');
            bool first = true;
            foreach (object x in (IEnumerable)o)
            {
                if (!first)
                    sb.Append(',');
                first = false;
                Write(sb, x);
            }
            sb.Append(']');
        }
        else
            throw new ArgumentException("cannot write " + o.GetType());
    }
}

// A simulated Windows host for _WinProcs.Stopper: processes, a clock that moves only when the stopper sleeps,
// windows that close (or not), TerminateProcess, and supervisors that start a child again `delay` seconds after it
// died (`times` times, -1 for ever) while they themselves run.
public sealed class SimHost : IProcessHost
{
    private sealed class Proc
    {
        public ProcRow Row;
        public bool Window;
        public bool IgnoresClose;
        public double? DiesAt;
        public bool Dead;
    }

    private sealed class Restart
    {
        public int Supervisor;
        public string Name;
        public string[] Cmdline;
        public double Delay;
        public int Times;
    }

    private double now = 1000;
    private int nextPid = 5000;
    private readonly List<Proc> procs = new List<Proc>();
    private readonly List<Restart> restarts = new List<Restart>();
    private readonly List<KeyValuePair<double, Restart>> scheduled = new List<KeyValuePair<double, Restart>>();
    private readonly HashSet<string> match;
    public readonly List<object> Log = new List<object>();

    private SimHost(Dictionary<string, object> a)
    {
        foreach (Dictionary<string, object> p in ((List<object>)a["procs"]).Cast<Dictionary<string, object>>())
        {
            Proc proc = new Proc();
            proc.Row = new ProcRow();
            proc.Row.Pid = Convert.ToInt32(p["pid"]);
            proc.Row.Ppid = Convert.ToInt32(p["ppid"]);
            proc.Row.Name = (string)p["name"];
            proc.Row.Cmdline = new string[] { (string)p["name"] };
            proc.Row.CreateTime = p.ContainsKey("ctime") ? Convert.ToDouble(p["ctime"]) : 100;
            proc.Window = p.ContainsKey("window") && (bool)p["window"];
            proc.IgnoresClose = p.ContainsKey("ignores_close") && (bool)p["ignores_close"];
            procs.Add(proc);
        }
        foreach (Dictionary<string, object> r in ((List<object>)a["restarts"]).Cast<Dictionary<string, object>>())
            restarts.Add(new Restart { Supervisor = Convert.ToInt32(r["supervisor"]), Name = (string)r["name"],
                Cmdline = new string[] { (string)r["name"] }, Delay = Convert.ToDouble(r["delay"]), Times = Convert.ToInt32(r["times"]) });
        match = new HashSet<string>(((List<object>)a["match"]).Cast<string>(), StringComparer.OrdinalIgnoreCase);
    }

    private Proc Find(int pid, double ctime)
    {
        return procs.FirstOrDefault(p => !p.Dead && p.Row.Pid == pid && p.Row.CreateTime == ctime);
    }

    private void Die(Proc p, double at)
    {
        p.Dead = true;
        Log.Add(String.Format(CultureInfo.InvariantCulture, "{0:0.00} died {1} {2}", at - 1000, p.Row.Pid, p.Row.Name));
        foreach (Restart r in restarts)
        {
            Proc sup = procs.FirstOrDefault(x => !x.Dead && x.Row.Pid == r.Supervisor);
            if (sup != null && p.Row.Ppid == r.Supervisor && String.Equals(p.Row.Name, r.Name) && r.Times != 0)
                scheduled.Add(new KeyValuePair<double, Restart>(at + r.Delay, r));
        }
    }

    // everything due up to now, in time order
    private void Advance()
    {
        while (true)
        {
            double next = Double.MaxValue;
            Proc dying = null;
            foreach (Proc p in procs)
            {
                if (!p.Dead && p.DiesAt.HasValue && p.DiesAt.Value <= now && p.DiesAt.Value < next)
                {
                    next = p.DiesAt.Value;
                    dying = p;
                }
            }
            int due = -1;
            for (int i = 0; i < scheduled.Count; i++)
            {
                if (scheduled[i].Key <= now && scheduled[i].Key < next)
                {
                    next = scheduled[i].Key;
                    due = i;
                    dying = null;
                }
            }
            if (due >= 0)
            {
                Restart r = scheduled[due].Value;
                scheduled.RemoveAt(due);
                if (procs.Any(x => !x.Dead && x.Row.Pid == r.Supervisor) && r.Times != 0)
                {
                    if (r.Times > 0)
                        r.Times--;
                    Proc child = new Proc();
                    child.Row = new ProcRow { Pid = nextPid++, Ppid = r.Supervisor, Name = r.Name, Cmdline = r.Cmdline, CreateTime = next };
                    child.IgnoresClose = true;
                    procs.Add(child);
                    Log.Add(String.Format(CultureInfo.InvariantCulture, "{0:0.00} started {1} {2}", next - 1000, child.Row.Pid, r.Name));
                }
                continue;
            }
            if (dying == null)
                return;
            Die(dying, next);
        }
    }

    public List<ProcRow> Table()
    {
        Advance();
        return procs.Where(p => !p.Dead).Select(p => p.Row.As(null)).ToList();
    }

    public List<ProcRow> Rematch()
    {
        return Table().Where(r => match.Contains(r.Name)).Select(r => { r.MatchedBy = "name"; r.Targets = new List<string> { "t" }; return r; }).ToList();
    }

    public StopTarget Open(ProcRow p)
    {
        Advance();
        if (Find(p.Pid, p.CreateTime) == null)
            return null;
        return new StopTarget { Pid = p.Pid, CreateTime = p.CreateTime };
    }

    public bool AskToClose(StopTarget t)
    {
        t.Signal = "TERM";
        Proc p = Find(t.Pid, t.CreateTime);
        if (p == null || !p.Window)
            return false;
        if (!p.IgnoresClose)
            p.DiesAt = now + 0.2;
        return true;
    }

    public void Kill(StopTarget t)
    {
        t.Signal = "KILL";
        Proc p = Find(t.Pid, t.CreateTime);
        if (p != null)
            Die(p, now);
    }

    public bool HasExited(StopTarget t)
    {
        Advance();
        return Find(t.Pid, t.CreateTime) == null;
    }

    public void Close(StopTarget t)
    {
    }

    public double Now()
    {
        Advance();
        return now;
    }

    public void Sleep(double seconds)
    {
        now += Math.Max(seconds, 0.001);
        Advance();
    }

    private static Dictionary<string, object> Row(ProcRow p)
    {
        return p == null ? null : new Dictionary<string, object> { { "pid", p.Pid }, { "name", p.Name } };
    }

    private static List<object> Entries(List<StopEntry> entries)
    {
        return entries.Select(e => (object)new Dictionary<string, object> {
            { "pid", e.Proc.Pid }, { "name", e.Proc.Name }, { "matched_by", e.Proc.MatchedBy }, { "signal", e.Signal },
            { "outcome", e.Outcome }, { "error", e.Error }, { "reason", e.Reason },
            { "parents", e.Parents == null ? null : e.Parents.Select(x => (object)Row(x)).ToList() },
            { "restarted_by", Row(e.RestartedBy) }, { "respawn", e.Respawn } }).ToList();
    }

    public static object Stop(Dictionary<string, object> a)
    {
        SimHost host = new SimHost(a);
        Stopper s = new Stopper(host);
        s.Kill = a.ContainsKey("kill") && (bool)a["kill"];
        s.Grace = Convert.ToDouble(a["grace"]);
        s.RespawnWindow = Convert.ToDouble(a["respawn_window"]);
        s.Tree = !a.ContainsKey("tree") || (bool)a["tree"];
        s.KillAfterGrace = !a.ContainsKey("kill_after_grace") || (bool)a["kill_after_grace"];
        s.SystemNames.UnionWith(new string[] { "services.exe", "svchost.exe", "explorer.exe" });
        if (a.ContainsKey("protected"))
            s.Protected.UnionWith(((List<object>)a["protected"]).Select(x => Convert.ToInt32(x)));
        double start = host.Now();
        List<ProcRow> first = host.Rematch();
        if (a.ContainsKey("check_mode") && (bool)a["check_mode"])
            s.Plan(first);
        else
            s.Run(first);
        Dictionary<string, object> r = new Dictionary<string, object>();
        r["terminated"] = Entries(s.Terminated);
        r["survivors"] = Entries(s.Survivors);
        r["spared"] = Entries(s.Spared);
        r["rounds"] = s.Rounds;
        r["elapsed"] = host.Now() - start;
        r["running"] = host.Table().Select(x => (object)Row(x)).ToList();
        r["log"] = host.Log;
        return r;
    }
}
