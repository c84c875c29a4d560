// Copyright: residue.purge contributors
// GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
//
// remove's backup on Windows: a zip archive (System.IO.Compression) and a manifest, written before anything is
// removed, read back and compared entry by entry with the manifest; any failure discards both and nothing is
// removed. The entries are those a dry run of the removal visits (WinFiles.RemoveTree with OnEntry), each read
// through a handle opened without following a reparse point and checked to be the entry the dry run inspected.
//
// The manifest is the POSIX backup's (_remove.BackupWriter): one JSON object per line, keys sorted, ASCII,
// {"path": the Windows path, "sha256": hex or null, "size": bytes, "type": "file" | "dir"}, in archive order.
// Differences from the POSIX tar: zip instead of tar.gz/tar.xz; member names are the path with its drive letter
// (C:\a\b -> C/a/b) or share (\\srv\share\a -> UNC/srv/share/a) as first components; junctions, symbolic links
// and other reparse points are not archived (they are removed themselves, never their target: a problem line says
// so); no owner, ACL, attribute or alternate data stream is kept; times are the zip's (2-second precision, local
// time, 1980-2107).
//
// ZipBackup and its Verify are plain .NET and run under Mono in the unit tests; WinBackup drives them from the
// Windows-only walk.
using Microsoft.Win32.SafeHandles;
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using ansible_collections.residue.purge.plugins.module_utils._WinFiles;
using ansible_collections.residue.purge.plugins.module_utils._WinActAs;

//AssemblyReference -Name System.IO.Compression.dll
//TypeAccelerator -Name ResiduePurge.ZipBackup -TypeName ZipBackup
//TypeAccelerator -Name ResiduePurge.WinBackup -TypeName WinBackup
//TypeAccelerator -Name ResiduePurge.BackupPlan -TypeName BackupPlan

namespace ansible_collections.residue.purge.plugins.module_utils._WinBackup
{
    public class BackupException : Exception
    {
        public BackupException(string message) : base(message) { }
    }

    /// <summary>What a backup of the planned entries holds and needs, before it is written.</summary>
    public class BackupPlan
    {
        public long Entries;
        public long Content;  // bytes of file content
        public long Needed;  // upper bound of archive + manifest bytes
        public List<string> Problems = new List<string>();
        public List<string> Failures = new List<string>();
    }

    /// <summary>The zip archive and its manifest, written side by side and verified against each other.</summary>
    public sealed class ZipBackup : IDisposable
    {
        private static readonly DateTime Epoch = new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        private static readonly DateTime ZipFirst = new DateTime(1980, 1, 2, 0, 0, 0, DateTimeKind.Utc);
        private static readonly DateTime ZipLast = new DateTime(2107, 12, 30, 0, 0, 0, DateTimeKind.Utc);

        public readonly string Archive;
        public readonly string Manifest;
        public long Entries;
        private FileStream archiveFile;
        private FileStream manifestFile;
        private ZipArchive zip;

        private ZipBackup(string archive, FileStream archiveFile, string manifest, FileStream manifestFile)
        {
            Archive = archive;
            Manifest = manifest;
            this.archiveFile = archiveFile;
            this.manifestFile = manifestFile;
            zip = new ZipArchive(archiveFile, ZipArchiveMode.Create, true, Encoding.UTF8);
        }

        /// <summary>residue-purge-&lt;UTC stamp&gt;-&lt;pid&gt;-&lt;n&gt;.zip and .manifest.jsonl in directory, both
        /// created new (an existing name, or a link planted under it, is never opened: the next n is tried).</summary>
        public static ZipBackup Create(string directory, DateTime utcNow, int pid)
        {
            string stamp = utcNow.ToUniversalTime().ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
            for (int attempt = 0; attempt < 1000; attempt++)
            {
                string stem = Path.Combine(directory, String.Format(CultureInfo.InvariantCulture, "residue-purge-{0}-{1}-{2}", stamp, pid, attempt));
                FileStream archive = CreateNew(stem + ".zip");
                if (archive == null)
                    continue;
                FileStream manifest = CreateNew(stem + ".manifest.jsonl");
                if (manifest == null)
                {
                    archive.Dispose();
                    File.Delete(stem + ".zip");
                    continue;
                }
                return new ZipBackup(stem + ".zip", archive, stem + ".manifest.jsonl", manifest);
            }
            throw new BackupException("backup: no free archive name in " + directory);
        }

        private static FileStream CreateNew(string path)
        {
            try
            {
                return new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                if (File.Exists(path) || Directory.Exists(path))
                    return null;
                throw;
            }
        }

        /// <summary>The archive member name of a Windows path: C:\a\b -> C/a/b, \\srv\share\a -> UNC/srv/share/a
        /// (\\?\ prefixes removed first). Relative, device and malformed paths are refused.</summary>
        public static string EntryName(string path)
        {
            string p = path ?? "";
            if (p.StartsWith(@"\\?\UNC\", StringComparison.OrdinalIgnoreCase))
                p = @"\\" + p.Substring(8);
            else if (p.StartsWith(@"\\?\"))
                p = p.Substring(4);
            p = p.Replace('/', '\\');
            string head;
            if (p.Length >= 3 && Char.IsLetter(p[0]) && p[0] < 128 && p[1] == ':' && p[2] == '\\')
            {
                head = p.Substring(0, 1).ToUpperInvariant();
                p = p.Substring(3);
            }
            else if (p.StartsWith(@"\\") && !p.StartsWith(@"\\.\") && !p.StartsWith(@"\\?\"))
            {
                head = "UNC";
                p = p.Substring(2);
            }
            else
            {
                throw new BackupException(String.Format("backup: '{0}' is not an absolute Windows path", path));
            }
            List<string> parts = new List<string>();
            parts.Add(head);
            foreach (string part in p.Split('\\'))
            {
                if (part == "" || part == ".")
                    continue;
                if (part == "..")
                    throw new BackupException(String.Format("backup: '{0}' contains '..'", path));
                parts.Add(part);
            }
            if (head == "UNC" && parts.Count < 3)
                throw new BackupException(String.Format("backup: '{0}' names no share", path));
            return String.Join("/", parts.ToArray());
        }

        private static void CheckUnicode(string path)
        {
            for (int i = 0; i < path.Length; i++)
            {
                if (Char.IsHighSurrogate(path[i]) && i + 1 < path.Length && Char.IsLowSurrogate(path[i + 1]))
                {
                    i++;
                    continue;
                }
                if (Char.IsSurrogate(path[i]))
                    throw new BackupException(String.Format(
                        "backup: {0}: the name holds an unpaired UTF-16 surrogate, which a zip cannot name; nothing was removed",
                        ManifestJson.Quote(path)));
            }
        }

        private static DateTimeOffset ZipTime(double mtime)
        {
            DateTime t;
            try
            {
                t = Epoch.AddSeconds(mtime);
            }
            catch (ArgumentOutOfRangeException)
            {
                t = mtime < 0 ? ZipFirst : ZipLast;
            }
            if (t < ZipFirst)
                t = ZipFirst;
            if (t > ZipLast)
                t = ZipLast;
            return new DateTimeOffset(t);
        }

        public const long OverheadPerEntry = 1024;  // zip local header, central record, data descriptor, zip64 extras, manifest line

        /// <summary>An upper bound of the archive and manifest bytes one entry costs. Deflate grows incompressible
        /// data by 5 bytes per stored block (measured under Mono: 0.03% with 16 KiB blocks; 0.1% allowed); the
        /// name is in the zip twice (at most 3 UTF-8 bytes per UTF-16 unit) and in the manifest (at most 6 bytes
        /// per unit). The end of the central directory fits in one entry's overhead.</summary>
        public static long EntryNeeds(string path, long size)
        {
            return size + size / 1024 + OverheadPerEntry + 12L * path.Length;
        }

        public void AddDirectory(string path, double mtime)
        {
            CheckUnicode(path);
            ZipArchiveEntry entry = zip.CreateEntry(EntryName(path) + "/", CompressionLevel.NoCompression);
            entry.LastWriteTime = ZipTime(mtime);
            Record(path, "dir", 0, null);
        }

        /// <summary>Archive content (read to its end) as the file path; the sha256 is of exactly what was stored.</summary>
        public void AddFile(string path, Stream content, double mtime)
        {
            CheckUnicode(path);
            ZipArchiveEntry entry = zip.CreateEntry(EntryName(path), CompressionLevel.Fastest);
            entry.LastWriteTime = ZipTime(mtime);
            long size = 0;
            string sha;
            using (SHA256 hash = SHA256.Create())
            using (Stream output = entry.Open())
            {
                byte[] buffer = new byte[1 << 16];
                int n;
                while ((n = content.Read(buffer, 0, buffer.Length)) > 0)
                {
                    hash.TransformBlock(buffer, 0, n, null, 0);
                    output.Write(buffer, 0, n);
                    size += n;
                }
                hash.TransformFinalBlock(buffer, 0, 0);
                sha = Hex(hash.Hash);
            }
            Record(path, "file", size, sha);
        }

        private void Record(string path, string type, long size, string sha)
        {
            // json.dumps(record, sort_keys=True): keys sorted, ", " and ": " separators, ASCII only
            string line = String.Format(CultureInfo.InvariantCulture, "{{\"path\": {0}, \"sha256\": {1}, \"size\": {2}, \"type\": {3}}}\n",
                ManifestJson.Quote(path), sha == null ? "null" : ManifestJson.Quote(sha), size, ManifestJson.Quote(type));
            byte[] bytes = Encoding.ASCII.GetBytes(line);
            manifestFile.Write(bytes, 0, bytes.Length);
            Entries++;
        }

        /// <summary>Finish both files and flush them to disk.</summary>
        public void Close()
        {
            zip.Dispose();
            zip = null;
            archiveFile.Flush(true);
            archiveFile.Dispose();
            archiveFile = null;
            manifestFile.Flush(true);
            manifestFile.Dispose();
            manifestFile = null;
        }

        /// <summary>Close whatever is open and delete both files (a failed backup leaves nothing behind).</summary>
        public void Discard()
        {
            try
            {
                if (zip != null)
                    zip.Dispose();
            }
            catch (Exception) { }
            foreach (FileStream f in new FileStream[] { archiveFile, manifestFile })
            {
                try
                {
                    if (f != null)
                        f.Dispose();
                }
                catch (Exception) { }
            }
            zip = null;
            archiveFile = manifestFile = null;
            foreach (string path in new string[] { Archive, Manifest })
            {
                try
                {
                    File.Delete(path);
                }
                catch (Exception) { }
            }
        }

        public void Dispose()
        {
            if (zip != null || archiveFile != null || manifestFile != null)
                Discard();
        }

        /// <summary>Read the archive back and compare it member by member with the manifest (name, type, size,
        /// sha256 of the stored content, nothing more, nothing less). Returns the number of entries.</summary>
        public static long Verify(string archive, string manifest)
        {
            long count = 0;
            try
            {
                string[] lines = File.ReadAllLines(manifest, Encoding.ASCII);
                using (FileStream file = new FileStream(archive, FileMode.Open, FileAccess.Read, FileShare.Read))
                using (ZipArchive zip = new ZipArchive(file, ZipArchiveMode.Read, false, Encoding.UTF8))
                {
                    IList<ZipArchiveEntry> entries = zip.Entries;
                    foreach (string line in lines)
                    {
                        Dictionary<string, object> want = ManifestJson.ParseFlat(line);
                        string path = want["path"] as string;
                        string type = want["type"] as string;
                        string where = String.Format("backup {0}: {1}", archive, ManifestJson.Quote(path ?? "?"));
                        if (count >= entries.Count)
                            throw new BackupException(where + ": in the manifest, not in the archive");
                        ZipArchiveEntry member = entries[(int)count];
                        string name = EntryName(path) + (type == "dir" ? "/" : "");
                        if (member.FullName != name)
                            throw new BackupException(String.Format("{0}: the archive holds {1} in its place", where, ManifestJson.Quote(member.FullName)));
                        if (type == "dir")
                        {
                            if (member.Length != 0)
                                throw new BackupException(where + ": a directory with content");
                        }
                        else if (type == "file")
                        {
                            long size = Convert.ToInt64(want["size"], CultureInfo.InvariantCulture);
                            if (member.Length != size)
                                throw new BackupException(String.Format("{0}: size {1} in the archive, {2} in the manifest", where, member.Length, size));
                            if (Sha256(member) != (want["sha256"] as string))
                                throw new BackupException(where + ": sha256 of the archived content does not match");
                        }
                        else
                        {
                            throw new BackupException(String.Format("{0}: unknown type {1}", where, ManifestJson.Quote(type ?? "null")));
                        }
                        count++;
                    }
                    if (count != entries.Count)
                        throw new BackupException(String.Format("backup {0}: the archive has entries the manifest does not list", archive));
                }
            }
            catch (BackupException)
            {
                throw;
            }
            catch (Exception e)
            {
                throw new BackupException(String.Format("backup {0} could not be read back: {1}", archive, e.Message));
            }
            return count;
        }

        private static string Sha256(ZipArchiveEntry member)
        {
            using (SHA256 hash = SHA256.Create())
            using (Stream s = member.Open())
                return Hex(hash.ComputeHash(s));
        }

        public static string Sha256Of(string path)
        {
            using (SHA256 hash = SHA256.Create())
            using (FileStream s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
                return Hex(hash.ComputeHash(s));
        }

        private static string Hex(byte[] bytes)
        {
            StringBuilder sb = new StringBuilder(bytes.Length * 2);
            foreach (byte b in bytes)
                sb.Append(b.ToString("x2", CultureInfo.InvariantCulture));
            return sb.ToString();
        }
    }

    /// <summary>The manifest's JSON: strings quoted as Python's json.dumps does (ASCII, \uXXXX), and the flat
    /// objects of its lines parsed back.</summary>
    public static class ManifestJson
    {
        public static string Quote(string s)
        {
            StringBuilder sb = new StringBuilder(s.Length + 2);
            sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    case '\b': sb.Append("\\b"); break;
                    case '\f': sb.Append("\\f"); break;
                    default:
                        if (c < 0x20 || c > 0x7e)  // as json.dumps(ensure_ascii=True): DEL escaped too
                            sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else
                            sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
            return sb.ToString();
        }

        /// <summary>One JSON object whose values are strings, integers or null.</summary>
        public static Dictionary<string, object> ParseFlat(string text)
        {
            Dictionary<string, object> result = new Dictionary<string, object>();
            int i = 0;
            Skip(text, ref i);
            Expect(text, ref i, '{');
            Skip(text, ref i);
            if (Peek(text, i) == '}')
                return result;
            while (true)
            {
                Skip(text, ref i);
                string key = ReadString(text, ref i);
                Skip(text, ref i);
                Expect(text, ref i, ':');
                Skip(text, ref i);
                char c = Peek(text, i);
                if (c == '"')
                    result[key] = ReadString(text, ref i);
                else if (text.Substring(i).StartsWith("null"))
                {
                    result[key] = null;
                    i += 4;
                }
                else
                {
                    int start = i;
                    while (i < text.Length && (Char.IsDigit(text[i]) || text[i] == '-'))
                        i++;
                    if (start == i)
                        throw new FormatException("manifest line: unexpected value at " + start);
                    result[key] = Int64.Parse(text.Substring(start, i - start), CultureInfo.InvariantCulture);
                }
                Skip(text, ref i);
                if (Peek(text, i) == ',')
                {
                    i++;
                    continue;
                }
                Expect(text, ref i, '}');
                Skip(text, ref i);
                if (i != text.Length)
                    throw new FormatException("manifest line: text after the object");
                return result;
            }
        }

        private static char Peek(string text, int i)
        {
            return i < text.Length ? text[i] : '\0';
        }

        private static void Skip(string text, ref int i)
        {
            while (i < text.Length && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
                i++;
        }

        private static void Expect(string text, ref int i, char c)
        {
            if (Peek(text, i) != c)
                throw new FormatException(String.Format("manifest line: '{0}' expected at {1}", c, i));
            i++;
        }

        private static string ReadString(string text, ref int i)
        {
            Expect(text, ref i, '"');
            StringBuilder sb = new StringBuilder();
            while (true)
            {
                if (i >= text.Length)
                    throw new FormatException("manifest line: unterminated string");
                char c = text[i++];
                if (c == '"')
                    return sb.ToString();
                if (c != '\\')
                {
                    sb.Append(c);
                    continue;
                }
                char e = Peek(text, i++);
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'u':
                        if (i + 4 > text.Length)
                            throw new FormatException("manifest line: short \\u escape");
                        sb.Append((char)Int32.Parse(text.Substring(i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                        i += 4;
                        break;
                    default:
                        throw new FormatException("manifest line: bad escape");
                }
            }
        }
    }

    /// <summary>remove's backup from the Windows walk: the entries a dry run of each removal visits.</summary>
    public static class WinBackup
    {
        private static RemoveOptions Visiting(RemoveOptions template, EntryVisitor visit)
        {
            RemoveOptions options = new RemoveOptions();
            options.Cutoff = template.Cutoff;
            options.TimeField = template.TimeField;
            options.Keep = template.Keep;
            options.DryRun = true;
            options.OnEntry = visit;
            return options;
        }

        /// <summary>Entries and bytes a backup of these paths holds, and an upper bound of the space it needs.</summary>
        public static BackupPlan Plan(IList<string> paths, RemoveOptions template)
        {
            return Plan(paths, null, template);
        }

        /// <summary>Plan, each path walked with the rights of its ActingUser (actors[i] for paths[i]; null: the
        /// module's own): a user's residue is read for the backup as that user, so what their ACLs refuse them is
        /// a failure here, not archived by the module.</summary>
        public static BackupPlan Plan(IList<string> paths, IList<ActingUser> actors, RemoveOptions template)
        {
            BackupPlan plan = new BackupPlan();
            EntryVisitor visit = delegate (string path, bool directory, bool reparse, SafeFileHandle handle, long size, double mtime)
            {
                if (reparse)
                {
                    plan.Problems.Add(String.Format("{0}: a junction, symbolic link or other reparse point is not archived (it is removed itself, never its target)", path));
                    return;
                }
                plan.Entries++;
                plan.Content += size;
                plan.Needed += ZipBackup.EntryNeeds(path, size);
            };
            for (int i = 0; i < paths.Count; i++)
            {
                RemovalResult r = ActorOf(actors, i).RemoveTree(paths[i], paths[i], Visiting(template, visit));
                foreach (string[] f in r.Failures)
                    plan.Failures.Add(String.Format("{0}: {1}", f[0], f[1]));
            }
            return plan;
        }

        /// <summary>Write, close and verify the backup of these paths in directory; on any failure both files are
        /// deleted and a BackupException says why (the caller then removes nothing).</summary>
        public static ZipBackup Write(string directory, IList<string> paths, RemoveOptions template)
        {
            return Write(directory, paths, null, template);
        }

        private static ActingUser ActorOf(IList<ActingUser> actors, int i)
        {
            return actors == null || actors[i] == null ? ActingUser.Self : actors[i];
        }

        /// <summary>Write, each path read with the rights of its ActingUser: the walk and every file's opening run
        /// while impersonating that user (the archive and manifest were created, and are written and verified,
        /// with the module's own rights: a handle open before the impersonation keeps the access it was opened
        /// with). A user whose rights cannot be had fails the backup, and nothing is removed.</summary>
        public static ZipBackup Write(string directory, IList<string> paths, IList<ActingUser> actors, RemoveOptions template)
        {
            ZipBackup backup = ZipBackup.Create(directory, DateTime.UtcNow, System.Diagnostics.Process.GetCurrentProcess().Id);
            try
            {
                EntryVisitor visit = delegate (string entry, bool isDirectory, bool reparse, SafeFileHandle handle, long size, double mtime)
                {
                    if (reparse)
                        return;  // Plan named it as a problem
                    if (isDirectory)
                    {
                        backup.AddDirectory(entry, mtime);
                        return;
                    }
                    using (FileStream content = WinFiles.OpenVisited(entry, handle))
                        backup.AddFile(entry, content, mtime);
                };
                for (int i = 0; i < paths.Count; i++)
                {
                    string path = paths[i];
                    RemovalResult r = ActorOf(actors, i).RemoveTree(path, path, Visiting(template, visit));
                    if (r.Failures.Count > 0)
                        throw new BackupException(String.Format("backup: {0} could not be read completely ({1}: {2}); nothing was removed",
                            path, r.Failures[0][0], r.Failures[0][1]));
                }
                backup.Close();
                ZipBackup.Verify(backup.Archive, backup.Manifest);
                return backup;
            }
            catch (BackupException)
            {
                backup.Discard();
                throw;
            }
            catch (Exception e)
            {
                backup.Discard();
                throw new BackupException(String.Format("backup: writing {0} failed: {1}; nothing was removed", backup.Archive, e.Message));
            }
        }
    }
}
