// Copyright: residue.purge contributors
// GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
//
// What pip_remove removes from one Windows Python environment: a port of _pyenvs.plan_removal (a named package
// that a remaining distribution requires stays, orphans only when asked and only what pip or uv installed).
// The requirements come from the environment's own interpreter, markers evaluated there.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;

//TypeAccelerator -Name ResiduePurge.PipDist -TypeName PipDist
//TypeAccelerator -Name ResiduePurge.PipPlan -TypeName PipPlan
//TypeAccelerator -Name ResiduePurge.WinPip -TypeName WinPip

namespace ansible_collections.residue.purge.plugins.module_utils._WinPip
{
    public class PipDist
    {
        public string Name;  // normalised (PEP 503)
        public string Version;
        public List<string> Requires = new List<string>();  // normalised names, markers already evaluated
        public bool Requested;
        public string Installer = "";
    }

    public class PipPlan
    {
        public List<PipDist> Remove = new List<PipDist>();
        public List<PipDist> Orphans = new List<PipDist>();
        public List<KeyValuePair<PipDist, List<string>>> KeptShared = new List<KeyValuePair<PipDist, List<string>>>();
        public List<KeyValuePair<PipDist, string>> Kept = new List<KeyValuePair<PipDist, string>>();
        public List<string> NotInstalled = new List<string>();
    }

    public static class WinPip
    {
        public static readonly HashSet<string> Protected = new HashSet<string> { "pip", "setuptools", "wheel" };
        public static readonly HashSet<string> OrphanInstallers = new HashSet<string> { "pip", "uv" };
        private static readonly Regex ValidName = new Regex(@"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$");

        public static string Normalize(string name)
        {
            return Regex.Replace(name, @"[-_.]+", "-").ToLowerInvariant();
        }

        public static bool IsValidName(string name)
        {
            return ValidName.IsMatch(name);
        }

        public static PipPlan PlanRemoval(IList<PipDist> dists, IEnumerable packages, IEnumerable keep, bool orphans, bool removeRequired)
        {
            Dictionary<string, PipDist> byName = new Dictionary<string, PipDist>();
            foreach (PipDist d in dists)
                byName[d.Name] = d;
            List<string> wanted = new List<string>();
            foreach (object p in packages)
                wanted.Add(Normalize(p.ToString()));
            HashSet<string> keepSet = new HashSet<string>();
            foreach (object k in keep)
                keepSet.Add(Normalize(k.ToString()));
            Dictionary<string, HashSet<string>> edges = new Dictionary<string, HashSet<string>>();
            Dictionary<string, HashSet<string>> requiredBy = new Dictionary<string, HashSet<string>>();
            foreach (PipDist d in dists)
            {
                edges[d.Name] = new HashSet<string>(d.Requires.Where(r => r != d.Name && byName.ContainsKey(r)));
                if (!requiredBy.ContainsKey(d.Name))
                    requiredBy[d.Name] = new HashSet<string>();
            }
            foreach (KeyValuePair<string, HashSet<string>> kv in edges)
            {
                foreach (string dep in kv.Value)
                {
                    if (!requiredBy.ContainsKey(dep))
                        requiredBy[dep] = new HashSet<string>();
                    requiredBy[dep].Add(kv.Key);
                }
            }
            Func<string, HashSet<string>> req = n => requiredBy.ContainsKey(n) ? requiredBy[n] : new HashSet<string>();
            PipPlan plan = new PipPlan();
            plan.NotInstalled = wanted.Where(n => !byName.ContainsKey(n)).Distinct().OrderBy(n => n, StringComparer.Ordinal).ToList();
            HashSet<string> remove = new HashSet<string>(wanted.Where(n => byName.ContainsKey(n) && !keepSet.Contains(n)));
            HashSet<string> named = new HashSet<string>(wanted);
            bool changed;
            if (!removeRequired)
            {
                // the greatest set whose members are required only by members (A and its named dependent go together)
                do
                {
                    changed = false;
                    foreach (string name in remove.OrderBy(n => n, StringComparer.Ordinal).ToList())
                    {
                        if (req(name).Except(remove).Any())
                        {
                            remove.Remove(name);
                            changed = true;
                        }
                    }
                } while (changed);
            }
            Func<string, string> keepReason = delegate (string name)
            {
                PipDist dist = byName[name];
                if (keepSet.Contains(name))
                    return "keep";
                if (Protected.Contains(name) && !named.Contains(name))
                    return "protected";
                if (dist.Requested)
                    return "requested";
                if (!OrphanInstallers.Contains(dist.Installer ?? ""))
                    return "installed by " + (String.IsNullOrEmpty(dist.Installer) ? "an unknown installer" : dist.Installer);
                return null;
            };
            HashSet<string> orphanSet = new HashSet<string>();
            if (orphans)
            {
                Stack<string> stack = new Stack<string>(remove);
                while (stack.Count > 0)
                {
                    foreach (string dep in edges[stack.Pop()])
                    {
                        if (!remove.Contains(dep) && !orphanSet.Contains(dep) && keepReason(dep) == null)
                        {
                            orphanSet.Add(dep);
                            stack.Push(dep);
                        }
                    }
                }
                do
                {
                    changed = false;
                    foreach (string name in orphanSet.OrderBy(n => n, StringComparer.Ordinal).ToList())
                    {
                        if (req(name).Except(remove).Except(orphanSet).Any())
                        {
                            orphanSet.Remove(name);
                            changed = true;
                        }
                    }
                } while (changed);
            }
            HashSet<string> gone = new HashSet<string>(remove.Union(orphanSet));
            HashSet<string> considered = new HashSet<string>(wanted.Where(n => byName.ContainsKey(n) && !gone.Contains(n) && !keepSet.Contains(n)));
            foreach (string name in gone)
                considered.UnionWith(edges[name]);
            foreach (string name in considered.Except(gone).OrderBy(n => n, StringComparer.Ordinal))
            {
                List<string> requirers = req(name).Except(gone).OrderBy(n => n, StringComparer.Ordinal).ToList();
                if (requirers.Count > 0)
                    plan.KeptShared.Add(new KeyValuePair<PipDist, List<string>>(byName[name], requirers));
                else
                    plan.Kept.Add(new KeyValuePair<PipDist, string>(byName[name], keepReason(name) ?? "orphan (orphans: false)"));
            }
            foreach (string name in wanted.Where(n => keepSet.Contains(n) && byName.ContainsKey(n)).Distinct().OrderBy(n => n, StringComparer.Ordinal))
                plan.Kept.Add(new KeyValuePair<PipDist, string>(byName[name], "keep"));
            plan.Remove = remove.OrderBy(n => n, StringComparer.Ordinal).Select(n => byName[n]).ToList();
            plan.Orphans = orphanSet.OrderBy(n => n, StringComparer.Ordinal).Select(n => byName[n]).ToList();
            return plan;
        }
    }
}
