// Copyright: residue.purge contributors
// GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
//
// Hugging Face hub caches on Windows: the scan (both forms huggingface_hub writes there: snapshot files that are
// symbolic links to blobs/<hash>, and, without symlink rights, snapshot files that are copies), the deletion plan
// (a port of _hfcache.plan_cache: huggingface_hub's delete_revisions accounting, LRU size budget) and its
// execution with _WinFiles' handle-based removal. Snapshot links are resolved by opening them, never by
// following them out of the repo: a link whose final path is not in the repo's blobs\ counts for nothing.
using Microsoft.Win32.SafeHandles;
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using ansible_collections.residue.purge.plugins.module_utils._WinFiles;
using ansible_collections.residue.purge.plugins.module_utils._WinActAs;

//TypeAccelerator -Name ResiduePurge.HfCache -TypeName HfCache
//TypeAccelerator -Name ResiduePurge.HfRepo -TypeName HfRepo
//TypeAccelerator -Name ResiduePurge.HfSelection -TypeName HfSelection
//TypeAccelerator -Name ResiduePurge.HfRepoPlan -TypeName HfRepoPlan
//TypeAccelerator -Name ResiduePurge.HfCachePlan -TypeName HfCachePlan

namespace ansible_collections.residue.purge.plugins.module_utils._WinHfCache
{
    public class HfRevision
    {
        public string Commit;
        public string Path;
        public List<string> Refs = new List<string>();
        public long Bytes;
        public double LastModified;
        public double LastAccess;
        public long Files;
    }

    public class HfRepo
    {
        public string RepoId;
        public string RepoType;
        public string Path;
        public string Folder;
        public long BlobBytes;
        public long DiskBytes;
        public long Files;
        public double NewestMtime;
        public double LastModified;
        public double LastAccess;
        public List<HfRevision> Revisions = new List<HfRevision>();
        public List<string[]> Incomplete = new List<string[]>();  // name, size, mtime (invariant culture)
        public List<string> Problems = new List<string>();
        // layout: what a deletion plan needs
        public Dictionary<string, long> BlobSizes = new Dictionary<string, long>(StringComparer.OrdinalIgnoreCase);
        public Dictionary<string, HashSet<string>> RevisionBlobs = new Dictionary<string, HashSet<string>>();
        public Dictionary<string, long> RevisionCopyBytes = new Dictionary<string, long>();
    }

    public class HfSelection
    {
        public List<string> Patterns = new List<string>();
        public string RepoType = "any";
        public List<string> Keep = new List<string>();
        public string Revisions;  // all | unreferenced | null (only the budget selects)
        public double OlderThan = -1;  // seconds, < 0: none
        public string AgeBy = "accessed";
        public long MaxSize = -1;  // bytes, < 0: none
        public double IncompleteOlderThan = 86400;  // seconds, < 0: never
        public double Now;

        public bool InScope(HfRepo repo)
        {
            if (RepoType != "any" && RepoType != repo.RepoType)
                return false;
            return Patterns.Count == 0 || Patterns.Any(p => HfCache.FnMatch(repo.RepoId, p));
        }

        public bool Kept(HfRepo repo)
        {
            return Keep.Any(p => HfCache.FnMatch(repo.RepoId, p));
        }

        public double Stamp(HfRevision rev)
        {
            return AgeBy == "accessed" ? rev.LastAccess : rev.LastModified;
        }

        public bool Picks(HfRevision rev)
        {
            if (Revisions == null)
                return false;
            if (Revisions == "unreferenced" && rev.Refs.Count > 0)
                return false;
            if (OlderThan >= 0 && !(Stamp(rev) < Now - OlderThan))
                return false;
            return true;
        }
    }

    public class HfRepoPlan
    {
        public HfRepo Repo;
        public List<string> Revisions = new List<string>();
        public bool Whole;
        public List<string> Blobs = new List<string>();
        public long BlobsKeptShared;
        public List<string> Refs = new List<string>();
        public long FreedBytes;
        public List<string[]> Incomplete = new List<string[]>();  // name, size
        public List<string> Reason = new List<string>();

        public HfRepoPlan(HfRepo repo)
        {
            Repo = repo;
        }

        /// <summary>A blob goes only if no remaining revision uses it (huggingface_hub's delete_revisions).</summary>
        public HfRepoPlan Compute()
        {
            HashSet<string> gone = new HashSet<string>(Revisions);
            List<HfRevision> remaining = Repo.Revisions.Where(r => !gone.Contains(r.Commit)).ToList();
            HashSet<string> deleted = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            long copyBytes = 0;
            foreach (string commit in Revisions)
            {
                HashSet<string> blobs;
                if (Repo.RevisionBlobs.TryGetValue(commit, out blobs))
                    deleted.UnionWith(blobs);
                long copies;
                if (Repo.RevisionCopyBytes.TryGetValue(commit, out copies))
                    copyBytes += copies;
            }
            HashSet<string> kept = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (HfRevision rev in remaining)
            {
                HashSet<string> blobs;
                if (Repo.RevisionBlobs.TryGetValue(rev.Commit, out blobs))
                    kept.UnionWith(blobs);
            }
            Whole = remaining.Count == 0 && (Revisions.Count > 0 || Whole);
            if (Whole)
            {
                Blobs = deleted.OrderBy(b => b, StringComparer.Ordinal).ToList();
                BlobsKeptShared = 0;
                Refs = new List<string>();
            }
            else
            {
                Blobs = deleted.Where(b => !kept.Contains(b)).OrderBy(b => b, StringComparer.Ordinal).ToList();
                BlobsKeptShared = deleted.Count(b => kept.Contains(b));
                Refs = Repo.Revisions.Where(r => gone.Contains(r.Commit)).SelectMany(r => r.Refs)
                    .OrderBy(r => r, StringComparer.Ordinal).ToList();
            }
            long freed = copyBytes;
            foreach (string b in Blobs)
            {
                long size;
                if (Repo.BlobSizes.TryGetValue(b, out size))
                    freed += size;
            }
            FreedBytes = freed;
            return this;
        }

        public bool Changes
        {
            get { return Revisions.Count > 0 || Whole || Incomplete.Count > 0; }
        }
    }

    public class HfCachePlan
    {
        public string CachePath;
        public List<HfRepoPlan> Repos = new List<HfRepoPlan>();
        public List<string[]> HeldBack = new List<string[]>();  // repo_id, repo_type, reason, detail
        public long BytesBefore;
        public long BytesAfter;
        public long MaxSize = -1;
        public List<string> KeptOverBudget = new List<string>();
    }

    public static class HfCache
    {
        public const int MaxProblemsPerRepo = 20;
        private static readonly Dictionary<string, string> RepoTypes = new Dictionary<string, string> {
            { "models", "model" }, { "datasets", "dataset" }, { "spaces", "space" } };
        private static readonly HashSet<string> Ignored = new HashSet<string>(StringComparer.OrdinalIgnoreCase) {
            ".DS_Store", "Thumbs.db", "desktop.ini" };

        public static bool FnMatch(string text, string glob)
        {
            string pattern = "^" + Regex.Escape(glob).Replace(@"\*", ".*").Replace(@"\?", ".")
                .Replace(@"\[!", "[^").Replace(@"\[", "[") + "$";
            return Regex.IsMatch(text, pattern);
        }

        private static string Inv(double d)
        {
            return d.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        }

        private static DirectoryInfo[] Dirs(string path, List<string> problems)
        {
            try
            {
                return new DirectoryInfo(WinFiles.LongPath(path)).GetDirectories();
            }
            catch (Exception e)
            {
                problems.Add(String.Format("cannot read {0}: {1}", path, e.Message));
                return new DirectoryInfo[0];
            }
        }

        private static FileSystemInfo[] Entries(string path, List<string> problems)
        {
            try
            {
                return new DirectoryInfo(WinFiles.LongPath(path)).GetFileSystemInfos();
            }
            catch (Exception e)
            {
                problems.Add(String.Format("cannot read {0}: {1}", path, e.Message));
                return new FileSystemInfo[0];
            }
        }

        private static double Epoch(DateTime utc)
        {
            return (utc - new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc)).TotalSeconds;
        }

        private static bool IsReparse(FileSystemInfo info)
        {
            return (info.Attributes & FileAttributes.ReparsePoint) != 0;
        }

        /// <summary>The repos of a hub cache dir (the folder holding models--org--name).</summary>
        public static List<HfRepo> Scan(string cacheDir, List<string> problems)
        {
            List<HfRepo> repos = new List<HfRepo>();
            foreach (DirectoryInfo d in Dirs(cacheDir, problems).OrderBy(x => x.Name, StringComparer.Ordinal))
            {
                string prefix = d.Name.Contains("--") ? d.Name.Substring(0, d.Name.IndexOf("--")) : null;
                if (prefix == null || !RepoTypes.ContainsKey(prefix))
                    continue;
                if (IsReparse(d))
                {
                    problems.Add(String.Format("repo folder is a junction or link, not entered: {0}", Path.Combine(cacheDir, d.Name)));
                    continue;
                }
                HfRepo repo = ScanRepo(Path.Combine(cacheDir, d.Name));
                problems.AddRange(repo.Problems);
                repos.Add(repo);
            }
            return repos;
        }

        /// <summary>Scan with the rights of the cache's user (ActingUser: the module impersonates the user's token):
        /// what their ACLs refuse them is a problem and not counted. null when those rights cannot be had: the reason
        /// is added to failures, and the cache is neither planned nor touched (never scanned with the module's own
        /// rights instead).</summary>
        public static List<HfRepo> ScanAs(ActingUser actor, string cacheDir, List<string> problems, List<string> failures)
        {
            try
            {
                return actor.Run(() => Scan(cacheDir, problems));
            }
            catch (ActAsFailed e)
            {
                failures.Add(String.Format("{0}: not scanned: {1}", cacheDir, Whose.LeftAlone(e.Message)));
                return null;
            }
        }

        public static HfRepo ScanRepo(string repoPath)
        {
            HfRepo repo = new HfRepo();
            repo.Path = repoPath;
            repo.Folder = Path.GetFileName(repoPath);
            string rest = repo.Folder.Substring(repo.Folder.IndexOf("--") + 2);
            repo.RepoType = RepoTypes[repo.Folder.Substring(0, repo.Folder.IndexOf("--"))];
            repo.RepoId = rest.Replace("--", "/");
            List<string> problems = repo.Problems;
            string blobsDir = Path.Combine(repoPath, "blobs");
            Dictionary<string, double[]> blobStats = new Dictionary<string, double[]>(StringComparer.OrdinalIgnoreCase);
            if (Directory.Exists(WinFiles.LongPath(blobsDir)))
            {
                foreach (FileSystemInfo f in Entries(blobsDir, problems))
                {
                    FileInfo file = f as FileInfo;
                    if (file == null || IsReparse(f))
                        continue;
                    if (f.Name.EndsWith(".incomplete", StringComparison.Ordinal))
                        repo.Incomplete.Add(new string[] { f.Name, file.Length.ToString(), Inv(Epoch(f.LastWriteTimeUtc)) });
                    else
                        blobStats[f.Name] = new double[] { file.Length, Epoch(f.LastWriteTimeUtc), Epoch(f.LastAccessTimeUtc) };
                }
            }
            Dictionary<string, List<string>> refsByCommit = new Dictionary<string, List<string>>(StringComparer.Ordinal);
            string refsDir = Path.Combine(repoPath, "refs");
            if (Directory.Exists(WinFiles.LongPath(refsDir)))
            {
                Stack<string> pending = new Stack<string>();
                pending.Push(refsDir);
                while (pending.Count > 0)
                {
                    string dir = pending.Pop();
                    foreach (FileSystemInfo f in Entries(dir, problems))
                    {
                        string full = Path.Combine(dir, f.Name);
                        if (IsReparse(f))
                        {
                            problems.Add("ref is not a regular file: " + full);
                            continue;
                        }
                        if (f is DirectoryInfo)
                        {
                            pending.Push(full);
                            continue;
                        }
                        if (Ignored.Contains(f.Name))
                            continue;
                        string commit;
                        try
                        {
                            commit = File.ReadAllText(WinFiles.LongPath(full)).Trim();
                        }
                        catch (Exception e)
                        {
                            problems.Add(String.Format("cannot read ref {0}: {1}", full, e.Message));
                            continue;
                        }
                        string name = full.Substring(refsDir.Length + 1).Replace('\\', '/');
                        if (!refsByCommit.ContainsKey(commit))
                            refsByCommit[commit] = new List<string>();
                        refsByCommit[commit].Add(name);
                    }
                }
            }
            HashSet<string> referenced = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            long allCopyBytes = 0, copyCount = 0;
            double copyMtime = 0, copyAtime = 0;
            string snapshotsDir = Path.Combine(repoPath, "snapshots");
            string blobsFinal = WinFiles.RealPath(blobsDir);
            if (!Directory.Exists(WinFiles.LongPath(snapshotsDir)))
            {
                problems.Add("no snapshots dir in " + repoPath);
            }
            else
            {
                foreach (FileSystemInfo c in Entries(snapshotsDir, problems).OrderBy(x => x.Name, StringComparer.Ordinal))
                {
                    string path = Path.Combine(snapshotsDir, c.Name);
                    if (!(c is DirectoryInfo) || IsReparse(c))
                    {
                        if (!Ignored.Contains(c.Name))
                            problems.Add("not a snapshot dir: " + path);
                        continue;
                    }
                    HfRevision rev = new HfRevision();
                    rev.Commit = c.Name;
                    rev.Path = path;
                    HashSet<string> names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
                    long copyBytes = 0;
                    double revCopyMtime = 0, revCopyAtime = 0;
                    long revCopies = 0;
                    Stack<string> pending = new Stack<string>();
                    pending.Push(path);
                    while (pending.Count > 0)
                    {
                        string dir = pending.Pop();
                        foreach (FileSystemInfo f in Entries(dir, problems))
                        {
                            string full = Path.Combine(dir, f.Name);
                            if (f is DirectoryInfo && !IsReparse(f))
                            {
                                pending.Push(full);
                                continue;
                            }
                            rev.Files++;
                            if (IsReparse(f))
                            {
                                // a snapshot link: which blob does it end at?
                                string target = WinFiles.RealPath(full);
                                string parent = target == null ? null : Path.GetDirectoryName(target);
                                if (target == null)
                                    problems.Add("broken snapshot link (blob missing): " + full);
                                else if (blobsFinal == null || !String.Equals(parent, blobsFinal, StringComparison.OrdinalIgnoreCase))
                                    problems.Add(String.Format("snapshot link points outside blobs\\: {0} -> {1}", full, target));
                                else if (!blobStats.ContainsKey(Path.GetFileName(target)))
                                    problems.Add("broken snapshot link (blob missing): " + full);
                                else
                                    names.Add(Path.GetFileName(target));
                                continue;
                            }
                            // no symlinks on this machine: huggingface_hub copied the file into the snapshot
                            FileInfo file = (FileInfo)f;
                            copyBytes += file.Length;
                            revCopies++;
                            revCopyMtime = Math.Max(revCopyMtime, Epoch(f.LastWriteTimeUtc));
                            revCopyAtime = Math.Max(revCopyAtime, Epoch(f.LastAccessTimeUtc));
                        }
                    }
                    long size = 0;
                    double mtime = 0, atime = 0;
                    foreach (string n in names)
                    {
                        double[] st = blobStats[n];
                        size += (long)st[0];
                        mtime = Math.Max(mtime, st[1]);
                        atime = Math.Max(atime, st[2]);
                    }
                    rev.Bytes = copyBytes + size;
                    if (names.Count > 0 || revCopies > 0)
                    {
                        rev.LastModified = Math.Max(mtime, revCopyMtime);
                        rev.LastAccess = Math.Max(atime, revCopyAtime);
                    }
                    else
                    {
                        rev.LastModified = Epoch(c.LastWriteTimeUtc);
                        rev.LastAccess = Epoch(c.LastAccessTimeUtc);
                    }
                    List<string> refs;
                    if (refsByCommit.TryGetValue(rev.Commit, out refs))
                    {
                        rev.Refs = refs.OrderBy(r => r, StringComparer.Ordinal).ToList();
                        refsByCommit.Remove(rev.Commit);
                    }
                    repo.Revisions.Add(rev);
                    referenced.UnionWith(names);
                    repo.RevisionBlobs[rev.Commit] = names;
                    repo.RevisionCopyBytes[rev.Commit] = copyBytes;
                    allCopyBytes += copyBytes;
                    copyCount += revCopies;
                    copyMtime = Math.Max(copyMtime, revCopyMtime);
                    copyAtime = Math.Max(copyAtime, revCopyAtime);
                }
            }
            foreach (KeyValuePair<string, List<string>> kv in refsByCommit.OrderBy(k => k.Key, StringComparer.Ordinal))
            {
                foreach (string r in kv.Value.OrderBy(x => x, StringComparer.Ordinal))
                    problems.Add(String.Format("ref {0} of {1} points to a missing snapshot {2}", r, repoPath, kv.Key));
            }
            long blobSize = 0;
            double blobMtime = 0, blobAtime = 0;
            foreach (string n in referenced)
            {
                blobSize += (long)blobStats[n][0];
                blobMtime = Math.Max(blobMtime, blobStats[n][1]);
                blobAtime = Math.Max(blobAtime, blobStats[n][2]);
            }
            foreach (KeyValuePair<string, double[]> kv in blobStats)
                repo.BlobSizes[kv.Key] = (long)kv.Value[0];
            repo.BlobBytes = allCopyBytes + blobSize;
            if (referenced.Count + copyCount > 0)
            {
                repo.LastModified = Math.Max(blobMtime, copyMtime);
                repo.LastAccess = Math.Max(blobAtime, copyAtime);
            }
            else
            {
                DirectoryInfo top = new DirectoryInfo(WinFiles.LongPath(repoPath));
                repo.LastModified = Epoch(top.LastWriteTimeUtc);
                repo.LastAccess = Epoch(top.LastAccessTimeUtc);
            }
            TreeUsage usage = WinFiles.Measure(repoPath, false);
            repo.DiskBytes = usage.Bytes;
            repo.Files = usage.Files;
            repo.NewestMtime = usage.NewestMtime;
            if (problems.Count > MaxProblemsPerRepo)
            {
                int more = problems.Count - MaxProblemsPerRepo;
                problems.RemoveRange(MaxProblemsPerRepo, more);
                problems.Add(String.Format("... and {0} more problems in {1}", more, repoPath));
            }
            return repo;
        }

        /// <summary>_hfcache.plan_cache. held(repo, whole) returns null or {reason, detail}.</summary>
        public static HfCachePlan Plan(string cachePath, List<HfRepo> repos, HfSelection selection, Func<HfRepo, bool, string[]> held)
        {
            HfCachePlan plan = new HfCachePlan();
            plan.CachePath = cachePath;
            plan.MaxSize = selection.MaxSize;
            plan.BytesBefore = repos.Sum(r => r.BlobBytes);
            Dictionary<string, HfRepoPlan> plans = new Dictionary<string, HfRepoPlan>(StringComparer.OrdinalIgnoreCase);
            Dictionary<string, string[]> heldCache = new Dictionary<string, string[]>();
            Func<HfRepo, bool, string[]> checkHeld = delegate (HfRepo repo, bool whole)
            {
                string key = repo.Path + "|" + whole;
                if (!heldCache.ContainsKey(key))
                    heldCache[key] = held(repo, whole);
                return heldCache[key];
            };
            Action<HfRepo, string[]> hold = delegate (HfRepo repo, string[] reason)
            {
                if (!plan.HeldBack.Any(h => h[0] == repo.RepoId && h[1] == repo.RepoType && h[2] == reason[0] && h[3] == reason[1]))
                    plan.HeldBack.Add(new string[] { repo.RepoId, repo.RepoType, reason[0], reason[1] });
            };
            List<HfRepo> scope = repos.Where(r => selection.InScope(r) && !selection.Kept(r)).ToList();
            double cutoffIncomplete = selection.IncompleteOlderThan < 0 ? Double.NaN : selection.Now - selection.IncompleteOlderThan;
            foreach (HfRepo repo in scope)
            {
                List<string> chosen = repo.Revisions.Where(r => selection.Picks(r)).Select(r => r.Commit).ToList();
                bool wholeEmpty = repo.Revisions.Count == 0 && selection.Revisions == "all" && selection.OlderThan < 0
                                  && (selection.Patterns.Count > 0 || selection.RepoType != "any");
                List<string[]> stale = repo.Incomplete.Where(i => !Double.IsNaN(cutoffIncomplete)
                    && Double.Parse(i[2], System.Globalization.CultureInfo.InvariantCulture) < cutoffIncomplete)
                    .Select(i => new string[] { i[0], i[1] }).ToList();
                if (chosen.Count == 0 && !wholeEmpty && stale.Count == 0)
                    continue;
                HfRepoPlan rp = new HfRepoPlan(repo);
                rp.Revisions = chosen;
                rp.Whole = wholeEmpty;
                rp.Compute();
                string[] reason = checkHeld(repo, rp.Whole);
                if (reason != null)
                {
                    hold(repo, reason);
                    continue;
                }
                if (chosen.Count > 0 || wholeEmpty)
                    rp.Reason.Add("selected");
                rp.Incomplete = rp.Whole ? new List<string[]>() : stale;
                if (stale.Count > 0)
                    rp.Reason.Add("incomplete");
                plans[repo.Path] = rp;
            }
            long after = plan.BytesBefore - plans.Values.Sum(p => p.FreedBytes);
            if (selection.MaxSize >= 0 && after > selection.MaxSize)
            {
                var candidates = new List<Tuple<double, string, string, HfRepo>>();
                foreach (HfRepo repo in scope)
                {
                    HfRepoPlan rp;
                    HashSet<string> gone = plans.TryGetValue(repo.Path, out rp) ? new HashSet<string>(rp.Revisions) : new HashSet<string>();
                    foreach (HfRevision r in repo.Revisions.Where(r => !gone.Contains(r.Commit)))
                        candidates.Add(Tuple.Create(selection.Stamp(r), repo.Path, r.Commit, repo));
                }
                candidates = candidates.OrderBy(c => c.Item1).ThenBy(c => c.Item2, StringComparer.Ordinal)
                    .ThenBy(c => c.Item3, StringComparer.Ordinal).ToList();
                foreach (var c in candidates)
                {
                    if (after <= selection.MaxSize)
                        break;
                    HfRepoPlan rp;
                    if (!plans.TryGetValue(c.Item2, out rp))
                        rp = new HfRepoPlan(c.Item4);
                    long before = rp.FreedBytes;
                    HfRepoPlan trial = new HfRepoPlan(c.Item4);
                    trial.Revisions = new List<string>(rp.Revisions);
                    trial.Revisions.Add(c.Item3);
                    trial.Compute();
                    string[] reason = checkHeld(c.Item4, trial.Whole);
                    if (reason != null)
                    {
                        hold(c.Item4, reason);
                        continue;
                    }
                    rp.Revisions = trial.Revisions;
                    rp.Compute();
                    if (!rp.Reason.Contains("budget"))
                        rp.Reason.Add("budget");
                    if (rp.Whole)
                        rp.Incomplete = new List<string[]>();
                    plans[c.Item2] = rp;
                    after -= rp.FreedBytes - before;
                }
                if (after > selection.MaxSize)
                {
                    plan.KeptOverBudget = repos.Where(r => selection.Kept(r) || !selection.InScope(r))
                        .Select(r => r.RepoId).Distinct().OrderBy(x => x, StringComparer.Ordinal).ToList();
                }
            }
            foreach (HfRepo repo in repos)
            {
                HfRepoPlan rp;
                if (plans.TryGetValue(repo.Path, out rp) && rp.Changes)
                    plan.Repos.Add(rp);
            }
            plan.BytesAfter = plan.BytesBefore - plan.Repos.Sum(p => p.FreedBytes);
            return plan;
        }

        /// <summary>Every file of the repo that the plan would remove (for the Restart Manager).</summary>
        public static List<string> FilesOf(HfRepoPlan rp)
        {
            List<string> files = new List<string>();
            if (rp.Whole)
            {
                TreeUsage usage = WinFiles.Measure(rp.Repo.Path, true);
                files.AddRange(usage.FilePaths);
                return files;
            }
            foreach (string b in rp.Blobs)
                files.Add(Path.Combine(rp.Repo.Path, "blobs", b));
            foreach (string commit in rp.Revisions)
            {
                TreeUsage usage = WinFiles.Measure(Path.Combine(rp.Repo.Path, "snapshots", commit), true);
                files.AddRange(usage.FilePaths);
            }
            return files;
        }

        /// <summary>Carry out one repo's plan: snapshots and refs before the blobs they point to, as huggingface_hub.
        /// Returns the failures (path: error).</summary>
        public static List<string> Execute(string cachePath, HfRepoPlan rp)
        {
            List<string> failures = new List<string>();
            RemoveOptions all = new RemoveOptions();
            string basePath = rp.Repo.Path;
            Action<string, string> remove = delegate (string path, string expected)
            {
                RemovalResult res = WinFiles.RemoveTree(path, expected, all);
                foreach (string[] f in res.Failures)
                    failures.Add(f[0] + ": " + f[1]);
            };
            string repoFinal = WinFiles.RealPath(basePath);
            if (rp.Whole)
            {
                remove(basePath, repoFinal);
                string locks = Path.Combine(cachePath, ".locks", rp.Repo.Folder);
                if (Directory.Exists(WinFiles.LongPath(locks)))
                    remove(locks, WinFiles.RealPath(locks));
                return failures;
            }
            foreach (string commit in rp.Revisions)
            {
                string snap = Path.Combine(basePath, "snapshots", commit);
                remove(snap, repoFinal == null ? null : Path.Combine(repoFinal, "snapshots", commit));
            }
            foreach (string r in rp.Refs)
            {
                string rel = r.Replace('/', '\\');
                remove(Path.Combine(basePath, "refs", rel), repoFinal == null ? null : Path.Combine(repoFinal, "refs", rel));
            }
            bool snapshotFailed = failures.Any(f => f.StartsWith(Path.Combine(basePath, "snapshots") + "\\", StringComparison.OrdinalIgnoreCase));
            // a snapshot that could not go may still point at these blobs: keep them then
            foreach (string b in snapshotFailed ? new List<string>() : rp.Blobs)
                remove(Path.Combine(basePath, "blobs", b), repoFinal == null ? null : Path.Combine(repoFinal, "blobs", b));
            foreach (string[] inc in rp.Incomplete)
                remove(Path.Combine(basePath, "blobs", inc[0]), repoFinal == null ? null : Path.Combine(repoFinal, "blobs", inc[0]));
            return failures;
        }

        /// <summary>Execute with the rights of the cache's user: Windows refuses what that user could not delete (a
        /// failure each). When those rights cannot be had the repo is one failure and nothing of it is touched.</summary>
        public static List<string> ExecuteAs(ActingUser actor, string cachePath, HfRepoPlan rp)
        {
            try
            {
                return actor.Run(() => Execute(cachePath, rp));
            }
            catch (ActAsFailed e)
            {
                return new List<string> { String.Format("{0}: {1}", rp.Repo.Path, Whose.LeftAlone(e.Message)) };
            }
        }

        /// <summary>HeldLock with the rights of the cache's user: the probe opens the user's lock files (which the
        /// user may have made links to anything) as that user, never as the module. When those rights cannot be had
        /// the repo counts as locked (held back, nothing deleted).</summary>
        public static string HeldLockAs(ActingUser actor, string cachePath, HfRepo repo)
        {
            try
            {
                return actor.Run(() => HeldLock(cachePath, repo));
            }
            catch (ActAsFailed e)
            {
                return String.Format("{0}\\.locks\\{1} (its lock files could not be probed: {2})", cachePath.TrimEnd('\\'), repo.Folder, e.Message);
            }
        }

        /// <summary>Whether a huggingface_hub lock file of the repo is held (filelock keeps it open exclusively).</summary>
        public static string HeldLock(string cachePath, HfRepo repo)
        {
            string dir = Path.Combine(cachePath, ".locks", repo.Folder);
            if (!Directory.Exists(WinFiles.LongPath(dir)))
                return null;
            foreach (string file in Directory.GetFiles(WinFiles.LongPath(dir), "*.lock"))
            {
                try
                {
                    using (new FileStream(file, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
                    {
                    }
                }
                catch (IOException)
                {
                    return WinFiles.DisplayPath(file);
                }
                catch (UnauthorizedAccessException)
                {
                }
            }
            return null;
        }
    }
}
