// Copyright: residue.purge contributors
// GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
//
// Users, their environments and residue placeholders on a Windows host: the Windows side of
// _profiles.py (list_users, user_environments, placeholder_values, expand_template, protected_paths,
// check_path, hub_cache_locations). Profiles themselves are validated and merged on the controller by
// _profiles.load_profiles (the action plugin hands the module the normalised set).
using Microsoft.Win32;
using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Ansible.Privilege;
using Microsoft.Win32.SafeHandles;

//TypeAccelerator -Name ResiduePurge.WinHost -TypeName WinHost
//TypeAccelerator -Name ResiduePurge.UserProfile -TypeName UserProfile
//TypeAccelerator -Name ResiduePurge.EnvContext -TypeName EnvContext
//TypeAccelerator -Name ResiduePurge.UserHive -TypeName UserHive
//TypeAccelerator -Name ResiduePurge.ProfileException -TypeName ProfileException

namespace ansible_collections.residue.purge.plugins.module_utils._WinHost
{
    public class ProfileException : Exception
    {
        public ProfileException(string message) : base(message) { }
    }

    public class UserProfile
    {
        public string Name;
        public string Sid;
        public string Home;

        public UserProfile(string name, string sid, string home)
        {
            Name = name;
            Sid = sid;
            Home = home;
        }
    }

    public class EnvContext
    {
        public UserProfile User;
        public Dictionary<string, string> Environ;
        public string Source;  // default | env | registry:<key> (like _profiles' file:/etc/environment)

        public EnvContext(UserProfile user, Dictionary<string, string> environ, string source)
        {
            User = user;
            Environ = environ;
            Source = source;
        }
    }

    public class ResolvedPath
    {
        public string Target;
        public string Path;
        public string User;
        public string Template;
        public string Source;

        public ResolvedPath(string target, string path, string user, string template, string source)
        {
            Target = target;
            Path = path;
            User = user;
            Template = template;
            Source = source;
        }
    }

    internal static class NativeMethods
    {
        [DllImport("advapi32.dll", CharSet = CharSet.Unicode)]
        public static extern int RegLoadKeyW(IntPtr hKey, string lpSubKey, string lpFile);

        [DllImport("advapi32.dll", CharSet = CharSet.Unicode)]
        public static extern int RegUnLoadKeyW(IntPtr hKey, string lpSubKey);

        public static readonly IntPtr HKEY_USERS = new IntPtr(unchecked((int)0x80000003));

        [StructLayout(LayoutKind.Sequential)]
        public struct BY_HANDLE_FILE_INFORMATION
        {
            public uint FileAttributes;
            public System.Runtime.InteropServices.ComTypes.FILETIME CreationTime;
            public System.Runtime.InteropServices.ComTypes.FILETIME LastAccessTime;
            public System.Runtime.InteropServices.ComTypes.FILETIME LastWriteTime;
            public uint VolumeSerialNumber;
            public uint FileSizeHigh;
            public uint FileSizeLow;
            public uint NumberOfLinks;
            public uint FileIndexHigh;
            public uint FileIndexLow;
        }

        [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
        public static extern SafeFileHandle CreateFileW(string name, uint access, uint share, IntPtr security,
            uint disposition, uint flags, IntPtr template);

        [DllImport("kernel32.dll", SetLastError = true)]
        public static extern bool GetFileInformationByHandle(SafeFileHandle handle, out BY_HANDLE_FILE_INFORMATION info);

        [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
        public static extern uint GetFinalPathNameByHandleW(SafeFileHandle handle, System.Text.StringBuilder path, uint size, uint flags);

        [DllImport("advapi32.dll", SetLastError = true)]
        public static extern uint GetSecurityInfo(SafeFileHandle handle, int objectType, uint securityInfo,
            out IntPtr owner, out IntPtr group, out IntPtr dacl, out IntPtr sacl, out IntPtr descriptor);

        [DllImport("kernel32.dll")]
        public static extern IntPtr LocalFree(IntPtr memory);
    }

    /// <summary>A user's registry hive: HKU\SID when the user is logged on, else NTUSER.DAT loaded for the
    /// duration (SeBackupPrivilege and SeRestorePrivilege, so administrators only) and unloaded on Dispose.</summary>
    public sealed class UserHive : IDisposable
    {
        public RegistryKey Root;
        public bool Loaded;
        private string mountName;

        public static UserHive Open(UserProfile user, bool writable)
        {
            UserHive hive = new UserHive();
            hive.Root = Registry.Users.OpenSubKey(user.Sid, writable);
            if (hive.Root != null)
                return hive;
            string dat = Path.Combine(user.Home, "NTUSER.DAT");
            if (!File.Exists(dat))
                return null;
            hive.mountName = "residue.purge-" + user.Sid;
            using (new PrivilegeEnabler(true, "SeBackupPrivilege", "SeRestorePrivilege"))
            {
                int rc = NativeMethods.RegLoadKeyW(NativeMethods.HKEY_USERS, hive.mountName, dat);
                if (rc != 0)
                    throw new System.ComponentModel.Win32Exception(rc, "loading the registry hive " + dat);
            }
            hive.Loaded = true;
            hive.Root = Registry.Users.OpenSubKey(hive.mountName, writable);
            return hive;
        }

        public void Dispose()
        {
            if (Root != null)
            {
                Root.Dispose();
                Root = null;
            }
            if (Loaded)
            {
                // Handles to keys below the hive keep it loaded; let the finalizers close them first.
                GC.Collect();
                GC.WaitForPendingFinalizers();
                using (new PrivilegeEnabler(false, "SeBackupPrivilege", "SeRestorePrivilege"))
                    NativeMethods.RegUnLoadKeyW(NativeMethods.HKEY_USERS, mountName);
                Loaded = false;
            }
        }
    }

    // ------------------------------------------------------------ trust (_profiles.vet_value, _paths.canonical)

    /// <summary>What one existing path component is, looked at without following it.</summary>
    public class PathFact
    {
        public string Name;      // its name on disk: the long name (never an 8.3 alias), in its own case
        public string OwnerSid;  // the owner in its security descriptor
        public bool Reparse;     // FILE_ATTRIBUTE_REPARSE_POINT: a junction, symbolic link or mount point
        public string Identity;  // volume serial number and file index: one object, however it is spelled
    }

    /// <summary>The file system as the trust rules see it: WindowsPathFacts on a host, a table in the tests.</summary>
    public interface IPathFacts
    {
        /// <summary>The component at path (not followed), or null when it does not exist or cannot be looked up
        /// (not found, not a directory, access denied); a PathRefused for anything else.</summary>
        PathFact Look(string path);

        /// <summary>Where a reparse point leads (its final path, followed), or null when that is unknown.</summary>
        string Target(string path);

        /// <summary>The account name of a SID, for messages (the SID itself when it has none).</summary>
        string AccountName(string sid);
    }

    public class PathRefused : Exception
    {
        public PathRefused(string message) : base(message) { }
    }

    /// <summary>A location: its path (long names), whether it exists, the identities of the existing components
    /// from the root down, and the deepest existing component with its owner.</summary>
    public class Location
    {
        public string Path;
        public bool Exists;
        public List<string> Chain = new List<string>();
        public string Existing;
        public string ExistingOwner;
    }

    /// <summary>The outcome of vetting one value: Path when it may be used, else Why (null for a value that
    /// names no location, such as a relative one: ignored, as on POSIX); Foreign when the reason is the owner.</summary>
    public class Vetted
    {
        public string Path;
        public string Why;
        public bool Foreign;
    }

    /// <summary>The Windows side of _paths.canonical and _profiles.vet_value.</summary>
    public static class Trust
    {
        public const int MaxLinks = 32;

        // Who may make a reparse point that is followed: the system's own junctions (C:\Documents and Settings,
        // C:\Users\All Users) and an administrator's mount points are root's symlinks on POSIX.
        public static readonly string[] TrustedOwners = {
            "S-1-5-18",  // LocalSystem
            "S-1-5-32-544",  // BUILTIN\Administrators
            "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464",  // NT SERVICE\TrustedInstaller
        };

        private static readonly Regex DeviceRe = new Regex(@"^[\\/]{2}[?.][\\/]|^[\\/]\?\?[\\/]");
        private static readonly Regex DriveRe = new Regex(@"^([A-Za-z]):\\");
        private static readonly Regex UncRe = new Regex(@"^\\\\([^\\]+)\\([^\\]+)(?:\\|$)");
        private static readonly char[] BadChars = { '*', '?', '"', '<', '>', '|', ':' };

        public static bool IsTrustedOwner(string sid)
        {
            return sid != null && TrustedOwners.Contains(sid, StringComparer.OrdinalIgnoreCase);
        }

        /// <summary>The value as a root (C:\ or \\server\share\) and its components, every spelling collapsed,
        /// or null for a value that names no location (relative, drive- or root-relative). Refused (PathRefused):
        /// device paths (\\?\, \\.\, \??\), '..', a component ending in a dot or a space (Windows drops them, so
        /// 'Windows.' names C:\Windows), an alternate data stream or any character no file name has.</summary>
        public static KeyValuePair<string, List<string>>? Split(string value)
        {
            if (String.IsNullOrEmpty(value))
                return null;
            if (DeviceRe.IsMatch(value))
                throw new PathRefused(String.Format("{0} is a device path (\\\\?\\, \\\\.\\): not used", value));
            if (!WinHost.IsAbsolute(value))
                return null;
            string p = value.Replace('/', '\\');
            string root;
            string rest;
            Match m = DriveRe.Match(p);
            if (m.Success)
            {
                root = m.Groups[1].Value.ToUpperInvariant() + @":\";
                rest = p.Substring(3);
            }
            else
            {
                m = UncRe.Match(p);
                if (!m.Success)
                    return null;
                root = @"\\" + m.Groups[1].Value + @"\" + m.Groups[2].Value + @"\";
                rest = p.Substring(m.Length);
                foreach (string part in new string[] { m.Groups[1].Value, m.Groups[2].Value })
                    CheckComponent(value, part);
            }
            List<string> parts = new List<string>();
            foreach (string part in rest.Split('\\'))
            {
                if (part == "" || part == ".")
                    continue;
                CheckComponent(value, part);
                parts.Add(part);
            }
            return new KeyValuePair<string, List<string>>(root, parts);
        }

        private static void CheckComponent(string value, string part)
        {
            if (part == "..")
                throw new PathRefused(String.Format("{0} must not contain '..'", value));
            if (part.EndsWith(".") || part.EndsWith(" "))
                throw new PathRefused(String.Format("{0}: '{1}' ends in a dot or a space, which Windows drops: it names another file than it spells", value, part));
            if (part.IndexOfAny(BadChars) >= 0 || part.Any(c => c < ' '))
                throw new PathRefused(String.Format("{0}: '{1}' has a character no file name has (an alternate data stream, a wildcard or a control character)", value, part));
        }

        private static string JoinRoot(string root, IList<string> parts)
        {
            return root + String.Join(@"\", parts.ToArray());
        }

        /// <summary>_paths.canonical for Windows: each component looked at from the root without following it;
        /// a reparse point owned by an administrator (TrustedOwners) is followed to its final path, any other
        /// refuses the location (PathRefused naming it and its owner). A missing component ends the lookups: the
        /// rest is taken as spelled. Names come back as they are on disk (long names, not 8.3 aliases).</summary>
        public static Location Canonical(string value, IPathFacts facts)
        {
            KeyValuePair<string, List<string>>? split = Split(value);
            if (split == null)
                throw new PathRefused(String.Format("{0} is not an absolute path", value));
            string root = split.Value.Key;
            Stack<string> todo = new Stack<string>(Enumerable.Reverse(split.Value.Value));
            List<string> done = new List<string>();
            Location where = new Location();
            int links = 0;
            PathFact fact = facts.Look(root);
            where.Exists = fact != null;
            if (fact != null)
            {
                where.Chain.Add(fact.Identity);
                where.Existing = root;
                where.ExistingOwner = fact.OwnerSid;
            }
            while (todo.Count > 0)
            {
                string name = todo.Pop();
                if (!where.Exists)
                {
                    done.Add(name);
                    continue;
                }
                string current = JoinRoot(root, done.Concat(new string[] { name }).ToList());
                fact = facts.Look(current);
                if (fact == null)
                {
                    where.Exists = false;
                    done.Add(name);
                    continue;
                }
                if (fact.Reparse)
                {
                    if (!IsTrustedOwner(fact.OwnerSid))
                        throw new PathRefused(String.Format("{0}: {1} is a junction or symbolic link owned by {2}, not by an administrator; it is not followed",
                            value, current, facts.AccountName(fact.OwnerSid)));
                    if (++links > MaxLinks)
                        throw new PathRefused(String.Format("{0}: too many levels of junctions or symbolic links", value));
                    string target = facts.Target(current);
                    KeyValuePair<string, List<string>>? to = null;
                    try
                    {
                        to = Split(target);
                    }
                    catch (PathRefused)
                    {
                    }
                    if (to == null)
                        throw new PathRefused(String.Format("{0}: {1} leads to {2}, which is not a drive or share path", value, current, target ?? "an unknown place"));
                    root = to.Value.Key;
                    done.Clear();
                    foreach (string part in Enumerable.Reverse(to.Value.Value))
                        todo.Push(part);
                    where.Chain.Clear();
                    fact = facts.Look(root);
                    where.Exists = fact != null;
                    if (fact == null)
                        throw new PathRefused(String.Format("{0}: {1} leads to {2}, which cannot be looked at", value, current, target));
                    where.Chain.Add(fact.Identity);
                    where.Existing = root;
                    where.ExistingOwner = fact.OwnerSid;
                    continue;
                }
                done.Add(String.IsNullOrEmpty(fact.Name) ? name : fact.Name);
                where.Chain.Add(fact.Identity);
                where.Existing = JoinRoot(root, done);
                where.ExistingOwner = fact.OwnerSid;
            }
            where.Path = done.Count == 0 ? root : JoinRoot(root, done);
            return where;
        }

        /// <summary>The identity of user's profile directory when it is really a place of theirs: it exists, is not
        /// the root of a drive or share, and leads through no reparse point a user made. The profile path itself
        /// comes from ProfileList (HKLM, written by Windows and administrators) or the homes option.</summary>
        public static string HomeIdentity(UserProfile user, IPathFacts facts)
        {
            if (user == null || String.IsNullOrEmpty(user.Home))
                return null;
            try
            {
                Location home = Canonical(user.Home, facts);
                if (!home.Exists || home.Chain.Count < 2)
                    return null;
                return home.Chain[home.Chain.Count - 1];
            }
            catch (PathRefused)
            {
                return null;
            }
        }

        /// <summary>_profiles.vet_value: the cache variable name=value may be used for user only when the location
        /// it names is in the user's own profile (compared by identity: an 8.3 alias, a \\localhost\C$ spelling or
        /// another case is the same directory) or its deepest existing component is owned by the user's SID; a
        /// junction or symbolic link on the way that an administrator did not make refuses it, so nothing below
        /// the point where ownership was checked can lead elsewhere.</summary>
        public static Vetted VetValue(UserProfile user, string name, string value, IPathFacts facts, string homeIdentity)
        {
            Vetted result = new Vetted();
            if (String.IsNullOrEmpty(value))
                return result;
            if (value == "~" || value.StartsWith("~/") || value.StartsWith(@"~\"))
                value = user.Home + value.Substring(1);
            Location where;
            try
            {
                if (Split(value) == null)
                    return result;  // relative: names no location (as EnvPath)
                where = Canonical(value, facts);
            }
            catch (PathRefused e)
            {
                result.Why = e.Message;
                return result;
            }
            if (homeIdentity != null && where.Chain.Skip(1).Contains(homeIdentity))
            {
                result.Path = where.Path;
                return result;
            }
            if (where.Existing == null)
            {
                result.Why = String.Format("{0} cannot be looked at", where.Path);
                return result;
            }
            if (user.Sid != null && String.Equals(where.ExistingOwner, user.Sid, StringComparison.OrdinalIgnoreCase))
            {
                result.Path = where.Path;
                return result;
            }
            string owner = where.ExistingOwner == null ? "nobody known" : facts.AccountName(where.ExistingOwner);
            result.Foreign = true;
            result.Why = where.Exists
                ? String.Format("{0} is owned by {1}", where.Path, owner)
                : String.Format("{0} does not exist and {1} is owned by {2}", where.Path, where.Existing, owner);
            return result;
        }

        /// <summary>The part of one cache environment that user may use: every value VetValue accepts, with its
        /// location as the value; each refused one becomes a problem '&lt;describe&gt;: NAME=value is not used: why'.</summary>
        public static Dictionary<string, string> VetEnvironment(UserProfile user, IDictionary<string, string> env,
            string describe, IList<string> problems, IPathFacts facts, string homeIdentity)
        {
            Dictionary<string, string> kept = new Dictionary<string, string>();
            foreach (string name in env.Keys.OrderBy(k => k, StringComparer.Ordinal))
            {
                Vetted v = VetValue(user, name, env[name], facts, homeIdentity);
                if (v.Path != null)
                    kept[name] = v.Path;
                else if (v.Why != null && problems != null)
                    problems.Add(Printable(String.Format("{0}: {1}={2} is not used: {3}{4}", describe, name, env[name], v.Why,
                        v.Foreign ? String.Format(", not by {0}, and is not in {0}'s profile", user.Name) : "")));
            }
            return kept;
        }

        /// <summary>Every (user, cache environment, source) worth resolving placeholders for, from what was read:
        /// defaults; the machine environment (raw, %VAR% expanded for each user as their logon would), vetted for
        /// each user in turn like /etc/environment, its refusals reported once per value with the users; each
        /// user's own registry environment for that user only; the module's own environment for its own user.
        /// TMP and TEMP of the machine are left out: they are the services' temp directory (%SystemRoot%\TEMP),
        /// and every logon sets the user's own from their registry environment.</summary>
        public static List<EnvContext> Contexts(List<UserProfile> users, IDictionary<string, string> machineRaw,
            string machineSource, IDictionary<string, Dictionary<string, string>> userEnvs, UserProfile mine,
            IDictionary<string, string> own, IPathFacts facts, IList<string> problems)
        {
            List<EnvContext> contexts = new List<EnvContext>();
            Dictionary<UserProfile, string> homes = new Dictionary<UserProfile, string>();
            Func<UserProfile, string> home = delegate (UserProfile u)
            {
                string id;
                if (!homes.TryGetValue(u, out id))
                    homes[u] = id = HomeIdentity(u, facts);
                return id;
            };
            foreach (UserProfile u in users)
                contexts.Add(new EnvContext(u, new Dictionary<string, string>(), "default"));
            string machineName = machineSource.StartsWith("registry:") ? machineSource.Substring("registry:".Length) : machineSource;
            List<string> order = new List<string>();
            Dictionary<string, List<string>> refused = new Dictionary<string, List<string>>();
            Dictionary<string, string[]> refusedWhat = new Dictionary<string, string[]>();
            if (machineRaw != null && machineRaw.Count > 0)
            {
                foreach (UserProfile u in users)
                {
                    Dictionary<string, string> kept = new Dictionary<string, string>();
                    foreach (string name in machineRaw.Keys.OrderBy(k => k, StringComparer.Ordinal))
                    {
                        if (name == "TMP" || name == "TEMP")
                            continue;
                        string value = WinHost.ExpandForUser(machineRaw[name], u);
                        Vetted v = VetValue(u, name, value, facts, home(u));
                        if (v.Path != null)
                            kept[name] = v.Path;
                        else if (v.Why != null)
                        {
                            string key = name + "\0" + machineRaw[name] + "\0" + v.Why + "\0" + v.Foreign;
                            if (!refused.ContainsKey(key))
                            {
                                order.Add(key);
                                refused[key] = new List<string>();
                                refusedWhat[key] = new string[] { name, machineRaw[name], v.Why, v.Foreign ? "1" : "" };
                            }
                            refused[key].Add(u.Name);
                        }
                    }
                    if (kept.Count > 0)
                        contexts.Add(new EnvContext(u, kept, machineSource));
                }
            }
            foreach (string key in order)
            {
                List<string> names = refused[key];
                string[] what = refusedWhat[key];
                string shown = String.Join(", ", names.Take(5).ToArray()) + (names.Count > 5 ? String.Format(" and {0} more", names.Count - 5) : "");
                if (problems != null)
                    problems.Add(Printable(String.Format("{0}: {1}={2} is not used for {3}: {4}{5}", machineName, what[0], what[1],
                        shown, what[2], what[3] != "" ? ", not by them, and is not in their profile" : "")));
            }
            foreach (UserProfile u in users)
            {
                Dictionary<string, string> env;
                if (u.Sid == null || userEnvs == null || !userEnvs.TryGetValue(u.Sid, out env) || env.Count == 0)
                    continue;
                string source = @"registry:HKU\" + u.Sid + @"\Environment";
                Dictionary<string, string> kept = VetEnvironment(u, env,
                    String.Format(@"registry HKU\{0}\Environment (user {1})", u.Sid, u.Name), problems, facts, home(u));
                if (kept.Count > 0)
                    contexts.Add(new EnvContext(u, kept, source));
            }
            if (mine != null && own != null && own.Count > 0)
            {
                Dictionary<string, string> kept = VetEnvironment(mine, own,
                    String.Format("the module's environment (user {0})", mine.Name), problems, facts, home(mine));
                if (kept.Count > 0)
                    contexts.Add(new EnvContext(mine, kept, "env"));
            }
            return WinHost.Dedupe(contexts);
        }

        /// <summary>An unpaired surrogate (a registry string may carry one) as \uXXXX, so that one hostile value
        /// cannot make the module's whole result unreadable (_text.printable's job on POSIX).</summary>
        public static string Printable(string text)
        {
            System.Text.StringBuilder sb = new System.Text.StringBuilder(text.Length);
            for (int i = 0; i < text.Length; i++)
            {
                char c = text[i];
                if (Char.IsHighSurrogate(c) && i + 1 < text.Length && Char.IsLowSurrogate(text[i + 1]))
                {
                    sb.Append(c).Append(text[++i]);
                }
                else if (Char.IsSurrogate(c) || (c < ' ' && c != '\t'))
                    sb.AppendFormat("\\u{0:x4}", (int)c);
                else
                    sb.Append(c);
            }
            return sb.ToString();
        }
    }

    /// <summary>IPathFacts on a Windows host: each component opened with FILE_FLAG_OPEN_REPARSE_POINT (never
    /// followed) and FILE_FLAG_BACKUP_SEMANTICS; identity from GetFileInformationByHandle, owner from the handle's
    /// security descriptor, the on-disk name from GetFinalPathNameByHandle (which resolves 8.3 aliases).</summary>
    public sealed class WindowsPathFacts : IPathFacts
    {
        private const uint READ_CONTROL = 0x00020000;
        private const uint FILE_READ_ATTRIBUTES = 0x80;
        private const uint SHARE_ALL = 0x7;
        private const uint OPEN_EXISTING = 3;
        private const uint FILE_FLAG_BACKUP_SEMANTICS = 0x02000000;
        private const uint FILE_FLAG_OPEN_REPARSE_POINT = 0x00200000;
        private const uint FILE_ATTRIBUTE_REPARSE_POINT = 0x400;
        // not found, path not found, access denied, bad network path, invalid name, bad net name, not a directory
        private static readonly int[] Missing = { 2, 3, 5, 53, 67, 123, 161, 267 };

        private static string Native(string path)
        {
            return path.StartsWith(@"\\") ? @"\\?\UNC\" + path.Substring(2) : @"\\?\" + path;
        }

        private static SafeFileHandle Open(string path, uint access, bool follow)
        {
            return NativeMethods.CreateFileW(Native(path), access, SHARE_ALL, IntPtr.Zero, OPEN_EXISTING,
                FILE_FLAG_BACKUP_SEMANTICS | (follow ? 0 : FILE_FLAG_OPEN_REPARSE_POINT), IntPtr.Zero);
        }

        public static string FinalPath(SafeFileHandle handle)
        {
            System.Text.StringBuilder sb = new System.Text.StringBuilder(1024);
            uint n = NativeMethods.GetFinalPathNameByHandleW(handle, sb, (uint)sb.Capacity, 0);
            if (n > sb.Capacity)
            {
                sb = new System.Text.StringBuilder((int)n + 1);
                n = NativeMethods.GetFinalPathNameByHandleW(handle, sb, (uint)sb.Capacity, 0);
            }
            if (n == 0)
                return null;
            string p = sb.ToString();
            if (p.StartsWith(@"\\?\UNC\"))
                return @"\\" + p.Substring(8);
            return p.StartsWith(@"\\?\") ? p.Substring(4) : p;
        }

        public PathFact Look(string path)
        {
            using (SafeFileHandle h = Open(path, READ_CONTROL | FILE_READ_ATTRIBUTES, false))
            {
                if (h.IsInvalid)
                {
                    int error = Marshal.GetLastWin32Error();
                    if (Missing.Contains(error))
                        return null;
                    throw new PathRefused(String.Format("{0} cannot be looked at: {1}", path, new System.ComponentModel.Win32Exception(error).Message));
                }
                NativeMethods.BY_HANDLE_FILE_INFORMATION info;
                if (!NativeMethods.GetFileInformationByHandle(h, out info))
                    throw new PathRefused(String.Format("{0} cannot be looked at: {1}", path, new System.ComponentModel.Win32Exception().Message));
                PathFact fact = new PathFact();
                fact.Reparse = (info.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) != 0;
                fact.Identity = String.Format("{0:x8}:{1:x8}{2:x8}", info.VolumeSerialNumber, info.FileIndexHigh, info.FileIndexLow);
                IntPtr owner, group, dacl, sacl, descriptor;
                uint rc = NativeMethods.GetSecurityInfo(h, 1 /* SE_FILE_OBJECT */, 1 /* OWNER_SECURITY_INFORMATION */,
                    out owner, out group, out dacl, out sacl, out descriptor);
                if (rc != 0)
                    throw new PathRefused(String.Format("{0}: its owner cannot be read: {1}", path, new System.ComponentModel.Win32Exception((int)rc).Message));
                try
                {
                    fact.OwnerSid = new System.Security.Principal.SecurityIdentifier(owner).Value;
                }
                finally
                {
                    NativeMethods.LocalFree(descriptor);
                }
                string final = FinalPath(h);
                if (final != null && final.TrimEnd('\\').Contains("\\"))
                    fact.Name = final.TrimEnd('\\').Substring(final.TrimEnd('\\').LastIndexOf('\\') + 1);
                return fact;
            }
        }

        public string Target(string path)
        {
            using (SafeFileHandle h = Open(path, FILE_READ_ATTRIBUTES, true))
                return h.IsInvalid ? null : FinalPath(h);
        }

        public string AccountName(string sid)
        {
            return WinHost.SidName(sid) ?? sid;
        }
    }

    public static class WinHost
    {
        public static readonly string[] Placeholders = {
            "home", "user_cache", "user_config", "user_data", "hf_home", "hf_hub_cache", "torch_home",
            "modelscope_cache", "pip_cache", "tmp",
        };

        public static readonly string[] CacheEnvVars = {
            "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "XDG_CACHE_HOME",
            "XDG_CONFIG_HOME", "XDG_DATA_HOME", "TORCH_HOME", "MODELSCOPE_CACHE", "OLLAMA_MODELS", "PIP_CACHE_DIR",
            "LOCALAPPDATA", "APPDATA", "TMPDIR", "TMP", "TEMP",
        };

        public static readonly string[] SystemProtected = {
            @"C:\", @"C:\Windows", @"C:\Windows\Temp", @"C:\Users", @"C:\Program Files", @"C:\Program Files (x86)",
            @"C:\ProgramData",
        };

        // Inside a home: directories many tools share. A residue may live below them, never be them.
        public static readonly string[] HomeProtected = {
            "", ".cache", ".config", ".local", @".local\share", @".local\lib", @".local\bin", ".ssh", "Library",
            @"Library\Caches", @"Library\Application Support", @"Library\Preferences", "AppData", @"AppData\Local",
            @"AppData\Roaming", ".ollama",
        };

        private const string MachineEnvironmentKey = @"SYSTEM\CurrentControlSet\Control\Session Manager\Environment";
        private const string ProfileListKey = @"SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList";
        private static readonly Regex PlaceholderRe = new Regex(@"\{([^{}]*)\}");
        private static readonly Regex GlobChars = new Regex(@"[*?\[\]]");

        // ------------------------------------------------------------ units (_units.py)

        private static readonly Dictionary<string, long> DurationUnits = new Dictionary<string, long> {
            { "s", 1 }, { "m", 60 }, { "h", 3600 }, { "d", 86400 }, { "w", 7 * 86400 } };
        private static readonly Dictionary<string, long> SizeUnits = new Dictionary<string, long> {
            { "", 1 }, { "k", 1L << 10 }, { "m", 1L << 20 }, { "g", 1L << 30 }, { "t", 1L << 40 }, { "p", 1L << 50 } };

        /// <summary>'30d', '12h', '1w2d', '90' (seconds) -> seconds; a ProfileException names the option.</summary>
        public static long ParseDuration(string text, string option)
        {
            string value = (text ?? "").Trim().ToLowerInvariant();
            if (Regex.IsMatch(value, @"^\d+$"))
                return Int64.Parse(value);
            MatchCollection parts = Regex.Matches(value, @"(\d+)\s*([smhdw])");
            if (parts.Count == 0 || Regex.Replace(value, @"(\d+)\s*([smhdw])", "").Trim() != "")
                throw new ProfileException(String.Format("{0}: expected a duration such as 30d, 12h or 90m, got '{1}'", option, text));
            long total = 0;
            foreach (Match m in parts)
                total += Int64.Parse(m.Groups[1].Value) * DurationUnits[m.Groups[2].Value];
            return total;
        }

        /// <summary>'10G', '512M', '1.5T', '4096' (bytes) -> bytes, binary units.</summary>
        public static long ParseSize(string text, string option)
        {
            Match m = Regex.Match((text ?? "").Trim().ToLowerInvariant(), @"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$");
            if (!m.Success)
                throw new ProfileException(String.Format("{0}: expected a size such as 10G or 512M, got '{1}'", option, text));
            return (long)(Double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) * SizeUnits[m.Groups[2].Value]);
        }

        // ------------------------------------------------------------ paths

        /// <summary>_profiles._isabs for Windows: a drive and its root (C:\...) or a UNC share (\\server\share...);
        /// not root-relative (\foo), not drive-relative (C:foo), not the \\?\ and \\.\ device namespaces.</summary>
        public static bool IsAbsolute(string path)
        {
            if (String.IsNullOrEmpty(path))
                return false;
            return Regex.IsMatch(path, @"^(?:[A-Za-z]:[\\/]|[\\/]{2}(?![?.][\\/])[^\\/]+[\\/]+[^\\/]+)");
        }

        /// <summary>ntpath.normpath for absolute paths: '/' becomes '\', '.' and empty parts go, '..' pops.</summary>
        public static string NormPath(string path)
        {
            string p = path.Replace('/', '\\');
            string prefix = "";
            if (p.StartsWith(@"\\"))
            {
                prefix = @"\\";
                p = p.Substring(2);
            }
            else if (p.Length >= 2 && p[1] == ':')
            {
                prefix = p.Substring(0, 2);  // the drive letter as given, as ntpath.normpath
                p = p.Substring(2);
                if (p.StartsWith(@"\"))
                    prefix += @"\";
            }
            else if (p.StartsWith(@"\"))
            {
                prefix = @"\";
            }
            List<string> parts = new List<string>();
            foreach (string part in p.Split('\\'))
            {
                if (part == "" || part == ".")
                    continue;
                if (part == ".." && parts.Count > 0 && parts[parts.Count - 1] != "..")
                    parts.RemoveAt(parts.Count - 1);
                else
                    parts.Add(part);
            }
            string joined = prefix + String.Join(@"\", parts.ToArray());
            return joined == "" ? "." : joined;
        }

        public static string Join(string first, params string[] rest)
        {
            string path = first;
            foreach (string part in rest)
                path = path.TrimEnd('\\', '/') + @"\" + part;
            return path;
        }

        private static string EnvPath(IDictionary<string, string> env, string name, string home)
        {
            string value;
            if (env == null || !env.TryGetValue(name, out value) || String.IsNullOrEmpty(value))
                return null;
            if (value == "~" || value.StartsWith("~/") || value.StartsWith(@"~\"))
                value = home + value.Substring(1);  // as _profiles._env_path: '~', '~/...' and '~\...'
            if (!IsAbsolute(value))
                return null;  // relative to a daemon's working directory: not a place we can name
            return NormPath(value);
        }

        /// <summary>_profiles.placeholder_values(user, environ, "Windows").</summary>
        public static Dictionary<string, string> PlaceholderValues(string home, IDictionary<string, string> env)
        {
            Func<string, string> e = delegate (string name) { return EnvPath(env, name, home); };
            string xdgCache = e("XDG_CACHE_HOME") ?? NormPath(Join(home, ".cache"));
            string userCache = e("LOCALAPPDATA") ?? NormPath(Join(home, "AppData", "Local"));
            string userConfig = e("APPDATA") ?? NormPath(Join(home, "AppData", "Roaming"));
            string hfHome = e("HF_HOME") ?? NormPath(Join(xdgCache, "huggingface"));
            Dictionary<string, string> values = new Dictionary<string, string>();
            values["home"] = NormPath(home);
            values["user_cache"] = userCache;
            values["user_config"] = userConfig;
            values["user_data"] = userCache;
            values["hf_home"] = hfHome;
            values["hf_hub_cache"] = e("HF_HUB_CACHE") ?? e("HUGGINGFACE_HUB_CACHE") ?? NormPath(Join(hfHome, "hub"));
            values["torch_home"] = e("TORCH_HOME") ?? NormPath(Join(xdgCache, "torch"));
            values["modelscope_cache"] = e("MODELSCOPE_CACHE") ?? NormPath(Join(xdgCache, "modelscope"));
            values["pip_cache"] = e("PIP_CACHE_DIR") ?? NormPath(Join(userCache, "pip", "Cache"));
            // the user's own %TMP%/%TEMP% (GetTempPath's order), by default %LOCALAPPDATA%\Temp
            values["tmp"] = e("TMP") ?? e("TEMP") ?? Join(userCache, "Temp");
            if (env != null)
            {
                foreach (KeyValuePair<string, string> kv in env)
                {
                    string path = e(kv.Key);
                    if (path != null)
                        values["env:" + kv.Key] = path;
                }
            }
            return values;
        }

        /// <summary>_profiles.expand_template: null when an {env:NAME} it needs is unset or the template is a POSIX
        /// system path.</summary>
        public static string ExpandTemplate(string template, IDictionary<string, string> values)
        {
            if (template.StartsWith("/"))
                return null;  // a POSIX system path (/usr/share/ollama/...): nothing on Windows
            if (template.StartsWith("~/"))
                template = "{home}" + template.Substring(1);
            bool missing = false;
            string path = PlaceholderRe.Replace(template, delegate (Match m)
            {
                string name = m.Groups[1].Value;
                string value;
                if (values.TryGetValue(name, out value))
                    return value;
                if (name.StartsWith("env:"))
                {
                    missing = true;
                    return "";
                }
                throw new ProfileException("unknown placeholder {" + name + "}");
            });
            if (missing)
                return null;
            return NormPath(path);
        }

        /// <summary>Paths never removed as a whole: system dirs, homes and their shared dirs, HF homes.</summary>
        public static HashSet<string> ProtectedPaths(IEnumerable<UserProfile> users, IEnumerable<EnvContext> contexts)
        {
            return ProtectedPaths(users, contexts, null);
        }

        /// <summary>_profiles.protected_paths(user=...): with user, only that user's own environment contexts add
        /// locations (the set that user's paths are checked against): one user's environment never protects, or
        /// blocks, another user's residue.</summary>
        public static HashSet<string> ProtectedPaths(IEnumerable<UserProfile> users, IEnumerable<EnvContext> contexts, UserProfile user)
        {
            HashSet<string> result = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (string p in SystemProtected)
                result.Add(NormPath(p));
            List<EnvContext> all = new List<EnvContext>(user == null ? contexts : contexts.Where(c => SameUser(c.User, user)));
            foreach (UserProfile u in users)
            {
                foreach (string rel in HomeProtected)
                    result.Add(NormPath(rel == "" ? u.Home : Join(u.Home, rel)));
                all.Add(new EnvContext(u, new Dictionary<string, string>(), "default"));
            }
            string[] keys = { "home", "user_cache", "user_config", "user_data", "hf_home", "hf_hub_cache", "tmp" };
            foreach (EnvContext context in all)
            {
                Dictionary<string, string> values = PlaceholderValues(context.User.Home, context.Environ);
                foreach (string key in keys)
                    result.Add(values[key]);
            }
            return result;
        }

        public static bool SameUser(UserProfile a, UserProfile b)
        {
            return String.Equals(a.Name, b.Name, StringComparison.OrdinalIgnoreCase)
                && String.Equals(NormPath(a.Home), NormPath(b.Home), StringComparison.OrdinalIgnoreCase);
        }

        /// <summary>_profiles.describe_context.</summary>
        public static string DescribeContext(EnvContext context)
        {
            if (context.Source == "default")
                return "defaults of user " + context.User.Name;
            if (context.Source == "env")
                return String.Format("the module's environment (user {0})", context.User.Name);
            if (context.Source.StartsWith("registry:"))
                return String.Format("registry {0} (user {1})", context.Source.Substring("registry:".Length), context.User.Name);
            return String.Format("{0} (user {1})", context.Source, context.User.Name);
        }

        /// <summary>_profiles.resolve_all: every selected profile's path residues in every context, once per
        /// (profile, path), in order. Each path is checked against the protected set of its own context's user. A
        /// path refused in a user's default context is a bad profile: ProfileException, before anything happens.
        /// Refused in an environment context, it is that environment's doing (a user's MODELSCOPE_CACHE set to
        /// their profile, say): that path is left out and described in problems, and the rest goes on.</summary>
        public static List<ResolvedPath> ResolveAll(IDictionary profiles, IEnumerable<string> selected,
            List<UserProfile> users, List<EnvContext> contexts, IList<string> problems)
        {
            Dictionary<string, HashSet<string>> protectedFor = new Dictionary<string, HashSet<string>>();
            HashSet<string> unguarded = null;
            HashSet<string> seen = new HashSet<string>();
            List<ResolvedPath> result = new List<ResolvedPath>();
            foreach (string name in selected)
            {
                List<string> templates = Field((IDictionary)profiles[name], "paths", null);
                foreach (EnvContext context in contexts)
                {
                    string key = context.User.Name.ToLowerInvariant() + "\0" + NormPath(context.User.Home).ToLowerInvariant();
                    HashSet<string> guarded;
                    if (!protectedFor.TryGetValue(key, out guarded))
                        protectedFor[key] = guarded = ProtectedPaths(users, contexts, context.User);
                    Dictionary<string, string> values = PlaceholderValues(context.User.Home, context.Environ);
                    for (int i = 0; i < templates.Count; i++)
                    {
                        string field = String.Format("profile '{0}' field paths[{1}] ({2})", name, i, templates[i]);
                        string path;
                        try
                        {
                            path = ExpandTemplate(templates[i], values);
                            if (path == null)
                                continue;
                            path = CheckPath(path, guarded, field);
                        }
                        catch (ProfileException e)
                        {
                            string message = e.Message.StartsWith(field) ? e.Message : field + ": " + e.Message;
                            if (context.Source == "default")
                            {
                                // A bad profile, unless only the user's own environment makes the path protected
                                // (her TMP set to her own residue): that is her doing, and must not fail the run.
                                if (unguarded == null)
                                    unguarded = ProtectedPaths(users, new EnvContext[0]);
                                string bare = null;
                                try
                                {
                                    string expanded = ExpandTemplate(templates[i], values);
                                    bare = expanded == null ? null : CheckPath(expanded, unguarded, field);
                                }
                                catch (ProfileException)
                                {
                                }
                                if (bare == null)
                                    throw new ProfileException(message);
                                message += String.Format(", by the environment of user {0}", context.User.Name);
                            }
                            if (problems != null)
                                problems.Add(Trust.Printable(String.Format("{0}: {1}; left out", DescribeContext(context), message)));
                            continue;
                        }
                        if (seen.Add(name + "|" + path.ToLowerInvariant()))
                            result.Add(new ResolvedPath(name, path, context.User.Name, templates[i], context.Source));
                    }
                }
            }
            return result;
        }

        /// <summary>_profiles.check_path: the normalised path, or a ProfileException saying why it is refused.</summary>
        public static string CheckPath(string path, ICollection<string> protectedPaths, string field)
        {
            if (String.IsNullOrEmpty(path) || path.Trim() == "")
                throw new ProfileException(field + ": an empty path is refused");
            if (path.StartsWith("~"))
                throw new ProfileException(String.Format("{0}: '{1}': '~' is not expanded here; give an absolute path", field, path));
            if (!IsAbsolute(path))
                throw new ProfileException(String.Format("{0}: '{1}' is not an absolute path", field, path));
            if (Regex.Split(path, @"[/\\]").Contains(".."))
                throw new ProfileException(String.Format("{0}: '{1}' must not contain '..'", field, path));
            if (GlobChars.IsMatch(path))
                throw new ProfileException(String.Format("{0}: '{1}' contains glob characters; name one residue per path", field, path));
            string norm = NormPath(path);
            if (Regex.IsMatch(norm, @"^[A-Za-z]:\\?$") || Regex.IsMatch(norm, @"^\\\\[^\\]+\\[^\\]+\\?$") || norm == @"\")
                throw new ProfileException(String.Format("{0}: '{1}' is the root of a filesystem", field, path));
            HashSet<string> set = new HashSet<string>(protectedPaths, StringComparer.OrdinalIgnoreCase);
            if (set.Contains(norm))
                throw new ProfileException(String.Format("{0}: '{1}' is a protected directory", field, norm));
            string prefix = norm.TrimEnd('\\') + @"\";
            string inside = set.Where(p => p.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
                .OrderBy(p => p, StringComparer.OrdinalIgnoreCase).FirstOrDefault();
            if (inside != null)
                throw new ProfileException(String.Format("{0}: '{1}' contains the protected directory {2}", field, norm, inside));
            return norm;
        }

        private static string DescribeSource(string source, string variable)
        {
            if (variable == null)
                return "default";
            if (source == "env")
                return "env " + variable;
            if (source.StartsWith("registry:"))
                return String.Format("registry {0} ({1})", source.Substring("registry:".Length), variable);
            return String.Format("{0} ({1})", source, variable);
        }

        /// <summary>(path, source) pairs of the HF hub caches a context implies, in huggingface_hub's order,
        /// plus the legacy TRANSFORMERS_CACHE.</summary>
        public static List<string[]> HubCacheLocations(EnvContext context)
        {
            Dictionary<string, string> values = PlaceholderValues(context.User.Home, context.Environ);
            string variable = null;
            foreach (string v in new string[] { "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME" })
            {
                if (EnvPath(context.Environ, v, context.User.Home) != null)
                {
                    variable = v;
                    break;
                }
            }
            List<string[]> found = new List<string[]>();
            found.Add(new string[] { values["hf_hub_cache"], DescribeSource(context.Source, variable) });
            string legacy = EnvPath(context.Environ, "TRANSFORMERS_CACHE", context.User.Home);
            if (legacy != null)
                found.Add(new string[] { legacy, DescribeSource(context.Source, "TRANSFORMERS_CACHE") });
            return found;
        }

        // ------------------------------------------------------------ users

        /// <summary>Users whose homes are covered: every profile in ProfileList with an existing home below
        /// the profiles directory (service profiles under C:\Windows are left out), or one per explicit home.</summary>
        public static List<UserProfile> ListUsers(IList homes, object users)
        {
            List<string> wanted = ParseUsers(users);
            if (homes != null && homes.Count > 0)
            {
                if (wanted != null)
                    throw new ProfileException("homes and users are mutually exclusive: homes replaces the enumeration of users");
                List<UserProfile> explicitHomes = new List<UserProfile>();
                foreach (object h in homes)
                {
                    string home = h as string;
                    if (!IsAbsolute(home))
                        throw new ProfileException(String.Format("homes: '{0}' is not an absolute path", h));
                    if (Regex.Split(home, @"[/\\]").Contains(".."))
                        throw new ProfileException(String.Format("homes: '{0}' must not contain '..'", home));
                    home = NormPath(home);
                    if (!Directory.Exists(home))
                        throw new ProfileException(String.Format("homes: {0}: no such directory", home));
                    string owner = OwnerOf(home);
                    explicitHomes.Add(new UserProfile(owner ?? Path.GetFileName(home), null, home));
                }
                return explicitHomes;
            }
            List<UserProfile> result = new List<UserProfile>();
            using (RegistryKey list = Registry.LocalMachine.OpenSubKey(ProfileListKey))
            {
                if (list == null)
                    return result;
                foreach (string sid in list.GetSubKeyNames())
                {
                    if (!sid.StartsWith("S-1-5-21-"))
                        continue;  // SYSTEM, LOCAL SERVICE and NETWORK SERVICE live under C:\Windows
                    using (RegistryKey entry = list.OpenSubKey(sid))
                    {
                        string home = entry == null ? null : entry.GetValue("ProfileImagePath") as string;
                        if (String.IsNullOrEmpty(home))
                            continue;
                        home = NormPath(Environment.ExpandEnvironmentVariables(home));
                        if (!Directory.Exists(home))
                            continue;
                        string name = SidName(sid) ?? Path.GetFileName(home);
                        string shortName = name.Contains("\\") ? name.Substring(name.LastIndexOf('\\') + 1) : name;
                        if (wanted != null && !wanted.Contains(shortName, StringComparer.OrdinalIgnoreCase)
                            && !wanted.Contains(name, StringComparer.OrdinalIgnoreCase))
                            continue;
                        result.Add(new UserProfile(name, sid, home));
                    }
                }
            }
            if (wanted != null)
            {
                foreach (string w in wanted)
                {
                    if (!result.Any(u => String.Equals(u.Name, w, StringComparison.OrdinalIgnoreCase)
                                         || u.Name.EndsWith("\\" + w, StringComparison.OrdinalIgnoreCase)))
                        throw new ProfileException("users: no profile for user " + w);
                }
            }
            return result;
        }

        private static List<string> ParseUsers(object users)
        {
            if (users == null)
                return null;
            string text = users as string;
            if (text != null)
            {
                if (text == "all")
                    return null;
                return text.Split(',').Select(s => s.Trim()).Where(s => s != "").ToList();
            }
            IEnumerable list = users as IEnumerable;
            if (list == null)
                throw new ProfileException("users must be 'all' or a list of user names");
            List<string> names = new List<string>();
            foreach (object o in list)
            {
                string s = o as string;
                if (String.IsNullOrEmpty(s))
                    throw new ProfileException("users must be 'all' or a list of user names");
                names.Add(s);
            }
            if (names.Count == 1 && names[0] == "all")
                return null;
            if (names.Count == 0)
                throw new ProfileException("users must be 'all' or a list of user names");
            return names;
        }

        public static string SidName(string sid)
        {
            try
            {
                return new System.Security.Principal.SecurityIdentifier(sid)
                    .Translate(typeof(System.Security.Principal.NTAccount)).Value;
            }
            catch (Exception)
            {
                return null;
            }
        }

        public static string OwnerOf(string path)
        {
            try
            {
                System.Security.AccessControl.FileSystemSecurity acl = Directory.Exists(path)
                    ? (System.Security.AccessControl.FileSystemSecurity)Directory.GetAccessControl(path, System.Security.AccessControl.AccessControlSections.Owner)
                    : File.GetAccessControl(path, System.Security.AccessControl.AccessControlSections.Owner);
                return acl.GetOwner(typeof(System.Security.Principal.NTAccount)).Value;
            }
            catch (Exception)
            {
                return null;
            }
        }

        // ------------------------------------------------------------ environments

        /// <summary>The cache variables of a registry environment key: for a user's own key %VAR% expanded as that
        /// user's logon would; the machine's raw (Trust.Contexts expands them for each user in turn).</summary>
        private static Dictionary<string, string> CacheVars(RegistryKey key, UserProfile user)
        {
            Dictionary<string, string> env = new Dictionary<string, string>();
            if (key == null)
                return env;
            foreach (string name in key.GetValueNames())
            {
                string upper = name.ToUpperInvariant();
                if (!CacheEnvVars.Contains(upper))
                    continue;
                object raw = key.GetValue(name, null, RegistryValueOptions.DoNotExpandEnvironmentNames);
                string value = raw as string;
                if (String.IsNullOrEmpty(value))
                    continue;
                env[upper] = user == null ? value : ExpandForUser(value, user);
            }
            return env;
        }

        // Variables that are the same for every account: what a %VAR% of them expands to is not the module's
        // own account's business (unlike USERPROFILE, TEMP, ...).
        private static readonly string[] SystemVariables = {
            "SYSTEMROOT", "WINDIR", "SYSTEMDRIVE", "PROGRAMDATA", "ALLUSERSPROFILE", "PUBLIC", "PROGRAMFILES",
            "PROGRAMFILES(X86)", "PROGRAMW6432", "COMMONPROGRAMFILES", "COMMONPROGRAMFILES(X86)",
        };

        /// <summary>%VAR% expansion as the user's own logon would do it, not as the module's account sees it.</summary>
        public static string ExpandForUser(string value, UserProfile user)
        {
            return Regex.Replace(value, "%([^%]+)%", delegate (Match m)
            {
                string name = m.Groups[1].Value.ToUpperInvariant();
                switch (name)
                {
                    case "USERPROFILE": return user.Home;
                    case "HOMEPATH": return user.Home.Length > 2 ? user.Home.Substring(2) : user.Home;
                    case "HOMEDRIVE": return user.Home.Substring(0, 2);
                    case "LOCALAPPDATA": return Join(user.Home, "AppData", "Local");
                    case "APPDATA": return Join(user.Home, "AppData", "Roaming");
                    case "USERNAME": return user.Name.Contains("\\") ? user.Name.Substring(user.Name.LastIndexOf('\\') + 1) : user.Name;
                }
                string machine = Environment.GetEnvironmentVariable(m.Groups[1].Value, EnvironmentVariableTarget.Machine);
                if (machine == null && SystemVariables.Contains(name))
                    machine = Environment.GetEnvironmentVariable(m.Groups[1].Value);
                return machine ?? m.Value;
            });
        }

        /// <summary>Every (user, cache environment, source) worth resolving placeholders for: defaults, the
        /// machine environment (Windows' /etc/environment), each user's own HKU\SID\Environment (its hive loaded
        /// when the user is not logged on) and the module's own environment for the user running it. Every value
        /// is vetted for the user it applies to (Trust.Contexts, Trust.VetValue); what is refused is in problems.</summary>
        public static List<EnvContext> UserEnvironments(List<UserProfile> users, List<string> problems)
        {
            Dictionary<string, string> machine;
            using (RegistryKey key = Registry.LocalMachine.OpenSubKey(MachineEnvironmentKey))
                machine = CacheVars(key, null);
            Dictionary<string, Dictionary<string, string>> userEnvs = new Dictionary<string, Dictionary<string, string>>(StringComparer.OrdinalIgnoreCase);
            foreach (UserProfile u in users)
            {
                if (u.Sid == null)
                    continue;
                try
                {
                    using (UserHive hive = UserHive.Open(u, false))
                    {
                        if (hive == null || hive.Root == null)
                            continue;
                        using (RegistryKey key = hive.Root.OpenSubKey("Environment"))
                            userEnvs[u.Sid] = CacheVars(key, u);
                    }
                }
                catch (Exception e)
                {
                    problems.Add(Trust.Printable(String.Format("environment of user {0} not read ({1}): its cache variables are not followed", u.Name, e.Message)));
                }
            }
            Dictionary<string, string> own = new Dictionary<string, string>();
            foreach (string name in CacheEnvVars)
            {
                string value = Environment.GetEnvironmentVariable(name);
                if (!String.IsNullOrEmpty(value))
                    own[name] = value;
            }
            // LOCALAPPDATA and APPDATA are always set for the module's own account: they only matter when
            // something else points elsewhere, and then only for that account.
            own.Remove("LOCALAPPDATA");
            own.Remove("APPDATA");
            own.Remove("TMP");  // the module's session temp directory, not a place the user's tools use
            own.Remove("TEMP");
            return Trust.Contexts(users, machine, @"registry:HKLM\" + MachineEnvironmentKey, userEnvs, Runner(users), own,
                new WindowsPathFacts(), problems);
        }

        /// <summary>The user among users whose profile is the module's own account's, or null.</summary>
        public static UserProfile Runner(List<UserProfile> users)
        {
            string me = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            if (String.IsNullOrEmpty(me))
                return null;
            return users.FirstOrDefault(u => String.Equals(NormPath(u.Home), NormPath(me), StringComparison.OrdinalIgnoreCase));
        }

        internal static List<EnvContext> Dedupe(List<EnvContext> contexts)
        {
            HashSet<string> seen = new HashSet<string>();
            List<EnvContext> result = new List<EnvContext>();
            foreach (EnvContext c in contexts)
            {
                string key = c.User.Name + "\0" + c.User.Home + "\0" + String.Join("\0",
                    c.Environ.OrderBy(kv => kv.Key).Select(kv => kv.Key + "=" + kv.Value).ToArray());
                if (seen.Add(key))
                    result.Add(c);
            }
            return result;
        }

        // ------------------------------------------------------------ profiles

        /// <summary>Profiles named by targets (all when empty). Unknown names fail with the known ones.</summary>
        public static List<string> SelectTargets(IDictionary profiles, IList targets)
        {
            List<string> known = new List<string>();
            foreach (object k in profiles.Keys)
                known.Add((string)k);
            known.Sort(StringComparer.Ordinal);
            if (targets == null || targets.Count == 0)
                return known;
            List<string> unknown = new List<string>();
            List<string> selected = new List<string>();
            foreach (object t in targets)
            {
                string name = (string)t;
                if (!profiles.Contains(name))
                    unknown.Add(name);
                else if (!selected.Contains(name))
                    selected.Add(name);
            }
            if (unknown.Count > 0)
                throw new ProfileException(String.Format("unknown target(s) {0}; known profiles: {1}",
                    String.Join(", ", unknown.ToArray()), String.Join(", ", known.ToArray())));
            return selected;
        }

        /// <summary>A list field of a normalised profile (paths, hf_repos, pip, ...) or of a sub-mapping.</summary>
        public static List<string> Field(IDictionary profile, string field, string sub)
        {
            List<string> result = new List<string>();
            object value = profile.Contains(field) ? profile[field] : null;
            if (sub != null)
            {
                IDictionary map = value as IDictionary;
                value = map != null && map.Contains(sub) ? map[sub] : null;
            }
            IEnumerable items = value as IEnumerable;
            if (value == null || value is string || items == null)
            {
                if (value is string)
                    result.Add((string)value);
                return result;
            }
            foreach (object o in items)
            {
                if (o != null)
                    result.Add(o.ToString());
            }
            return result;
        }

        /// <summary>fnmatch.fnmatchcase of a repo id against hf_repos globs.</summary>
        public static bool GlobMatch(string text, string glob, bool ignoreCase)
        {
            string pattern = "^" + Regex.Escape(glob).Replace(@"\*", ".*").Replace(@"\?", ".")
                .Replace(@"\[!", "[^").Replace(@"\[", "[").Replace(@"\]", "]") + "$";
            return Regex.IsMatch(text, pattern, ignoreCase ? RegexOptions.IgnoreCase : RegexOptions.None);
        }

        public static bool AnyGlob(string text, IEnumerable<string> globs, bool ignoreCase)
        {
            foreach (string g in globs)
            {
                if (GlobMatch(text, g, ignoreCase))
                    return true;
            }
            return false;
        }
    }
}
