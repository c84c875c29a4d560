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
using System.Runtime.InteropServices;
using System.Threading;

//TypeAccelerator -Name ResiduePurge.WinProcs -TypeName WinProcs
//TypeAccelerator -Name ResiduePurge.StopTarget -TypeName StopTarget

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
}
