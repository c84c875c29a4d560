// Copyright: residue.purge contributors
// GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
//
// Sizing and removing residue trees on Windows without ever following a junction, symbolic link or other
// reparse point (the link itself is removed, never its target), with long paths (\\?\) and read-only files.
// Removal is handle-based: each directory is held open without FILE_SHARE_DELETE while its entries go, so it
// cannot be renamed or swapped for a junction meanwhile, and each entry is opened with
// FILE_FLAG_OPEN_REPARSE_POINT, inspected through that handle and deleted through the same handle.
using Microsoft.Win32.SafeHandles;
using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

//TypeAccelerator -Name ResiduePurge.WinFiles -TypeName WinFiles
//TypeAccelerator -Name ResiduePurge.TreeUsage -TypeName TreeUsage
//TypeAccelerator -Name ResiduePurge.RemoveOptions -TypeName RemoveOptions
//TypeAccelerator -Name ResiduePurge.RemovalResult -TypeName RemovalResult
//TypeAccelerator -Name ResiduePurge.EntryVisitor -TypeName EntryVisitor

namespace ansible_collections.residue.purge.plugins.module_utils._WinFiles
{
    internal static class Native
    {
        public const uint FILE_ATTRIBUTE_READONLY = 0x1;
        public const uint FILE_ATTRIBUTE_DIRECTORY = 0x10;
        public const uint FILE_ATTRIBUTE_REPARSE_POINT = 0x400;
        public const uint DELETE = 0x10000;
        public const uint SYNCHRONIZE = 0x100000;
        public const uint FILE_LIST_DIRECTORY = 0x1;
        public const uint FILE_READ_ATTRIBUTES = 0x80;
        public const uint FILE_WRITE_ATTRIBUTES = 0x100;
        public const uint FILE_SHARE_READ = 0x1;
        public const uint FILE_SHARE_WRITE = 0x2;
        public const uint FILE_SHARE_DELETE = 0x4;
        public const uint OPEN_EXISTING = 3;
        public const uint FILE_FLAG_BACKUP_SEMANTICS = 0x02000000;
        public const uint FILE_FLAG_OPEN_REPARSE_POINT = 0x00200000;
        public const uint FILE_FLAG_SEQUENTIAL_SCAN = 0x08000000;
        public const uint GENERIC_READ = 0x80000000;
        public const int FileBasicInfo = 0;
        public const int FileStandardInfo = 1;
        public const int FileDispositionInfo = 4;
        public const int ERROR_NO_MORE_FILES = 18;
        public const int ERROR_FILE_NOT_FOUND = 2;
        public const int ERROR_PATH_NOT_FOUND = 3;

        [StructLayout(LayoutKind.Sequential)]
        public struct FILETIME
        {
            public uint Low;
            public uint High;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct BY_HANDLE_FILE_INFORMATION
        {
            public uint FileAttributes;
            public FILETIME CreationTime;
            public FILETIME LastAccessTime;
            public FILETIME LastWriteTime;
            public uint VolumeSerialNumber;
            public uint FileSizeHigh;
            public uint FileSizeLow;
            public uint NumberOfLinks;
            public uint FileIndexHigh;
            public uint FileIndexLow;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct FILE_STANDARD_INFO
        {
            public long AllocationSize;
            public long EndOfFile;
            public uint NumberOfLinks;
            [MarshalAs(UnmanagedType.U1)] public bool DeletePending;
            [MarshalAs(UnmanagedType.U1)] public bool Directory;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct FILE_BASIC_INFO
        {
            public long CreationTime;
            public long LastAccessTime;
            public long LastWriteTime;
            public long ChangeTime;
            public uint FileAttributes;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct FILE_DISPOSITION_INFO
        {
            [MarshalAs(UnmanagedType.U1)] public bool DeleteFile;
        }

        [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
        public struct WIN32_FIND_DATAW
        {
            public uint FileAttributes;
            public FILETIME CreationTime;
            public FILETIME LastAccessTime;
            public FILETIME LastWriteTime;
            public uint FileSizeHigh;
            public uint FileSizeLow;
            public uint Reserved0;
            public uint Reserved1;
            [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 260)] public string FileName;
            [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 14)] public string AlternateFileName;
        }

        [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
        public static extern SafeFileHandle CreateFileW(string name, uint access, uint share, IntPtr security,
            uint disposition, uint flags, IntPtr template);

        [DllImport("kernel32.dll", SetLastError = true)]
        public static extern bool GetFileInformationByHandle(SafeFileHandle handle, out BY_HANDLE_FILE_INFORMATION info);

        [DllImport("kernel32.dll", SetLastError = true)]
        public static extern bool GetFileInformationByHandleEx(SafeFileHandle handle, int infoClass,
            out FILE_STANDARD_INFO info, uint size);

        [DllImport("kernel32.dll", SetLastError = true)]
        public static extern bool GetFileInformationByHandleEx(SafeFileHandle handle, int infoClass,
            out FILE_BASIC_INFO info, uint size);

        [DllImport("kernel32.dll", SetLastError = true)]
        public static extern bool SetFileInformationByHandle(SafeFileHandle handle, int infoClass,
            ref FILE_DISPOSITION_INFO info, uint size);

        [DllImport("kernel32.dll", SetLastError = true)]
        public static extern bool SetFileInformationByHandle(SafeFileHandle handle, int infoClass,
            ref FILE_BASIC_INFO info, uint size);

        [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
        public static extern uint GetFinalPathNameByHandleW(SafeFileHandle handle, StringBuilder path, uint size, uint flags);

        [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
        public static extern IntPtr FindFirstFileExW(string name, int infoLevel, out WIN32_FIND_DATAW data,
            int searchOp, IntPtr filter, int flags);

        [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
        public static extern bool FindNextFileW(IntPtr find, out WIN32_FIND_DATAW data);

        [DllImport("kernel32.dll", SetLastError = true)]
        public static extern bool FindClose(IntPtr find);

        [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
        public static extern bool GetVolumePathNameW(string path, StringBuilder volume, uint size);

        [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
        public static extern bool GetDiskFreeSpaceExW(string path, out ulong freeToCaller, out ulong total, out ulong free);

        [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
        public static extern bool GetDiskFreeSpaceW(string root, out uint sectorsPerCluster, out uint bytesPerSector,
            out uint freeClusters, out uint totalClusters);

        public static double Epoch(FILETIME ft)
        {
            long ticks = ((long)ft.High << 32) | ft.Low;
            return ticks == 0 ? 0.0 : (ticks - 116444736000000000L) / 10000000.0;
        }

        public static double Epoch(long ticks)
        {
            return ticks == 0 ? 0.0 : (ticks - 116444736000000000L) / 10000000.0;
        }
    }

    public class TreeUsage
    {
        public long Bytes;
        public long Files;
        public long Dirs;
        public double NewestMtime;
        public double LastAccess;
        public List<string> Problems = new List<string>();
        public List<string> FilePaths;  // only when asked for (Restart Manager registration)
    }

    /// <summary>Called by a dry run for every entry it would remove, with the handle it was inspected through
    /// (opened without following it): what a backup archives, so it makes the same decisions as the removal.
    /// size: the file's length (0 for a directory or a reparse point); mtime: epoch seconds.</summary>
    public delegate void EntryVisitor(string path, bool directory, bool reparse, SafeFileHandle handle, long size, double mtime);

    public class RemoveOptions
    {
        public double Cutoff = -1;  // epoch seconds; < 0: no age limit
        public string TimeField = "atime";  // atime | mtime | ctime (creation time on Windows)
        public List<string> Keep = new List<string>();
        public bool DryRun;
        public EntryVisitor OnEntry;  // dry runs only
    }

    public class RemovalResult
    {
        public long Bytes;
        public long Files;
        public long Dirs;
        public long Kept;
        public bool Whole;
        public List<string[]> Failures = new List<string[]>();
        public List<string> Problems = new List<string>();
        internal HashSet<string> SeenLinks = new HashSet<string>();
    }

    public static class WinFiles
    {
        public const int MaxListedFailures = 200;

        /// <summary>\\?\ form of an absolute path, so paths longer than MAX_PATH work.</summary>
        public static string LongPath(string path)
        {
            if (path.StartsWith(@"\\?\"))
                return path;
            if (path.StartsWith(@"\\"))
                return @"\\?\UNC\" + path.Substring(2);
            return @"\\?\" + path;
        }

        public static string DisplayPath(string path)
        {
            if (path.StartsWith(@"\\?\UNC\"))
                return @"\\" + path.Substring(8);
            if (path.StartsWith(@"\\?\"))
                return path.Substring(4);
            return path;
        }

        private static string ErrorText(int code)
        {
            return new Win32Exception(code).Message;
        }

        private static IEnumerable<Native.WIN32_FIND_DATAW> List(string dir, List<string> problems)
        {
            Native.WIN32_FIND_DATAW data;
            // FindExInfoBasic (1), FIND_FIRST_EX_LARGE_FETCH (2)
            IntPtr find = Native.FindFirstFileExW(LongPath(dir) + @"\*", 1, out data, 0, IntPtr.Zero, 2);
            if (find == new IntPtr(-1))
            {
                int err = Marshal.GetLastWin32Error();
                if (err != Native.ERROR_FILE_NOT_FOUND && err != Native.ERROR_NO_MORE_FILES)
                    problems.Add(String.Format("{0}: {1}", dir, ErrorText(err)));
                yield break;
            }
            try
            {
                do
                {
                    if (data.FileName != "." && data.FileName != "..")
                        yield return data;
                } while (Native.FindNextFileW(find, out data));
            }
            finally
            {
                Native.FindClose(find);
            }
        }

        public static long ClusterSize(string path)
        {
            uint spc, bps, freeC, totalC;
            string volume = VolumeOf(path);
            if (volume != null && Native.GetDiskFreeSpaceW(volume, out spc, out bps, out freeC, out totalC))
                return (long)spc * bps;
            return 4096;
        }

        private static long Allocated(long size, long cluster)
        {
            return size == 0 ? 0 : ((size + cluster - 1) / cluster) * cluster;
        }

        /// <summary>Disk usage of a tree (sizes rounded up to the cluster size), never entering a reparse point.</summary>
        public static TreeUsage Measure(string path, bool collectFiles)
        {
            TreeUsage usage = new TreeUsage();
            if (collectFiles)
                usage.FilePaths = new List<string>();
            long cluster = ClusterSize(path);
            SafeFileHandle root = Native.CreateFileW(LongPath(path), Native.FILE_READ_ATTRIBUTES,
                Native.FILE_SHARE_READ | Native.FILE_SHARE_WRITE | Native.FILE_SHARE_DELETE, IntPtr.Zero,
                Native.OPEN_EXISTING, Native.FILE_FLAG_BACKUP_SEMANTICS | Native.FILE_FLAG_OPEN_REPARSE_POINT, IntPtr.Zero);
            if (root.IsInvalid)
            {
                usage.Problems.Add(String.Format("{0}: {1}", path, ErrorText(Marshal.GetLastWin32Error())));
                return usage;
            }
            Native.BY_HANDLE_FILE_INFORMATION info;
            using (root)
            {
                if (!Native.GetFileInformationByHandle(root, out info))
                {
                    usage.Problems.Add(String.Format("{0}: {1}", path, ErrorText(Marshal.GetLastWin32Error())));
                    return usage;
                }
            }
            Note(usage, info.LastWriteTime, info.LastAccessTime);
            if ((info.FileAttributes & Native.FILE_ATTRIBUTE_DIRECTORY) == 0 || (info.FileAttributes & Native.FILE_ATTRIBUTE_REPARSE_POINT) != 0)
            {
                usage.Files = 1;
                if ((info.FileAttributes & Native.FILE_ATTRIBUTE_REPARSE_POINT) == 0)
                    usage.Bytes = Allocated(((long)info.FileSizeHigh << 32) | info.FileSizeLow, cluster);
                if (collectFiles)
                    usage.FilePaths.Add(path);
                return usage;
            }
            Stack<string> pending = new Stack<string>();
            pending.Push(path);
            while (pending.Count > 0)
            {
                string dir = pending.Pop();
                usage.Dirs++;
                foreach (Native.WIN32_FIND_DATAW entry in List(dir, usage.Problems))
                {
                    string child = dir.TrimEnd('\\') + @"\" + entry.FileName;
                    Note(usage, entry.LastWriteTime, entry.LastAccessTime);
                    bool reparse = (entry.FileAttributes & Native.FILE_ATTRIBUTE_REPARSE_POINT) != 0;
                    if ((entry.FileAttributes & Native.FILE_ATTRIBUTE_DIRECTORY) != 0 && !reparse)
                    {
                        pending.Push(child);
                        continue;
                    }
                    usage.Files++;
                    if (!reparse)
                        usage.Bytes += Allocated(((long)entry.FileSizeHigh << 32) | entry.FileSizeLow, cluster);
                    if (collectFiles && !reparse)
                        usage.FilePaths.Add(child);
                }
            }
            return usage;
        }

        private static void Note(TreeUsage usage, Native.FILETIME mtime, Native.FILETIME atime)
        {
            usage.NewestMtime = Math.Max(usage.NewestMtime, Native.Epoch(mtime));
            usage.LastAccess = Math.Max(usage.LastAccess, Native.Epoch(atime));
        }

        /// <summary>The final path of an entry opened without following it (\\?\ prefix removed).</summary>
        public static string FinalPath(SafeFileHandle handle)
        {
            StringBuilder sb = new StringBuilder(1024);
            uint n = Native.GetFinalPathNameByHandleW(handle, sb, (uint)sb.Capacity, 0);
            if (n > sb.Capacity)
            {
                sb = new StringBuilder((int)n + 1);
                n = Native.GetFinalPathNameByHandleW(handle, sb, (uint)sb.Capacity, 0);
            }
            return n == 0 ? null : DisplayPath(sb.ToString());
        }

        /// <summary>The real location of a path, following links (for a cache dir configured as a junction).</summary>
        public static string RealPath(string path)
        {
            using (SafeFileHandle h = Native.CreateFileW(LongPath(path), Native.FILE_READ_ATTRIBUTES,
                Native.FILE_SHARE_READ | Native.FILE_SHARE_WRITE | Native.FILE_SHARE_DELETE, IntPtr.Zero,
                Native.OPEN_EXISTING, Native.FILE_FLAG_BACKUP_SEMANTICS, IntPtr.Zero))
            {
                return h.IsInvalid ? null : FinalPath(h);
            }
        }

        private static SafeFileHandle OpenEntry(string path, bool directory)
        {
            // A directory is held without FILE_SHARE_DELETE: nobody can rename it or swap it for a junction while
            // its entries are removed (and no ancestor can be renamed while something below it is open).
            uint share = directory ? (Native.FILE_SHARE_READ | Native.FILE_SHARE_WRITE)
                                   : (Native.FILE_SHARE_READ | Native.FILE_SHARE_WRITE | Native.FILE_SHARE_DELETE);
            uint access = Native.DELETE | Native.FILE_READ_ATTRIBUTES | Native.FILE_WRITE_ATTRIBUTES | Native.SYNCHRONIZE
                          | (directory ? Native.FILE_LIST_DIRECTORY : 0);
            return Native.CreateFileW(LongPath(path), access, share, IntPtr.Zero, Native.OPEN_EXISTING,
                Native.FILE_FLAG_BACKUP_SEMANTICS | Native.FILE_FLAG_OPEN_REPARSE_POINT, IntPtr.Zero);
        }

        private static void Fail(RemovalResult result, string path, string error)
        {
            result.Failures.Add(new string[] { path, error });
        }

        private static bool DeleteByHandle(SafeFileHandle handle, uint attributes, string path, RemovalResult result)
        {
            if ((attributes & Native.FILE_ATTRIBUTE_READONLY) != 0)
            {
                Native.FILE_BASIC_INFO basic = new Native.FILE_BASIC_INFO();
                basic.FileAttributes = attributes & ~Native.FILE_ATTRIBUTE_READONLY;
                if (basic.FileAttributes == 0)
                    basic.FileAttributes = 0x80;  // FILE_ATTRIBUTE_NORMAL
                if (!Native.SetFileInformationByHandle(handle, Native.FileBasicInfo, ref basic, (uint)Marshal.SizeOf(basic)))
                {
                    Fail(result, path, "clearing the read-only attribute: " + ErrorText(Marshal.GetLastWin32Error()));
                    return false;
                }
            }
            Native.FILE_DISPOSITION_INFO disposition = new Native.FILE_DISPOSITION_INFO();
            disposition.DeleteFile = true;
            if (!Native.SetFileInformationByHandle(handle, Native.FileDispositionInfo, ref disposition, (uint)Marshal.SizeOf(disposition)))
            {
                Fail(result, path, ErrorText(Marshal.GetLastWin32Error()));
                return false;
            }
            return true;
        }

        private static double TimeOf(Native.BY_HANDLE_FILE_INFORMATION info, string field)
        {
            if (field == "mtime")
                return Native.Epoch(info.LastWriteTime);
            if (field == "ctime")
                return Native.Epoch(info.CreationTime);
            return Native.Epoch(info.LastAccessTime);
        }

        private static bool IsKept(string name, string path, RemoveOptions options)
        {
            foreach (string glob in options.Keep)
            {
                bool full = glob.Contains("/") || glob.Contains("\\");
                string g = glob.Replace('/', '\\');
                if (GlobMatch(full ? path : name, g))
                    return true;
            }
            return false;
        }

        private static bool GlobMatch(string text, string glob)
        {
            string pattern = "^" + Regex.Escape(glob).Replace(@"\*", ".*").Replace(@"\?", ".") + "$";
            return Regex.IsMatch(text, pattern, RegexOptions.IgnoreCase);
        }

        /// <summary>Remove a residue path. Returns what went (or would go, with DryRun) and every failure.</summary>
        public static RemovalResult RemoveTree(string path, string expectedFinalPath, RemoveOptions options)
        {
            RemovalResult result = new RemovalResult();
            SafeFileHandle root = OpenEntry(path, true);
            if (root.IsInvalid)
            {
                int err = Marshal.GetLastWin32Error();
                if (err != Native.ERROR_FILE_NOT_FOUND && err != Native.ERROR_PATH_NOT_FOUND)
                    Fail(result, path, ErrorText(err));
                return result;
            }
            using (root)
            {
                Native.BY_HANDLE_FILE_INFORMATION info;
                if (!Native.GetFileInformationByHandle(root, out info))
                {
                    Fail(result, path, ErrorText(Marshal.GetLastWin32Error()));
                    return result;
                }
                bool reparse = (info.FileAttributes & Native.FILE_ATTRIBUTE_REPARSE_POINT) != 0;
                // Compared by identity, not spelling: a path reached through a junction or symlink in one of its
                // parents (a user pointing their AppData elsewhere) is not the residue that was resolved.
                string final = FinalPath(root);
                if (expectedFinalPath != null && final != null && !reparse
                    && !String.Equals(final.TrimEnd('\\'), expectedFinalPath.TrimEnd('\\'), StringComparison.OrdinalIgnoreCase))
                {
                    Fail(result, path, String.Format("resolves to {0} through a junction or link in its parents: refused", final));
                    return result;
                }
                if ((info.FileAttributes & Native.FILE_ATTRIBUTE_DIRECTORY) == 0 || reparse)
                {
                    bool old = options.Cutoff < 0 || TimeOf(info, options.TimeField) < options.Cutoff;
                    if (!old || IsKept(Path.GetFileName(path), path, options))
                    {
                        result.Kept += old ? 1 : 0;
                        return result;
                    }
                    if (options.DryRun)
                        Visit(options, path, false, reparse, root, info);
                    if (options.DryRun || DeleteByHandle(root, info.FileAttributes, path, result))
                    {
                        result.Files++;
                        result.Whole = true;
                        result.Bytes += reparse ? 0 : AllocatedOf(root, info, result);
                    }
                    return result;
                }
                bool emptied = RemoveChildren(path, options, result, 0);
                bool oldDir = options.Cutoff < 0 || TimeOf(info, options.TimeField) < options.Cutoff;
                // with an age limit the residue dir goes when that emptied it, or when it is itself that old
                if (emptied && (options.Cutoff < 0 || oldDir || result.Files + result.Dirs > 0))
                {
                    if (options.DryRun)
                        Visit(options, path, true, false, root, info);
                    if (options.DryRun || DeleteByHandle(root, info.FileAttributes, path, result))
                    {
                        result.Dirs++;
                        result.Whole = true;
                    }
                }
            }
            return result;
        }

        private static void Visit(RemoveOptions options, string path, bool directory, bool reparse, SafeFileHandle handle,
                                  Native.BY_HANDLE_FILE_INFORMATION info)
        {
            if (options.OnEntry == null)
                return;
            long size = directory || reparse ? 0 : ((long)info.FileSizeHigh << 32) | info.FileSizeLow;
            options.OnEntry(path, directory, reparse, handle, size, Native.Epoch(info.LastWriteTime));
        }

        /// <summary>The content of an entry a dry run visited, for reading: opened again by name without
        /// following a reparse point and without sharing write access (an open writer makes it fail), then
        /// compared by identity (volume serial number and file index) with the visited handle, so a file swapped
        /// in meanwhile is refused rather than archived. FILE_FLAG_BACKUP_SEMANTICS as the removal's own opens (the
        /// backup privilege, where enabled, reads what the ACL would refuse).</summary>
        public static FileStream OpenVisited(string path, SafeFileHandle visited)
        {
            Native.BY_HANDLE_FILE_INFORMATION want, got;
            if (!Native.GetFileInformationByHandle(visited, out want))
                throw new IOException(String.Format("{0}: {1}", path, ErrorText(Marshal.GetLastWin32Error())));
            // FILE_SHARE_DELETE: the visited handle holds DELETE access; no FILE_SHARE_WRITE: no writer meanwhile
            SafeFileHandle h = Native.CreateFileW(LongPath(path), Native.GENERIC_READ,
                Native.FILE_SHARE_READ | Native.FILE_SHARE_DELETE, IntPtr.Zero,
                Native.OPEN_EXISTING, Native.FILE_FLAG_BACKUP_SEMANTICS | Native.FILE_FLAG_OPEN_REPARSE_POINT | Native.FILE_FLAG_SEQUENTIAL_SCAN,
                IntPtr.Zero);
            if (h.IsInvalid)
                throw new IOException(String.Format("{0}: {1}", path, ErrorText(Marshal.GetLastWin32Error())));
            if (!Native.GetFileInformationByHandle(h, out got) || got.VolumeSerialNumber != want.VolumeSerialNumber
                || got.FileIndexHigh != want.FileIndexHigh || got.FileIndexLow != want.FileIndexLow
                || (got.FileAttributes & Native.FILE_ATTRIBUTE_REPARSE_POINT) != 0)
            {
                h.Dispose();
                throw new IOException(String.Format("{0} was replaced while it was being archived", path));
            }
            return new FileStream(h, FileAccess.Read, 1 << 16);
        }

        private static long AllocatedOf(SafeFileHandle handle, Native.BY_HANDLE_FILE_INFORMATION info, RemovalResult result)
        {
            if (info.NumberOfLinks > 1)
            {
                // another name keeps the data: count it once, when its last name goes
                string id = info.VolumeSerialNumber + ":" + info.FileIndexHigh + ":" + info.FileIndexLow;
                if (!result.SeenLinks.Add(id))
                    return 0;
            }
            Native.FILE_STANDARD_INFO std;
            if (Native.GetFileInformationByHandleEx(handle, Native.FileStandardInfo, out std, (uint)Marshal.SizeOf(typeof(Native.FILE_STANDARD_INFO))))
                return std.AllocationSize;
            return ((long)info.FileSizeHigh << 32) | info.FileSizeLow;
        }

        // True when everything in dir went (so dir itself may go).
        private static bool RemoveChildren(string dir, RemoveOptions options, RemovalResult result, int depth)
        {
            bool all = true;
            List<string> names = new List<string>();
            foreach (Native.WIN32_FIND_DATAW entry in List(dir, result.Problems))
                names.Add(entry.FileName);
            foreach (string name in names)
            {
                string child = dir.TrimEnd('\\') + @"\" + name;
                if (IsKept(name, child, options))
                {
                    result.Kept++;
                    all = false;
                    continue;
                }
                SafeFileHandle h = OpenEntry(child, true);
                if (h.IsInvalid)
                {
                    // a file opened by another process without FILE_SHARE_READ/WRITE: try as a plain file
                    h = OpenEntry(child, false);
                }
                if (h.IsInvalid)
                {
                    int err = Marshal.GetLastWin32Error();
                    if (err == Native.ERROR_FILE_NOT_FOUND || err == Native.ERROR_PATH_NOT_FOUND)
                        continue;  // gone meanwhile
                    Fail(result, child, ErrorText(err));
                    all = false;
                    continue;
                }
                using (h)
                {
                    Native.BY_HANDLE_FILE_INFORMATION info;
                    if (!Native.GetFileInformationByHandle(h, out info))
                    {
                        Fail(result, child, ErrorText(Marshal.GetLastWin32Error()));
                        all = false;
                        continue;
                    }
                    bool reparse = (info.FileAttributes & Native.FILE_ATTRIBUTE_REPARSE_POINT) != 0;
                    bool isDir = (info.FileAttributes & Native.FILE_ATTRIBUTE_DIRECTORY) != 0 && !reparse;
                    bool old = options.Cutoff < 0 || TimeOf(info, options.TimeField) < options.Cutoff;
                    if (isDir)
                    {
                        long before = result.Files;
                        bool emptied = RemoveChildren(child, options, result, depth + 1);
                        // with an age limit an emptied directory goes if it lost entries or is itself that old
                        if (emptied && (options.Cutoff < 0 || old || result.Files > before))
                        {
                            if (options.DryRun)
                                Visit(options, child, true, false, h, info);
                            if (options.DryRun || DeleteByHandle(h, info.FileAttributes, child, result))
                                result.Dirs++;
                            else
                                all = false;
                        }
                        else
                        {
                            all = false;
                        }
                        continue;
                    }
                    if (!old)
                    {
                        all = false;
                        continue;
                    }
                    long bytes = reparse ? 0 : AllocatedOf(h, info, result);
                    if (options.DryRun)
                        Visit(options, child, false, reparse, h, info);
                    if (options.DryRun || DeleteByHandle(h, info.FileAttributes, child, result))
                    {
                        result.Files++;
                        result.Bytes += bytes;
                    }
                    else
                    {
                        all = false;
                    }
                }
            }
            return all;
        }

        public static string VolumeOf(string path)
        {
            StringBuilder sb = new StringBuilder(1024);
            if (Native.GetVolumePathNameW(path, sb, (uint)sb.Capacity))
                return sb.ToString();
            return null;
        }

        public static long FreeBytes(string volume)
        {
            ulong caller, total, free;
            if (volume != null && Native.GetDiskFreeSpaceExW(volume, out caller, out total, out free))
                return (long)caller;
            return -1;
        }
    }
}
