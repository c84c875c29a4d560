// Copyright: residue.purge contributors
// GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
//
// Which processes hold files open or mapped, from the Windows Restart Manager (what Explorer's "file in use"
// dialog asks). A holder is identified by its pid and its start time (RM_UNIQUE_PROCESS), so a pid reused by
// another process is never taken for it. A memory-mapped .safetensors file cannot be deleted while mapped:
// the modules ask first and hold the residue back instead of deleting half of it.
using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.Runtime.InteropServices;
using System.Text;

//TypeAccelerator -Name ResiduePurge.RestartManager -TypeName RestartManager
//TypeAccelerator -Name ResiduePurge.FileHolder -TypeName FileHolder

namespace ansible_collections.residue.purge.plugins.module_utils._RestartManager
{
    public class FileHolder
    {
        public int Pid;
        public double StartTime;  // epoch seconds, the process creation time
        public string Name;
        public string Service;  // short service name when the holder is a service, else null
        public int Type;  // RM_APP_TYPE

        public string Describe()
        {
            return String.Format("process {0} ({1}{2})", Pid, Name, String.IsNullOrEmpty(Service) ? "" : ", service " + Service);
        }
    }

    public static class RestartManager
    {
        private const int ERROR_MORE_DATA = 234;
        private const int CCH_RM_MAX_APP_NAME = 255;
        private const int CCH_RM_MAX_SVC_NAME = 63;
        private const int CCH_RM_SESSION_KEY = 32;  // chars of a session key GUID string, without the terminator
        private const int FilesPerCall = 512;

        [StructLayout(LayoutKind.Sequential)]
        private struct FILETIME
        {
            public uint Low;
            public uint High;
        }

        [StructLayout(LayoutKind.Sequential)]
        private struct RM_UNIQUE_PROCESS
        {
            public int dwProcessId;
            public FILETIME ProcessStartTime;
        }

        [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
        private struct RM_PROCESS_INFO
        {
            public RM_UNIQUE_PROCESS Process;
            [MarshalAs(UnmanagedType.ByValTStr, SizeConst = CCH_RM_MAX_APP_NAME + 1)] public string strAppName;
            [MarshalAs(UnmanagedType.ByValTStr, SizeConst = CCH_RM_MAX_SVC_NAME + 1)] public string strServiceShortName;
            public int ApplicationType;
            public uint AppStatus;
            public uint TSSessionId;
            [MarshalAs(UnmanagedType.Bool)] public bool bRestartable;
        }

        [DllImport("rstrtmgr.dll", CharSet = CharSet.Unicode)]
        private static extern int RmStartSession(out uint pSessionHandle, int dwSessionFlags, StringBuilder strSessionKey);

        [DllImport("rstrtmgr.dll")]
        private static extern int RmEndSession(uint pSessionHandle);

        [DllImport("rstrtmgr.dll", CharSet = CharSet.Unicode)]
        private static extern int RmRegisterResources(uint pSessionHandle, uint nFiles, string[] rgsFilenames,
            uint nApplications, RM_UNIQUE_PROCESS[] rgApplications, uint nServices, string[] rgsServiceNames);

        [DllImport("rstrtmgr.dll")]
        private static extern int RmGetList(uint dwSessionHandle, out uint pnProcInfoNeeded, ref uint pnProcInfo,
            [In, Out] RM_PROCESS_INFO[] rgAffectedApps, ref uint lpdwRebootReasons);

        private static double Epoch(FILETIME ft)
        {
            long ticks = ((long)ft.High << 32) | ft.Low;
            return (ticks - 116444736000000000L) / 10000000.0;
        }

        /// <summary>The processes holding any of the files (each once), asked in batches of FilesPerCall.</summary>
        public static List<FileHolder> Holders(IList<string> files)
        {
            Dictionary<string, FileHolder> found = new Dictionary<string, FileHolder>();
            for (int start = 0; start < files.Count; start += FilesPerCall)
            {
                int count = Math.Min(FilesPerCall, files.Count - start);
                string[] batch = new string[count];
                for (int i = 0; i < count; i++)
                    batch[i] = files[start + i];
                foreach (FileHolder h in HoldersOf(batch))
                    found[h.Pid + "@" + h.StartTime.ToString("R")] = h;
            }
            return new List<FileHolder>(found.Values);
        }

        private static List<FileHolder> HoldersOf(string[] files)
        {
            uint session;
            StringBuilder key = new StringBuilder(CCH_RM_SESSION_KEY + 1);
            int rc = RmStartSession(out session, 0, key);
            if (rc != 0)
                throw new Win32Exception(rc, "RmStartSession");
            try
            {
                rc = RmRegisterResources(session, (uint)files.Length, files, 0, null, 0, null);
                if (rc != 0)
                    throw new Win32Exception(rc, "RmRegisterResources");
                uint needed;
                uint count = 0;
                uint reasons = 0;
                RM_PROCESS_INFO[] infos = null;
                // The list can grow between the two calls: ask again until it fits.
                while (true)
                {
                    rc = RmGetList(session, out needed, ref count, infos, ref reasons);
                    if (rc == ERROR_MORE_DATA)
                    {
                        count = needed + 4;
                        infos = new RM_PROCESS_INFO[count];
                        continue;
                    }
                    if (rc != 0)
                        throw new Win32Exception(rc, "RmGetList");
                    break;
                }
                List<FileHolder> result = new List<FileHolder>();
                for (int i = 0; infos != null && i < count; i++)
                {
                    FileHolder h = new FileHolder();
                    h.Pid = infos[i].Process.dwProcessId;
                    h.StartTime = Epoch(infos[i].Process.ProcessStartTime);
                    h.Name = infos[i].strAppName;
                    h.Service = infos[i].strServiceShortName;
                    h.Type = infos[i].ApplicationType;
                    result.Add(h);
                }
                return result;
            }
            finally
            {
                RmEndSession(session);
            }
        }
    }
}
