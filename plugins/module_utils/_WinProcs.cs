// Copyright: residue.purge contributors
// GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
//
// Stopping processes on Windows the way reap does on POSIX: a process is acted on only while it is still the
// process that was matched (same pid and creation time), the polite request first (WM_CLOSE to its top-level
// windows, what taskkill without /F sends), a wait for all of them together, then TerminateProcess.
using Microsoft.Win32.SafeHandles;
using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;

//TypeAccelerator -Name ResiduePurge.WinProcs -TypeName WinProcs
//TypeAccelerator -Name ResiduePurge.StopTarget -TypeName StopTarget
//TypeAccelerator -Name ResiduePurge.ProcRow -TypeName ProcRow
//TypeAccelerator -Name ResiduePurge.Stopper -TypeName Stopper
//TypeAccelerator -Name ResiduePurge.WindowsProcessHost -TypeName WindowsProcessHost

namespace ansible_collections.residue.purge.plugins.module_utils._WinProcs
{
    public class StopTarget
    {
        public int Pid;
        public double CreateTime;  // epoch seconds
        public string Outcome;  // exited | killed | survived | gone
        public string Signal;  // TERM (WM_CLOSE) | KILL
        public string Error;
        internal SafeWaitHandle Handle;
    }

    public static class WinProcs
    {
        private const uint PROCESS_TERMINATE = 0x0001;
        private const uint PROCESS_QUERY_LIMITED_INFORMATION = 0x1000;
        private const uint SYNCHRONIZE = 0x00100000;
        private const uint WM_CLOSE = 0x0010;
        private const uint WAIT_OBJECT_0 = 0;
        // creation times from WMI (microseconds) and from the kernel (100 ns) agree to well under this
        private const double SameProcessTolerance = 0.001;

        private delegate bool EnumWindowsProc(IntPtr hwnd, IntPtr lParam);

        [DllImport("kernel32.dll", SetLastError = true)]
        private static extern SafeWaitHandle OpenProcess(uint access, bool inherit, int pid);

        [DllImport("kernel32.dll", SetLastError = true)]
        private static extern bool GetProcessTimes(SafeWaitHandle process, out long creation, out long exit,
            out long kernel, out long user);

        [DllImport("kernel32.dll", SetLastError = true)]
        private static extern bool TerminateProcess(SafeWaitHandle process, uint exitCode);

        [DllImport("kernel32.dll", SetLastError = true)]
        private static extern uint WaitForSingleObject(SafeWaitHandle handle, uint milliseconds);

        [DllImport("user32.dll")]
        private static extern bool EnumWindows(EnumWindowsProc callback, IntPtr lParam);

        [DllImport("user32.dll")]
        private static extern uint GetWindowThreadProcessId(IntPtr hwnd, out int pid);

        [DllImport("user32.dll", SetLastError = true)]
        private static extern bool PostMessageW(IntPtr hwnd, uint msg, IntPtr wParam, IntPtr lParam);

        [DllImport("shell32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        private static extern IntPtr CommandLineToArgvW(string cmdLine, out int argc);

        [DllImport("kernel32.dll")]
        private static extern IntPtr LocalFree(IntPtr mem);

        public static double Epoch(long filetime)
        {
            return (filetime - 116444736000000000L) / 10000000.0;
        }

        /// <summary>argv of a command line, split as the C runtime does (CommandLineToArgvW).</summary>
        public static string[] SplitCommandLine(string commandLine)
        {
            if (String.IsNullOrEmpty(commandLine))
                return new string[0];
            int argc;
            IntPtr argv = CommandLineToArgvW(commandLine, out argc);
            if (argv == IntPtr.Zero)
                return new string[] { commandLine };
            try
            {
                string[] args = new string[argc];
                for (int i = 0; i < argc; i++)
                    args[i] = Marshal.PtrToStringUni(Marshal.ReadIntPtr(argv, i * IntPtr.Size));
                return args;
            }
            finally
            {
                LocalFree(argv);
            }
        }

        /// <summary>Open the process if it is still the one matched; null (with Outcome gone) otherwise.</summary>
        public static bool Open(StopTarget target)
        {
            SafeWaitHandle h = OpenProcess(PROCESS_TERMINATE | PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE, false, target.Pid);
            if (h.IsInvalid)
            {
                int err = Marshal.GetLastWin32Error();
                if (err == 87)  // ERROR_INVALID_PARAMETER: no such pid
                {
                    target.Outcome = "gone";
                    return false;
                }
                target.Outcome = "survived";
                target.Error = new Win32Exception(err).Message;
                return false;
            }
            long creation, exit, kernel, user;
            if (!GetProcessTimes(h, out creation, out exit, out kernel, out user)
                || Math.Abs(Epoch(creation) - target.CreateTime) > SameProcessTolerance)
            {
                h.Dispose();
                target.Outcome = "gone";  // the pid now belongs to another process: never touched
                return false;
            }
            if (WaitForSingleObject(h, 0) == WAIT_OBJECT_0)
            {
                h.Dispose();
                target.Outcome = "gone";
                return false;
            }
            target.Handle = h;
            return true;
        }

        /// <summary>WM_CLOSE to every top-level window of the process. False when it has none (a console or
        /// background process has no polite way to be asked; it is terminated after the grace time).</summary>
        public static bool AskToClose(StopTarget target)
        {
            List<IntPtr> windows = new List<IntPtr>();
            EnumWindows(delegate (IntPtr hwnd, IntPtr l)
            {
                int pid;
                GetWindowThreadProcessId(hwnd, out pid);
                if (pid == target.Pid)
                    windows.Add(hwnd);
                return true;
            }, IntPtr.Zero);
            bool sent = false;
            foreach (IntPtr hwnd in windows)
                sent |= PostMessageW(hwnd, WM_CLOSE, IntPtr.Zero, IntPtr.Zero);
            target.Signal = "TERM";
            return sent;
        }

        public static void Kill(StopTarget target)
        {
            target.Signal = "KILL";
            if (target.Handle == null || target.Handle.IsInvalid)
                return;
            if (!TerminateProcess(target.Handle, 1))
                target.Error = new Win32Exception(Marshal.GetLastWin32Error()).Message;
        }

        public static bool HasExited(StopTarget target)
        {
            return target.Handle == null || target.Handle.IsInvalid || WaitForSingleObject(target.Handle, 0) == WAIT_OBJECT_0;
        }

        /// <summary>Wait up to seconds for all of them together. Returns those still running.</summary>
        public static List<StopTarget> WaitAll(List<StopTarget> targets, double seconds)
        {
            DateTime deadline = DateTime.UtcNow.AddSeconds(seconds);
            List<StopTarget> running = new List<StopTarget>(targets);
            while (true)
            {
                running.RemoveAll(HasExited);
                if (running.Count == 0 || DateTime.UtcNow >= deadline)
                    return running;
                Thread.Sleep(50);
            }
        }

        public static void Close(StopTarget target)
        {
            if (target.Handle != null)
                target.Handle.Dispose();
            target.Handle = null;
        }
    }

    /// <summary>One process as the stopper sees it; Source is the caller's own object for it (PowerShell's).</summary>
    public class ProcRow
    {
        public int Pid;
        public int Ppid;
        public double CreateTime;
        public string Name;
        public string[] Cmdline = new string[0];
        public string MatchedBy;
        public List<string> Targets = new List<string>();
        public object Source;

        public string Key
        {
            get { return Pid + "@" + CreateTime.ToString("R", System.Globalization.CultureInfo.InvariantCulture); }
        }

        public ProcRow As(string matchedBy)
        {
            ProcRow copy = (ProcRow)MemberwiseClone();
            copy.MatchedBy = matchedBy;
            copy.Targets = new List<string>();
            return copy;
        }
    }

    /// <summary>One result entry: the process, what was sent, how it ended; for a respawned survivor its parent
    /// chain (nearest first) and the ancestor that started it again; for a spared one why.</summary>
    public class StopEntry
    {
        public ProcRow Proc;
        public string Signal;
        public string Outcome;  // exited | killed | would_stop | survived | respawned | spared
        public string Error;
        public string Reason;
        public List<ProcRow> Parents;
        public ProcRow RestartedBy;
        public bool Respawn;
    }

    /// <summary>What the stopper needs of the host: WindowsProcessHost on Windows, a simulation in the tests.</summary>
    public interface IProcessHost
    {
        /// <summary>Every process running now.</summary>
        List<ProcRow> Table();

        /// <summary>The processes that match the selection now (MatchedBy and Targets set).</summary>
        List<ProcRow> Rematch();

        /// <summary>A handle on p if it is still the process that was matched (same pid and creation time):
        /// null with outcome "gone" (never touched), or "survived" with an error (cannot be opened).</summary>
        StopTarget Open(ProcRow p);

        /// <summary>The polite request (WM_CLOSE to its windows): false when it has no window to ask.</summary>
        bool AskToClose(StopTarget t);

        void Kill(StopTarget t);
        bool HasExited(StopTarget t);
        void Close(StopTarget t);
        double Now();
        void Sleep(double seconds);
    }

    /// <summary>_procs._Stopper for Windows. One round: ask everything pending to close at once (or terminate it, for
    /// KILL), wait up to grace for all of it together, TerminateProcess what is left, then, once the last of them is
    /// gone, watch for respawn_window seconds (not capped by grace) for anything that comes back: a fresh match,
    /// or with tree a process that looks like a stopped one (same name and command line) started by one of their
    /// ancestors. What came back is stopped in the next round, with tree together with the ancestor that restarted
    /// it (the supervisor) unless that is protected or a Windows system process. After the last round everything is
    /// matched once more: what runs then is a survivor with outcome "respawned", its parents and restarted_by.</summary>
    public class Stopper
    {
        public bool Kill;  // signal KILL: TerminateProcess at once
        public double Grace = 10;
        public bool KillAfterGrace = true;
        public bool Tree = true;
        public int MaxRounds = 3;
        public double RespawnWindow = 5;
        public double Poll = 0.05;
        public HashSet<int> Protected = new HashSet<int>();
        public HashSet<string> SystemNames = new HashSet<string>(StringComparer.OrdinalIgnoreCase);

        public List<StopEntry> Terminated = new List<StopEntry>();
        public List<StopEntry> Survivors = new List<StopEntry>();
        public List<StopEntry> Spared = new List<StopEntry>();
        public int Rounds;

        private readonly IProcessHost host;
        private readonly HashSet<string> seen = new HashSet<string>();
        private readonly HashSet<int> escalated = new HashSet<int>();
        private readonly HashSet<string> ancestors = new HashSet<string>();
        private readonly List<ProcRow> stopped = new List<ProcRow>();
        private double scanCost;

        private class Respawned
        {
            public ProcRow Info;
            public List<ProcRow> Chain;
            public ProcRow Restarter;
        }

        public Stopper(IProcessHost host)
        {
            this.host = host;
        }

        private string SignalName
        {
            get { return Kill ? "KILL" : "TERM"; }
        }

        /// <summary>Why p is never signalled, or null.</summary>
        public string SpareReason(ProcRow p)
        {
            if (Protected.Contains(p.Pid))
                return "the module itself or one of its ancestors (the Ansible connection)";
            if (p.Pid == 0 || p.Pid == 4 || (p.Name != null && SystemNames.Contains(p.Name)))
                return "a Windows system process";
            return null;
        }

        /// <summary>The ancestors of pid, nearest first, as far as the table shows them; a parent created after its
        /// child is not its parent (the parent's pid was reused).</summary>
        public static List<ProcRow> Lineage(ProcRow p, Dictionary<int, ProcRow> table)
        {
            List<ProcRow> chain = new List<ProcRow>();
            HashSet<int> seenPids = new HashSet<int> { p.Pid };
            ProcRow current = p;
            while (current.Ppid != 0 && !seenPids.Contains(current.Ppid))
            {
                ProcRow parent;
                if (!table.TryGetValue(current.Ppid, out parent) || parent.CreateTime > current.CreateTime)
                    break;
                seenPids.Add(parent.Pid);
                chain.Add(parent);
                current = parent;
            }
            return chain;
        }

        /// <summary>_procs.restarter_in: the ancestor that started p, the nearest one created more than a second
        /// before it (a wrapper shell born with it is skipped: what restarted it was running before), or null.</summary>
        public static ProcRow RestarterIn(ProcRow p, Dictionary<int, ProcRow> table)
        {
            return Lineage(p, table).FirstOrDefault(a => a.CreateTime < p.CreateTime - 1.0);
        }

        /// <summary>The process table by pid.</summary>
        public static Dictionary<int, ProcRow> ByPid(List<ProcRow> rows)
        {
            Dictionary<int, ProcRow> table = new Dictionary<int, ProcRow>();
            foreach (ProcRow r in rows)
                table[r.Pid] = r;
            return table;
        }

        private bool Escalable(ProcRow restarter)
        {
            return restarter != null && Tree && SpareReason(restarter) == null;
        }

        private bool Watching
        {
            get { return true; }  // the rematch always exists on Windows (the selection is matched again)
        }

        /// <summary>Add descendants (tree) and drop spared, duplicate and handled entries; supervisors first.</summary>
        public List<ProcRow> Expand(List<ProcRow> infos, List<ProcRow> table)
        {
            List<ProcRow> output = new List<ProcRow>();
            foreach (ProcRow info in infos)
            {
                if (seen.Contains(info.Key))
                    continue;
                seen.Add(info.Key);
                string reason = SpareReason(info);
                if (reason != null)
                {
                    Spared.Add(new StopEntry { Proc = info, Outcome = "spared", Reason = reason });
                    continue;
                }
                output.Add(info);
            }
            if (Tree && output.Count > 0)
            {
                Dictionary<int, List<ProcRow>> kids = new Dictionary<int, List<ProcRow>>();
                foreach (ProcRow r in table)
                {
                    if (!kids.ContainsKey(r.Ppid))
                        kids[r.Ppid] = new List<ProcRow>();
                    kids[r.Ppid].Add(r);
                }
                Queue<ProcRow> queue = new Queue<ProcRow>(output);
                while (queue.Count > 0)
                {
                    ProcRow parent = queue.Dequeue();
                    List<ProcRow> children;
                    if (!kids.TryGetValue(parent.Pid, out children))
                        continue;
                    foreach (ProcRow child in children)
                    {
                        if (child.Pid == parent.Pid || child.CreateTime < parent.CreateTime || seen.Contains(child.Key))
                            continue;
                        seen.Add(child.Key);
                        ProcRow snap = child.As("child-of:" + parent.Pid);
                        string reason = SpareReason(snap);
                        if (reason != null)
                        {
                            Spared.Add(new StopEntry { Proc = snap, Outcome = "spared", Reason = reason });
                            continue;
                        }
                        output.Add(snap);
                        queue.Enqueue(snap);
                    }
                }
            }
            return output.OrderBy(i => i.MatchedBy != null && i.MatchedBy.StartsWith("supervisor") ? 0 : 1).ToList();
        }

        /// <summary>Check mode: what would be stopped (and spared), nothing signalled.</summary>
        public void Plan(List<ProcRow> infos)
        {
            foreach (ProcRow info in Expand(infos, host.Table()))
                Terminated.Add(new StopEntry { Proc = info, Signal = SignalName, Outcome = "would_stop" });
        }

        private static bool LooksLike(ProcRow candidate, List<ProcRow> stoppedRows)
        {
            return stoppedRows.Any(s => String.Equals(candidate.Name, s.Name, StringComparison.OrdinalIgnoreCase)
                && candidate.Cmdline.SequenceEqual(s.Cmdline));
        }

        private List<Respawned> Scan()
        {
            double started = host.Now();
            Dictionary<string, ProcRow> found = new Dictionary<string, ProcRow>();
            foreach (ProcRow info in host.Rematch())
            {
                if (!seen.Contains(info.Key) && SpareReason(info) == null)
                    found[info.Key] = info;
            }
            List<ProcRow> rows = host.Table();
            Dictionary<int, ProcRow> table = ByPid(rows);
            if (Tree)
            {
                foreach (ProcRow r in rows)
                {
                    if (!seen.Contains(r.Key) && !found.ContainsKey(r.Key) && SpareReason(r) == null && LooksLike(r, stopped))
                        found[r.Key] = r.As("look-alike");
                }
            }
            List<Respawned> output = new List<Respawned>();
            foreach (ProcRow info in found.Values)
            {
                List<ProcRow> chain = Lineage(info, table);
                ProcRow restarter = chain.FirstOrDefault(c => ancestors.Contains(c.Key));
                if (info.MatchedBy == "look-alike" && !Escalable(restarter))
                    continue;  // the same program started by someone else: not ours to stop
                if (restarter != null)
                {
                    List<string> targets = info.Targets;
                    info.MatchedBy = "respawned-by:" + restarter.Pid;
                    info.Targets = targets;
                }
                output.Add(new Respawned { Info = info, Chain = chain, Restarter = restarter });
            }
            scanCost = host.Now() - started;
            return output;
        }

        private List<StopTarget> WaitAll(List<StopTarget> targets, double seconds, Action watch)
        {
            double deadline = host.Now() + seconds;
            List<StopTarget> running = new List<StopTarget>(targets);
            while (true)
            {
                running.RemoveAll(host.HasExited);
                watch();
                if (running.Count == 0 || host.Now() >= deadline)
                    return running;
                host.Sleep(Poll);
            }
        }

        private List<Respawned> RunRound(List<ProcRow> infos)
        {
            Dictionary<int, ProcRow> table = ByPid(host.Table());
            foreach (ProcRow info in infos)  // their ancestors, read before anything dies: a restarter is among them
            {
                foreach (ProcRow a in Lineage(info, table))
                    ancestors.Add(a.Key);
            }
            List<KeyValuePair<StopTarget, ProcRow>> signalled = new List<KeyValuePair<StopTarget, ProcRow>>();
            bool asked = false;
            foreach (ProcRow info in infos)
            {
                StopTarget t = host.Open(info);
                if (t == null)
                    continue;
                if (t.Outcome == "survived")
                {
                    Survivors.Add(new StopEntry { Proc = info, Signal = SignalName, Outcome = "survived", Error = t.Error });
                    continue;
                }
                if (Kill)
                    host.Kill(t);
                else
                    asked = host.AskToClose(t) || asked;
                signalled.Add(new KeyValuePair<StopTarget, ProcRow>(t, info));
                if (info.MatchedBy == null || !(info.MatchedBy.StartsWith("child-of:") || info.MatchedBy.StartsWith("supervisor-of:")))
                    stopped.Add(info);  // a look-alike of a target is a respawn; of a child, maybe not
            }
            Dictionary<string, Respawned> respawns = new Dictionary<string, Respawned>();
            double nextScan = 0;
            Action<bool> watchNow = delegate (bool force)
            {
                // a scan reads the whole process table: space the scans by 4x their cost, at least 0.1 s
                if (!Watching || (!force && host.Now() < nextScan))
                    return;
                foreach (Respawned r in Scan())
                {
                    if (!respawns.ContainsKey(r.Info.Key))
                        respawns[r.Info.Key] = r;
                }
                nextScan = host.Now() + Math.Max(0.1, 4 * scanCost);
            };
            Action watch = delegate { watchNow(false); };
            List<StopTarget> targets = signalled.Select(s => s.Key).ToList();
            // One wait for all of them together; a close request nobody could receive (no window) is not waited for.
            double wait = Kill ? Math.Max(Grace, 2) : asked ? Grace : 0;
            List<StopTarget> running = WaitAll(targets, wait, watch);
            if (running.Count > 0 && !Kill && KillAfterGrace)
            {
                foreach (StopTarget t in running)
                    host.Kill(t);
                running = WaitAll(running, 5, watch);
            }
            foreach (KeyValuePair<StopTarget, ProcRow> s in signalled)
            {
                StopTarget t = s.Key;
                StopEntry entry = new StopEntry { Proc = s.Value, Signal = t.Signal ?? SignalName };
                if (running.Contains(t))
                {
                    entry.Outcome = "survived";
                    entry.Error = t.Error ?? (KillAfterGrace ? "still running after TerminateProcess"
                        : String.Format(System.Globalization.CultureInfo.InvariantCulture, "still running after {0} s (kill_after_grace is false)", Grace));
                    Survivors.Add(entry);
                }
                else
                {
                    entry.Outcome = t.Signal == "KILL" ? "killed" : "exited";
                    Terminated.Add(entry);
                }
                host.Close(t);
            }
            // The window starts when the last one is gone: a supervisor restarts only after its child died, and
            // may wait before it does (a script's Start-Sleep, a service's recovery delay). Not capped by grace.
            if (Watching && signalled.Count > 0)
            {
                double windowEnd = host.Now() + RespawnWindow;
                while (true)
                {
                    double remaining = windowEnd - host.Now();
                    if (remaining <= 0)
                        break;
                    host.Sleep(Math.Min(remaining, Math.Max(Poll, Math.Min(0.1, nextScan - host.Now()))));
                    watch();
                }
                watchNow(true);
            }
            return respawns.Values.ToList();
        }

        /// <summary>Stop infos (the matches) in rounds; fills Terminated, Survivors and Spared.</summary>
        public void Run(List<ProcRow> infos)
        {
            List<ProcRow> pending = Expand(infos, host.Table());
            Dictionary<string, Respawned> cameBack = new Dictionary<string, Respawned>();
            while (pending.Count > 0 && Rounds < MaxRounds)
            {
                Rounds++;
                List<ProcRow> next = new List<ProcRow>();
                foreach (Respawned item in RunRound(pending))
                {
                    cameBack[item.Info.Key] = item;
                    ProcRow restarter = item.Restarter;
                    if (Escalable(restarter) && !escalated.Contains(restarter.Pid))
                    {
                        escalated.Add(restarter.Pid);
                        next.Add(restarter.As("supervisor-of:" + item.Info.Pid));
                    }
                    next.Add(item.Info);
                }
                pending = Expand(next, host.Table());
            }
            if (Rounds > 0 && Watching)
            {
                // the final re-match: whatever runs now, after the last round's window, came back
                foreach (Respawned item in Scan())
                {
                    if (!cameBack.ContainsKey(item.Info.Key))
                        cameBack[item.Info.Key] = item;
                    pending.Add(item.Info);
                }
            }
            Dictionary<int, ProcRow> now = ByPid(host.Table());
            HashSet<string> reported = new HashSet<string>();
            foreach (ProcRow info in pending)
            {
                ProcRow live;
                if (reported.Contains(info.Key) || !now.TryGetValue(info.Pid, out live) || live.Key != info.Key)
                    continue;
                reported.Add(info.Key);
                Respawned item;
                cameBack.TryGetValue(info.Key, out item);
                Survivors.Add(RespawnedEntry(info, item, now));
            }
        }

        private static string DescribeChain(IEnumerable<ProcRow> chain)
        {
            string text = String.Join(" < ", chain.Select(p => String.Format("{0} (pid {1})", p.Name, p.Pid)).ToArray());
            return text == "" ? "none" : text;
        }

        private StopEntry RespawnedEntry(ProcRow info, Respawned item, Dictionary<int, ProcRow> table)
        {
            List<ProcRow> chain = item != null ? item.Chain : Lineage(info, table);
            ProcRow restarter = item != null ? item.Restarter : null;
            string by;
            if (restarter == null)
                by = "its parent " + DescribeChain(chain.Take(1));
            else if (!Tree)
                by = DescribeChain(new ProcRow[] { restarter }) + " (not stopped: tree is false)";
            else if (escalated.Contains(restarter.Pid) || Escalable(restarter))
                by = DescribeChain(new ProcRow[] { restarter }) + ", which kept restarting it";
            else
                by = DescribeChain(new ProcRow[] { restarter }) + ", a Windows system process or an ancestor of this module, never stopped by reap: remove what starts it (residue.purge.autostart)";
            return new StopEntry
            {
                Proc = info,
                Signal = SignalName,
                Outcome = "respawned",
                Error = String.Format("came back after {0} round(s) (parent chain: {1}), started again by {2}", Rounds, DescribeChain(chain), by),
                Parents = chain,
                RestartedBy = restarter,
                Respawn = true,
            };
        }
    }

    /// <summary>IProcessHost on Windows: the process table and the selection's matches come from the module's
    /// PowerShell (Win32_Process, Test-ProcessMatch, the Restart Manager), the handles from WinProcs.</summary>
    public class WindowsProcessHost : IProcessHost
    {
        public Func<List<ProcRow>> TableSource;
        public Func<List<ProcRow>> RematchSource;
        public Action<ProcRow> BeforeSignal;  // read what is wanted of it while it still runs (its owner)

        public List<ProcRow> Table()
        {
            return TableSource();
        }

        public List<ProcRow> Rematch()
        {
            return RematchSource();
        }

        public StopTarget Open(ProcRow p)
        {
            StopTarget t = new StopTarget();
            t.Pid = p.Pid;
            t.CreateTime = p.CreateTime;
            if (BeforeSignal != null)
                BeforeSignal(p);
            if (WinProcs.Open(t))
                return t;
            return t.Outcome == "survived" ? t : null;
        }

        public bool AskToClose(StopTarget t)
        {
            return WinProcs.AskToClose(t);
        }

        public void Kill(StopTarget t)
        {
            WinProcs.Kill(t);
        }

        public bool HasExited(StopTarget t)
        {
            return WinProcs.HasExited(t);
        }

        public void Close(StopTarget t)
        {
            WinProcs.Close(t);
        }

        public double Now()
        {
            return (DateTime.UtcNow - new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc)).TotalSeconds;
        }

        public void Sleep(double seconds)
        {
            if (seconds > 0)
                Thread.Sleep(TimeSpan.FromSeconds(seconds));
        }
    }
}
