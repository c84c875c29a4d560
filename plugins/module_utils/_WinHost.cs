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

    internal static class NativeMethods
    {
        [DllImport("advapi32.dll", CharSet = CharSet.Unicode)]
        public static extern int RegLoadKeyW(IntPtr hKey, string lpSubKey, string lpFile);

        [DllImport("advapi32.dll", CharSet = CharSet.Unicode)]
        public static extern int RegUnLoadKeyW(IntPtr hKey, string lpSubKey);

        public static readonly IntPtr HKEY_USERS = new IntPtr(unchecked((int)0x80000003));
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
            HashSet<string> result = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (string p in SystemProtected)
                result.Add(NormPath(p));
            List<EnvContext> all = new List<EnvContext>(contexts);
            foreach (UserProfile user in users)
            {
                foreach (string rel in HomeProtected)
                    result.Add(NormPath(rel == "" ? user.Home : Join(user.Home, rel)));
                all.Add(new EnvContext(user, new Dictionary<string, string>(), "default"));
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
                env[upper] = user == null ? Environment.ExpandEnvironmentVariables(value) : ExpandForUser(value, user);
            }
            return env;
        }

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
                return machine ?? m.Value;
            });
        }

        /// <summary>Every (user, cache environment, source) worth resolving placeholders for: defaults, the
        /// machine environment (Windows' /etc/environment), each user's own HKU\SID\Environment (its hive loaded
        /// when the user is not logged on) and the module's own environment for the user running it.</summary>
        public static List<EnvContext> UserEnvironments(List<UserProfile> users, List<string> problems)
        {
            List<EnvContext> contexts = new List<EnvContext>();
            foreach (UserProfile u in users)
                contexts.Add(new EnvContext(u, new Dictionary<string, string>(), "default"));
            Dictionary<string, string> machine;
            using (RegistryKey key = Registry.LocalMachine.OpenSubKey(MachineEnvironmentKey))
                machine = CacheVars(key, null);
            if (machine.Count > 0)
            {
                foreach (UserProfile u in users)
                    contexts.Add(new EnvContext(u, machine, @"registry:HKLM\" + MachineEnvironmentKey));
            }
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
                        Dictionary<string, string> env;
                        using (RegistryKey key = hive.Root.OpenSubKey("Environment"))
                            env = CacheVars(key, u);
                        if (env.Count > 0)
                            contexts.Add(new EnvContext(u, env, @"registry:HKU\" + u.Sid + @"\Environment"));
                    }
                }
                catch (Exception e)
                {
                    problems.Add(String.Format("environment of user {0} not read ({1}): its cache variables are not followed", u.Name, e.Message));
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
            if (own.Count > 0)
            {
                string me = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
                UserProfile mine = users.FirstOrDefault(u => String.Equals(NormPath(u.Home), NormPath(me), StringComparison.OrdinalIgnoreCase));
                if (mine != null)
                    contexts.Add(new EnvContext(mine, own, "env"));
            }
            return Dedupe(contexts);
        }

        private static List<EnvContext> Dedupe(List<EnvContext> contexts)
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
