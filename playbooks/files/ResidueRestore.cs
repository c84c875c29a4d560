// Copyright: residue.purge contributors
// GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
//
// restore.yml on a Windows host: puts back what win_remove's backup (_WinBackup.cs: a zip and its manifest)
// archived. The archive is first read back and compared with its manifest member by member (ZipBackup.Verify:
// name, type, size, sha256 of the content; nothing more, nothing less); only then is anything written, each entry
// to the path its manifest line names, never through a junction, symbolic link or other reparse point on the way
// (such an entry is refused and named). Compiled on the host by restore_zip.ps1 together with _WinFiles.cs and
// _WinBackup.cs (Add-Type); run under Mono by tests/unit/plugins/module_utils/test_windows_restore.py.
using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Text;
using ansible_collections.residue.purge.plugins.module_utils._WinBackup;

namespace ResiduePurgeRestore
{
    public class RestoreResult
    {
        public long Entries;
        public List<string> Files = new List<string>();  // every entry written (files and directories)
        public List<string> Refused = new List<string>();  // "path: why"
    }

    public static class ZipRestore
    {
        /// <summary>Verify archive against manifest, then write each entry to destinationOf(its path) (the path itself
        /// on a host; a staging tree in the tests). dryRun: verify and check the destinations, write nothing.</summary>
        public static RestoreResult Restore(string archive, string manifest, Func<string, string> destinationOf, bool dryRun)
        {
            RestoreResult result = new RestoreResult();
            result.Entries = ZipBackup.Verify(archive, manifest);  // BackupException: nothing is written
            string[] lines = File.ReadAllLines(manifest, Encoding.ASCII);
            using (FileStream file = new FileStream(archive, FileMode.Open, FileAccess.Read, FileShare.Read))
            using (ZipArchive zip = new ZipArchive(file, ZipArchiveMode.Read, false, Encoding.UTF8))
            {
                IList<ZipArchiveEntry> entries = zip.Entries;
                for (int i = 0; i < lines.Length; i++)
                {
                    Dictionary<string, object> want = ManifestJson.ParseFlat(lines[i]);
                    string path = (string)want["path"];
                    string destination = destinationOf(path);
                    string why = ThroughReparsePoint(destination);
                    if (why != null)
                    {
                        result.Refused.Add(path + ": " + why + "; not restored");
                        continue;
                    }
                    if (dryRun)
                    {
                        result.Files.Add(path);
                        continue;
                    }
                    try
                    {
                        if ((string)want["type"] == "dir")
                        {
                            Directory.CreateDirectory(destination);
                        }
                        else
                        {
                            Directory.CreateDirectory(Path.GetDirectoryName(destination));
                            why = ThroughReparsePoint(destination);  // created just now: look again
                            if (why != null)
                            {
                                result.Refused.Add(path + ": " + why + "; not restored");
                                continue;
                            }
                            using (Stream source = entries[i].Open())
                            using (FileStream target = new FileStream(destination, FileMode.Create, FileAccess.Write, FileShare.None))
                                source.CopyTo(target);
                            File.SetLastWriteTimeUtc(destination, entries[i].LastWriteTime.UtcDateTime);
                        }
                        result.Files.Add(path);
                    }
                    catch (Exception e)
                    {
                        result.Refused.Add(path + ": " + e.Message + "; not restored");
                    }
                }
            }
            return result;
        }

        /// <summary>Why writing path would go through a junction, symbolic link or other reparse point (the path
        /// itself or any existing directory above it), or null.</summary>
        public static string ThroughReparsePoint(string path)
        {
            string current = Path.GetFullPath(path);
            while (!String.IsNullOrEmpty(current))
            {
                FileSystemInfo info = Directory.Exists(current) ? (FileSystemInfo)new DirectoryInfo(current) : new FileInfo(current);
                if (info.Exists && (info.Attributes & FileAttributes.ReparsePoint) != 0)
                    return current + " is a junction, symbolic link or other reparse point";
                string parent = Path.GetDirectoryName(current);
                if (parent == current)
                    break;
                current = parent;
            }
            return null;
        }
    }
}
