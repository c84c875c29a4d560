// Copyright: residue.purge contributors
// GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
//
// A user's residue is acted on with that user's rights (docs/trust.md rule 4): the Windows side of
// _privileges.py. Where _privileges forks a child that drops to the user's uid, gid and groups, Windows has no
// fork: the module (SYSTEM, or an elevated administrator) obtains the user's own access token without a password
// (an S4U logon: LsaLogonUser with MSV1_0_S4U_LOGON for a local account, KERB_S4U_LOGON for a domain account),
// takes every privilege out of it and makes the Administrators group deny-only in it (CreateRestrictedToken), and
// runs that user's walk (sizing, backup reads, removal) on the calling thread while impersonating it
// (ImpersonateLoggedOnUser ... RevertToSelf). Every file the walk opens is then opened by Windows for that user:
// what their ACLs refuse them is refused, and named as a failure.
//
// Whose rights a path is acted on with (Whose, pure): the user whose profile holds it; else the module's own for a
// profile's system path (an absolute template) or a path given outside every profile; else the user whose
// (accepted) environment named it. The module's own account's residue, and every path when the module is not
// elevated, stay with the module's own rights, as before (the OS decides what an unprivileged run reaches).
//
// No token, no action: when a user's token cannot be had, or the impersonation is only identification-level
// (the caller lacks SeTcbPrivilege for the logon or SeImpersonatePrivilege for the impersonation), that user's
// residue is left as it was and each path is a failure naming why. It is never acted on with the module's own
// rights instead.
using Ansible.AccessToken;
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Security.AccessControl;
using System.Security.Principal;
using System.Text;
using ansible_collections.residue.purge.plugins.module_utils._WinHost;
using ansible_collections.residue.purge.plugins.module_utils._WinFiles;

//TypeAccelerator -Name ResiduePurge.Whose -TypeName Whose
//TypeAccelerator -Name ResiduePurge.ActingUser -TypeName ActingUser
//TypeAccelerator -Name ResiduePurge.Actors -TypeName Actors
//TypeAccelerator -Name ResiduePurge.ActAsFailed -TypeName ActAsFailed
//TypeAccelerator -Name ResiduePurge.ProcessRun -TypeName ProcessRun
//TypeAccelerator -Name ResiduePurge.PyEnvSearch -TypeName PyEnvSearch

namespace ansible_collections.residue.purge.plugins.module_utils._WinActAs
{
    /// <summary>The work for a user could not run with that user's rights (no token, or not an impersonation-level
    /// one): nothing of it was done, and it is not redone with the module's own rights.</summary>
    public class ActAsFailed : Exception
    {
        public ActAsFailed(string message) : base(message) { }
    }

    /// <summary>Whose rights a path is acted on with: pure decisions (no Windows call), run under Mono in the unit
    /// tests. null stands for the module's own rights.</summary>
    public static class Whose
    {
        // SECURITY_IMPERSONATION_LEVEL
        public const int Anonymous = 0;
        public const int Identification = 1;
        public const int Impersonation = 2;
        public const int Delegation = 3;

        private static bool IsDriveOrShareRoot(string norm)
        {
            return norm == @"\" || System.Text.RegularExpressions.Regex.IsMatch(norm, @"^[A-Za-z]:\\?$")
                || System.Text.RegularExpressions.Regex.IsMatch(norm, @"^\\\\[^\\]+\\[^\\]+\\?$");
        }

        /// <summary>_privileges.HomeIndex.owner: the user whose profile holds path (the deepest such profile), or
        /// null. A system account (SYSTEM, the Administrators, TrustedInstaller: an explicit home those own) and a
        /// profile that is a drive's or share's root hold nobody's residue. Compared by spelling, case-insensitively,
        /// after NormPath: the removal itself refuses a path whose final location differs from its spelling
        /// (WinFiles.RemoveTree's expected final path), so an alias cannot lead elsewhere.</summary>
        public static UserProfile HomeOwner(string path, IEnumerable<UserProfile> users)
        {
            if (String.IsNullOrEmpty(path))
                return null;
            string p = WinHost.NormPath(path).TrimEnd('\\');
            UserProfile best = null;
            int bestLength = -1;
            foreach (UserProfile u in users)
            {
                if (u == null || String.IsNullOrEmpty(u.Home) || Trust.IsTrustedOwner(u.Sid))
                    continue;
                string home = WinHost.NormPath(u.Home);
                if (IsDriveOrShareRoot(home))
                    continue;
                home = home.TrimEnd('\\');
                bool inside = String.Equals(p, home, StringComparison.OrdinalIgnoreCase)
                    || p.StartsWith(home + @"\", StringComparison.OrdinalIgnoreCase);
                if (inside && home.Length > bestLength)
                {
                    best = u;
                    bestLength = home.Length;
                }
            }
            return best;
        }

        /// <summary>_privileges.actor_of: whose rights path is acted on with. template: the profile's path template
        /// it was resolved from (null for a path given in the module's options); claimant: the name of the user
        /// whose context resolved it. The user whose profile holds it; else the module's own (null) for a
        /// profile's absolute system path or a given path outside every profile; else the claimant (null when
        /// the claimant is not among users or is a system account).</summary>
        public static UserProfile ActorOf(string path, string template, string claimant, IList<UserProfile> users)
        {
            UserProfile owner = HomeOwner(path, users);
            if (owner != null)
                return owner;
            if (template == null || WinHost.IsAbsolute(template) || claimant == null)
                return null;
            foreach (UserProfile u in users)
            {
                if (u != null && String.Equals(u.Name, claimant, StringComparison.OrdinalIgnoreCase) && !Trust.IsTrustedOwner(u.Sid))
                    return u;
            }
            return null;
        }

        /// <summary>_privileges.runner_for: who does an actor's work. The actor's own token when the module is
        /// elevated (SYSTEM or an elevated administrator) and the actor is someone else than the module's own
        /// account (self: the user whose profile is the module's; selfSid: the module's account's SID); otherwise
        /// the module's own rights (null): its own residue, and everything in an unprivileged run, where Windows
        /// decides what it reaches.</summary>
        public static UserProfile RunnerFor(UserProfile actor, bool elevated, UserProfile self, string selfSid)
        {
            if (actor == null || !elevated)
                return null;
            if (self != null && WinHost.SameUser(actor, self))
                return null;
            if (actor.Sid != null && selfSid != null && String.Equals(actor.Sid, selfSid, StringComparison.OrdinalIgnoreCase))
                return null;
            return actor;
        }

        /// <summary>Why a token at this impersonation level cannot act for the user (null when it can): file access
        /// under an identification-level token fails (ERROR_BAD_IMPERSONATION_LEVEL), so the walk would name every
        /// entry a failure; it is refused before anything is done. stage: which token (logon, impersonation).</summary>
        public static string LevelRefusal(int level, string user, string stage)
        {
            if (level == Impersonation || level == Delegation)
                return null;
            string name = level == Anonymous ? "anonymous" : level == Identification ? "identification" : "unknown (" + level + ")";
            string why = stage == "impersonation"
                ? "the module's account lacks SeImpersonatePrivilege, so Windows lowered the impersonation"
                : "the logon was made without SeTcbPrivilege (run the module as SYSTEM, or as an administrator that can use a SYSTEM process's token)";
            return String.Format("could not act as {0}: its {1} token is {2}-level, not impersonation-level: {3}", user, stage, name, why);
        }

        // The variables that name an account's own places: a process started as a user gets the user's, never the
        // module account's (SYSTEM's TEMP is C:\Windows\TEMP, its APPDATA the system profile's).
        private static readonly string[] AccountVariables = { "USERPROFILE", "APPDATA", "LOCALAPPDATA", "TEMP", "TMP",
            "HOMEDRIVE", "HOMEPATH", "HOMESHARE", "USERNAME", "USERDOMAIN", "USERDNSDOMAIN", "ONEDRIVE" };

        /// <summary>The environment of a process started as user (pure): the module's own (inherited), without the
        /// variables that name the module account's own places; the user's profile's instead (when the user has
        /// one), then extra (the caller's settings, such as APPDATA for a user site, win last).</summary>
        public static Dictionary<string, string> UserEnvironment(IDictionary<string, string> module, UserProfile user,
            IDictionary<string, string> extra)
        {
            Dictionary<string, string> env = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            if (module != null)
            {
                foreach (KeyValuePair<string, string> kv in module)
                {
                    if (!AccountVariables.Contains(kv.Key, StringComparer.OrdinalIgnoreCase))
                        env[kv.Key] = kv.Value;
                }
            }
            if (user != null && !String.IsNullOrEmpty(user.Name))
            {
                string[] parts = user.Name.Split(new char[] { '\\' }, 2);
                env["USERNAME"] = parts[parts.Length - 1];
                if (parts.Length == 2)
                    env["USERDOMAIN"] = parts[0];
            }
            if (user != null && !String.IsNullOrEmpty(user.Home))
            {
                string home = user.Home.TrimEnd('\\');
                env["USERPROFILE"] = home;
                env["APPDATA"] = home + @"\AppData\Roaming";
                env["LOCALAPPDATA"] = home + @"\AppData\Local";
                env["TEMP"] = env["TMP"] = home + @"\AppData\Local\Temp";
                if (home.Length >= 2 && home[1] == ':')
                {
                    env["HOMEDRIVE"] = home.Substring(0, 2);
                    env["HOMEPATH"] = home.Length > 2 ? home.Substring(2) : @"\";
                }
            }
            if (extra != null)
            {
                foreach (KeyValuePair<string, string> kv in extra)
                    env[kv.Key] = kv.Value;
            }
            return env;
        }

        /// <summary>A Windows environment block (CREATE_UNICODE_ENVIRONMENT): NAME=value strings sorted by name,
        /// case-insensitively, each ended by a NUL, the block by another.</summary>
        public static string EnvironmentBlock(IDictionary<string, string> env)
        {
            StringBuilder block = new StringBuilder();
            foreach (string key in env.Keys.OrderBy(k => k.ToUpperInvariant(), StringComparer.Ordinal))
            {
                if (String.IsNullOrEmpty(key) || key.IndexOf('=') > 0 || key.IndexOf('\0') >= 0 || (env[key] ?? "").IndexOf('\0') >= 0)
                    continue;
                block.Append(key).Append('=').Append(env[key] ?? "").Append('\0');
            }
            block.Append('\0');
            return block.ToString();
        }

        /// <summary>The failure text for a path left alone because its user's rights could not be had (the
        /// counterpart of _privileges.ChildFailed in a POSIX failure).</summary>
        public static string LeftAlone(string reason)
        {
            return reason + "; left as it was (a user's residue is never acted on with the module's own rights)";
        }
    }

    internal static class ActNative
    {
        [StructLayout(LayoutKind.Sequential)]
        public struct LSA_STRING
        {
            public UInt16 Length;
            public UInt16 MaximumLength;
            public IntPtr Buffer;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct UNICODE_STRING
        {
            public UInt16 Length;
            public UInt16 MaximumLength;
            public IntPtr Buffer;
        }

        // MSV1_0_S4U_LOGON and KERB_S4U_LOGON have the same layout: a submit type, flags, two UNICODE_STRINGs
        // (user and domain/realm) whose buffers follow the structure in the same allocation.
        [StructLayout(LayoutKind.Sequential)]
        public struct S4U_LOGON
        {
            public int MessageType;
            public UInt32 Flags;
            public UNICODE_STRING User;
            public UNICODE_STRING Domain;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct LUID
        {
            public UInt32 LowPart;
            public Int32 HighPart;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct TOKEN_SOURCE
        {
            [MarshalAs(UnmanagedType.ByValArray, SizeConst = 8)]
            public byte[] SourceName;
            public LUID SourceIdentifier;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct QUOTA_LIMITS
        {
            public IntPtr PagedPoolLimit;
            public IntPtr NonPagedPoolLimit;
            public IntPtr MinimumWorkingSetSize;
            public IntPtr MaximumWorkingSetSize;
            public IntPtr PagefileLimit;
            public Int64 TimeLimit;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct SID_AND_ATTRIBUTES
        {
            public IntPtr Sid;
            public UInt32 Attributes;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct TOKEN_PRIVILEGES_ONE
        {
            public UInt32 PrivilegeCount;
            public LUID Luid;
            public UInt32 Attributes;
        }

        public const int MsV1_0S4ULogon = 12;
        public const int KerbS4ULogon = 12;
        public const int LogonNetwork = 3;
        public const int LogonBatch = 4;
        public const UInt32 DISABLE_MAX_PRIVILEGE = 0x1;
        public const UInt32 TOKEN_QUERY = 0x0008;
        public const UInt32 SE_PRIVILEGE_ENABLED = 0x2;

        [DllImport("secur32.dll")]
        public static extern UInt32 LsaRegisterLogonProcess(ref LSA_STRING name, out IntPtr handle, out UInt32 mode);

        [DllImport("secur32.dll")]
        public static extern UInt32 LsaConnectUntrusted(out IntPtr handle);

        [DllImport("secur32.dll")]
        public static extern UInt32 LsaDeregisterLogonProcess(IntPtr handle);

        [DllImport("secur32.dll")]
        public static extern UInt32 LsaLookupAuthenticationPackage(IntPtr handle, ref LSA_STRING name, out UInt32 package);

        [DllImport("secur32.dll")]
        public static extern UInt32 LsaLogonUser(IntPtr handle, ref LSA_STRING origin, int logonType, UInt32 package,
            IntPtr authInfo, UInt32 authInfoLength, IntPtr localGroups, ref TOKEN_SOURCE source, out IntPtr profile,
            out UInt32 profileLength, out LUID logonId, out IntPtr token, out QUOTA_LIMITS quotas, out Int32 subStatus);

        [DllImport("secur32.dll")]
        public static extern UInt32 LsaFreeReturnBuffer(IntPtr buffer);

        [DllImport("advapi32.dll")]
        public static extern UInt32 LsaNtStatusToWinError(UInt32 status);

        [DllImport("advapi32.dll", SetLastError = true)]
        public static extern bool AllocateLocallyUniqueId(out LUID luid);

        [DllImport("advapi32.dll", SetLastError = true)]
        public static extern bool CreateRestrictedToken(SafeHandle existing, UInt32 flags, UInt32 disableCount,
            SID_AND_ATTRIBUTES[] disable, UInt32 deleteCount, IntPtr delete, UInt32 restrictCount, IntPtr restrict,
            out IntPtr token);

        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        public static extern bool LookupPrivilegeValueW(string system, string name, out LUID luid);

        [DllImport("advapi32.dll", SetLastError = true)]
        public static extern bool AdjustTokenPrivileges(SafeHandle token, bool disableAll, ref TOKEN_PRIVILEGES_ONE state,
            UInt32 length, IntPtr previous, IntPtr returnLength);

        [DllImport("advapi32.dll", SetLastError = true)]
        public static extern bool OpenThreadToken(IntPtr thread, UInt32 access, bool openAsSelf, out IntPtr token);

        [DllImport("kernel32.dll")]
        public static extern IntPtr GetCurrentThread();

        [DllImport("advapi32.dll", SetLastError = true)]
        public static extern bool ImpersonateLoggedOnUser(SafeHandle token);

        [DllImport("advapi32.dll", SetLastError = true)]
        public static extern bool RevertToSelf();

        public static string StatusText(UInt32 status)
        {
            return new System.ComponentModel.Win32Exception((int)LsaNtStatusToWinError(status)).Message;
        }

        public static LSA_STRING Ansi(string text, out IntPtr buffer)
        {
            buffer = Marshal.StringToHGlobalAnsi(text);
            LSA_STRING s = new LSA_STRING();
            s.Length = (UInt16)text.Length;
            s.MaximumLength = (UInt16)(text.Length + 1);
            s.Buffer = buffer;
            return s;
        }
    }

    /// <summary>What a process started as a user did: its exit code and its output (UTF-8).</summary>
    public sealed class ProcessRun
    {
        public int ExitCode;
        public string Stdout;
        public string Stderr;
    }

    internal static class ProcNative
    {
        [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
        public struct STARTUPINFO
        {
            public Int32 cb;
            public string lpReserved;
            public string lpDesktop;
            public string lpTitle;
            public Int32 dwX, dwY, dwXSize, dwYSize, dwXCountChars, dwYCountChars, dwFillAttribute;
            public UInt32 dwFlags;
            public Int16 wShowWindow, cbReserved2;
            public IntPtr lpReserved2, hStdInput, hStdOutput, hStdError;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct PROCESS_INFORMATION
        {
            public IntPtr hProcess, hThread;
            public Int32 dwProcessId, dwThreadId;
        }

        public const UInt32 STARTF_USESTDHANDLES = 0x100;
        public const UInt32 CREATE_UNICODE_ENVIRONMENT = 0x400;
        public const UInt32 CREATE_NO_WINDOW = 0x08000000;
        public const UInt32 INFINITE = 0xFFFFFFFF;
        // WINSTA_ALL_ACCESS, DESKTOP_ALL_ACCESS (with the standard rights), as Ansible.Become grants them
        public const int WindowStationAccess = 0x000F037F;
        public const int DesktopAccess = 0x000F01FF;

        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        public static extern bool CreateProcessWithTokenW(SafeHandle token, UInt32 logonFlags, string application,
            StringBuilder commandLine, UInt32 creationFlags, IntPtr environment, string directory,
            ref STARTUPINFO startup, out PROCESS_INFORMATION info);

        [DllImport("kernel32.dll", SetLastError = true)]
        public static extern UInt32 WaitForSingleObject(IntPtr handle, UInt32 milliseconds);

        [DllImport("kernel32.dll", SetLastError = true)]
        public static extern bool GetExitCodeProcess(IntPtr process, out UInt32 code);

        [DllImport("kernel32.dll", SetLastError = true)]
        public static extern bool CloseHandle(IntPtr handle);

        [DllImport("user32.dll", SetLastError = true)]
        public static extern IntPtr GetProcessWindowStation();

        [DllImport("user32.dll", SetLastError = true)]
        public static extern IntPtr GetThreadDesktop(UInt32 thread);

        [DllImport("kernel32.dll")]
        public static extern UInt32 GetCurrentThreadId();
    }

    /// <summary>The DACL of a window station or desktop (neither is a file: NativeObjectSecurity over its handle).</summary>
    internal sealed class WindowObjectSecurity : NativeObjectSecurity
    {
        public WindowObjectSecurity(SafeHandle handle)
            : base(false, ResourceType.WindowObject, handle, AccessControlSections.Access)
        {
        }

        public void Allow(SecurityIdentifier sid, int mask, SafeHandle handle)
        {
            AddAccessRule(new WindowObjectRule(sid, mask));
            Persist(handle, AccessControlSections.Access);
        }

        public override Type AccessRightType { get { return typeof(int); } }
        public override Type AccessRuleType { get { return typeof(WindowObjectRule); } }
        public override Type AuditRuleType { get { return typeof(AuditRule); } }

        public override AccessRule AccessRuleFactory(IdentityReference identity, int mask, bool isInherited,
            InheritanceFlags inheritance, PropagationFlags propagation, AccessControlType type)
        {
            return new WindowObjectRule(identity, mask);
        }

        public override AuditRule AuditRuleFactory(IdentityReference identity, int mask, bool isInherited,
            InheritanceFlags inheritance, PropagationFlags propagation, AuditFlags flags)
        {
            throw new NotSupportedException("no audit rules on a window object");
        }
    }

    internal sealed class WindowObjectRule : AccessRule
    {
        public WindowObjectRule(IdentityReference identity, int mask)
            : base(identity, mask, false, InheritanceFlags.None, PropagationFlags.None, AccessControlType.Allow)
        {
        }
    }

    /// <summary>Where Python environments are below a root (Find-PythonEnvironment's walk), never through a
    /// junction, symbolic link or other reparse point: a venv (pyvenv.cfg and Scripts\python.exe; not descended
    /// into) and a conda environment (a conda-meta directory and python.exe). A directory handOff says is someone
    /// else's to search (another user's home met while walking) is not entered but handed back with its depth.
    /// What cannot be listed is skipped. Runs with whatever rights the calling thread has (ActingUser.Run).</summary>
    public static class PyEnvSearch
    {
        public static void Walk(string root, int depth, int maxDepth, List<string[]> found,
            List<KeyValuePair<string, int>> handedOff, Func<string, bool> handOff)
        {
            Stack<KeyValuePair<string, int>> pending = new Stack<KeyValuePair<string, int>>();
            pending.Push(new KeyValuePair<string, int>(root, depth));
            while (pending.Count > 0)
            {
                KeyValuePair<string, int> item = pending.Pop();
                string dir = item.Key;
                string python = Path.Combine(Path.Combine(dir, "Scripts"), "python.exe");
                if (File.Exists(Path.Combine(dir, "pyvenv.cfg")) && File.Exists(python))
                {
                    found.Add(new string[] { dir, python, "venv" });
                    continue;
                }
                if (Directory.Exists(Path.Combine(dir, "conda-meta")) && File.Exists(Path.Combine(dir, "python.exe")))
                    found.Add(new string[] { dir, Path.Combine(dir, "python.exe"), "conda" });
                if (item.Value >= maxDepth)
                    continue;
                DirectoryInfo[] children;
                try
                {
                    children = new DirectoryInfo(dir).GetDirectories();
                }
                catch (Exception e)
                {
                    if (e is IOException || e is UnauthorizedAccessException || e is System.Security.SecurityException)
                        continue;
                    throw;
                }
                foreach (DirectoryInfo child in children)
                {
                    if ((child.Attributes & FileAttributes.ReparsePoint) != 0)
                        continue;
                    if (handOff != null && handOff(child.FullName))
                        handedOff.Add(new KeyValuePair<string, int>(child.FullName, item.Value + 1));
                    else
                        pending.Push(new KeyValuePair<string, int>(child.FullName, item.Value + 1));
                }
            }
        }
    }

    /// <summary>One user's rights to act with: the user's impersonation token, or why there is none. Self (User
    /// null) acts with the module's own rights. Every walk for the user goes through Run, on the calling thread.</summary>
    public sealed class ActingUser : IDisposable
    {
        private static readonly string SystemSid = "S-1-5-18";
        private static readonly string AdministratorsSid = "S-1-5-32-544";

        public readonly UserProfile User;
        public readonly string Error;
        private SafeNativeHandle token;

        private ActingUser(UserProfile user, SafeNativeHandle token, string error)
        {
            User = user;
            this.token = token;
            Error = error;
        }

        public static readonly ActingUser Self = new ActingUser(null, null, null);

        public bool IsSelf { get { return User == null; } }
        public bool Usable { get { return Error == null; } }
        public string Name { get { return User == null ? WindowsIdentity.GetCurrent().Name : User.Name; } }

        /// <summary>An ActingUser without a token (for callers that know why; and for the unit tests).</summary>
        public static ActingUser Refused(UserProfile user, string error)
        {
            return new ActingUser(user, null, error);
        }

        /// <summary>True when the module acts for other users: it runs as SYSTEM or with an elevated administrator's
        /// token (a UAC-filtered token is not: Administrators is deny-only in it).</summary>
        public static bool Elevated()
        {
            using (WindowsIdentity me = WindowsIdentity.GetCurrent())
            {
                if (me.User != null && me.User.Value == SystemSid)
                    return true;
                return new WindowsPrincipal(me).IsInRole(new SecurityIdentifier(AdministratorsSid));
            }
        }

        /// <summary>The user's token, by an S4U logon (no password), restricted and duplicated for impersonation;
        /// never throws: a user whose token cannot be had comes back with Error set.</summary>
        public static ActingUser For(UserProfile user)
        {
            string name = user.Name;
            try
            {
                SecurityIdentifier sid = null;
                if (!String.IsNullOrEmpty(user.Sid))
                    sid = new SecurityIdentifier(user.Sid);
                else if (user.Name != null && user.Name.Contains("\\"))
                    sid = (SecurityIdentifier)new NTAccount(user.Name).Translate(typeof(SecurityIdentifier));
                else
                    // an explicit home whose owner could not be read is named after its directory: never guess an
                    // account from that
                    return Refused(user, String.Format("could not act as {0}: the owner of {1} is not known", user.Name, user.Home));
                string account = ((NTAccount)sid.Translate(typeof(NTAccount))).Value;
                name = account;
                SafeNativeHandle logon = S4ULogon(account);
                using (logon)
                {
                    TokenStatistics stats = TokenUtil.GetTokenStatistics(logon);
                    if (stats.TokenType == TokenType.Impersonation)
                    {
                        string refusal = Whose.LevelRefusal((int)stats.ImpersonationLevel, name, "logon");
                        if (refusal != null)
                            return Refused(user, refusal);
                    }
                    if (!sid.Equals(TokenUtil.GetTokenUser(logon)))
                        return Refused(user, String.Format("could not act as {0}: the logon gave a token of {1}", name, TokenUtil.GetTokenUser(logon).Value));
                    SafeNativeHandle restricted = Restrict(logon);
                    using (restricted)
                    {
                        SafeNativeHandle imp;
                        try
                        {
                            imp = TokenUtil.DuplicateToken(restricted, TokenAccessLevels.Query | TokenAccessLevels.Impersonate | TokenAccessLevels.Duplicate,
                                SecurityImpersonationLevel.Impersonation, TokenType.Impersonation);
                        }
                        catch (Ansible.AccessToken.Win32Exception e)
                        {
                            return Refused(user, String.Format("could not act as {0}: its token cannot be made an impersonation token ({1})", name, e.Message));
                        }
                        string level = Whose.LevelRefusal((int)TokenUtil.GetTokenStatistics(imp).ImpersonationLevel, name, "logon");
                        if (level != null)
                        {
                            imp.Dispose();
                            return Refused(user, level);
                        }
                        return new ActingUser(user, imp, null);
                    }
                }
            }
            catch (ActAsFailed e)
            {
                return Refused(user, e.Message);
            }
            catch (Exception e)
            {
                return Refused(user, String.Format("could not act as {0} ({1})", name, e.Message));
            }
        }

        /// <summary>The logon token with no privilege left but SeChangeNotifyPrivilege (DISABLE_MAX_PRIVILEGE: no
        /// backup, restore or take-ownership privilege a member of Backup Operators would have) and the
        /// Administrators group deny-only: an administrator's residue is acted on with their rights as a user,
        /// as UAC's filtered token has them, not with their elevated ones.</summary>
        private static SafeNativeHandle Restrict(SafeNativeHandle logon)
        {
            byte[] admins = new byte[SecurityIdentifier.MaxBinaryLength];
            SecurityIdentifier sid = new SecurityIdentifier(AdministratorsSid);
            sid.GetBinaryForm(admins, 0);
            IntPtr sidPtr = Marshal.AllocHGlobal(sid.BinaryLength);
            try
            {
                Marshal.Copy(admins, 0, sidPtr, sid.BinaryLength);
                ActNative.SID_AND_ATTRIBUTES[] disable = new ActNative.SID_AND_ATTRIBUTES[1];
                disable[0].Sid = sidPtr;
                disable[0].Attributes = 0;
                IntPtr restricted;
                if (!ActNative.CreateRestrictedToken(logon, ActNative.DISABLE_MAX_PRIVILEGE, 1, disable, 0, IntPtr.Zero, 0, IntPtr.Zero, out restricted))
                    throw new ActAsFailed("CreateRestrictedToken: " + new System.ComponentModel.Win32Exception(Marshal.GetLastWin32Error()).Message);
                return new SafeNativeHandle(restricted);
            }
            finally
            {
                Marshal.FreeHGlobal(sidPtr);
            }
        }

        // The token TcbToken found, kept for the run (one search of the process list, not one per user).
        private static SafeNativeHandle tcbCache;
        private static bool tcbSearched;

        /// <summary>A token with SeTcbPrivilege enabled to impersonate while registering as a logon process: the
        /// module's own (when it runs as SYSTEM), else a SYSTEM process's (an elevated administrator can open one),
        /// duplicated; null when there is none (the logon is then untrusted, and its token identification-level).</summary>
        private static SafeNativeHandle TcbToken()
        {
            if (!tcbSearched)
            {
                tcbCache = FindTcbToken();
                tcbSearched = true;
            }
            return tcbCache;
        }

        private static SafeNativeHandle FindTcbToken()
        {
            List<SafeNativeHandle> candidates = new List<SafeNativeHandle>();
            TokenAccessLevels access = TokenAccessLevels.Query | TokenAccessLevels.Duplicate;
            try
            {
                candidates.Add(TokenUtil.OpenProcessToken(TokenUtil.OpenProcess(), access));
            }
            catch (Ansible.AccessToken.Win32Exception)
            {
            }
            foreach (SafeNativeHandle candidate in candidates.Concat(SystemTokens(access)))
            {
                using (candidate)
                {
                    try
                    {
                        if (!TokenUtil.GetTokenPrivileges(candidate).Any(p => p.Name == "SeTcbPrivilege"))
                            continue;
                        SafeNativeHandle dup = TokenUtil.DuplicateToken(candidate, TokenAccessLevels.MaximumAllowed,
                            SecurityImpersonationLevel.Impersonation, TokenType.Impersonation);
                        ActNative.TOKEN_PRIVILEGES_ONE state = new ActNative.TOKEN_PRIVILEGES_ONE();
                        state.PrivilegeCount = 1;
                        state.Attributes = ActNative.SE_PRIVILEGE_ENABLED;
                        if (!ActNative.LookupPrivilegeValueW(null, "SeTcbPrivilege", out state.Luid)
                            || !ActNative.AdjustTokenPrivileges(dup, false, ref state, (UInt32)Marshal.SizeOf(state), IntPtr.Zero, IntPtr.Zero)
                            || Marshal.GetLastWin32Error() != 0)
                        {
                            dup.Dispose();
                            continue;
                        }
                        return dup;
                    }
                    catch (Ansible.AccessToken.Win32Exception)
                    {
                        continue;
                    }
                }
            }
            return null;
        }

        private static IEnumerable<SafeNativeHandle> SystemTokens(TokenAccessLevels access)
        {
            // EnumerateUserTokens closes each token once the loop moves on: hand out duplicates
            foreach (SafeNativeHandle t in TokenUtil.EnumerateUserTokens(new SecurityIdentifier(SystemSid), access))
            {
                SafeNativeHandle dup = null;
                try
                {
                    dup = TokenUtil.DuplicateToken(t, TokenAccessLevels.MaximumAllowed, SecurityImpersonationLevel.Impersonation, TokenType.Impersonation);
                }
                catch (Ansible.AccessToken.Win32Exception)
                {
                }
                if (dup != null)
                    yield return dup;
            }
        }

        private static SafeNativeHandle S4ULogon(string account)
        {
            string[] parts = account.Split(new char[] { '\\' }, 2);
            if (parts.Length != 2)
                throw new ActAsFailed(String.Format("could not act as {0}: not a DOMAIN\\name account", account));
            string domain = parts[0];
            string user = parts[1];
            bool local = String.Equals(domain, Environment.MachineName, StringComparison.OrdinalIgnoreCase);
            string package = local ? "MICROSOFT_AUTHENTICATION_PACKAGE_V1_0" : "Kerberos";

            SafeNativeHandle tcb = TcbToken();
            bool impersonating = false;
            IntPtr lsa = IntPtr.Zero;
            IntPtr originBuffer = IntPtr.Zero, packageBuffer = IntPtr.Zero, auth = IntPtr.Zero;
            try
            {
                UInt32 status;
                if (tcb != null)
                {
                    if (!ActNative.ImpersonateLoggedOnUser(tcb))
                        throw new ActAsFailed(String.Format("could not act as {0}: impersonating SYSTEM for the logon failed ({1})",
                            account, new System.ComponentModel.Win32Exception(Marshal.GetLastWin32Error()).Message));
                    impersonating = true;
                    UInt32 mode;
                    ActNative.LSA_STRING processName = ActNative.Ansi("residue.purge", out originBuffer);
                    status = ActNative.LsaRegisterLogonProcess(ref processName, out lsa, out mode);
                    Marshal.FreeHGlobal(originBuffer);
                    originBuffer = IntPtr.Zero;
                    if (status != 0)
                        lsa = IntPtr.Zero;
                }
                if (lsa == IntPtr.Zero)
                {
                    // Untrusted: LsaLogonUser's S4U token is then identification-level, refused by the level check.
                    status = ActNative.LsaConnectUntrusted(out lsa);
                    if (status != 0)
                        throw new ActAsFailed(String.Format("could not act as {0}: LsaConnectUntrusted: {1}", account, ActNative.StatusText(status)));
                }
                ActNative.LSA_STRING packageName = ActNative.Ansi(package, out packageBuffer);
                UInt32 packageId;
                status = ActNative.LsaLookupAuthenticationPackage(lsa, ref packageName, out packageId);
                if (status != 0)
                    throw new ActAsFailed(String.Format("could not act as {0}: LsaLookupAuthenticationPackage({1}): {2}", account, package, ActNative.StatusText(status)));

                int head = Marshal.SizeOf(typeof(ActNative.S4U_LOGON));
                int userBytes = user.Length * 2, domainBytes = domain.Length * 2;
                int length = head + userBytes + domainBytes;
                auth = Marshal.AllocHGlobal(length);
                ActNative.S4U_LOGON logon = new ActNative.S4U_LOGON();
                logon.MessageType = local ? ActNative.MsV1_0S4ULogon : ActNative.KerbS4ULogon;
                logon.Flags = 0;
                logon.User.Length = logon.User.MaximumLength = (UInt16)userBytes;
                logon.User.Buffer = IntPtr.Add(auth, head);
                logon.Domain.Length = logon.Domain.MaximumLength = (UInt16)domainBytes;
                logon.Domain.Buffer = IntPtr.Add(auth, head + userBytes);
                Marshal.StructureToPtr(logon, auth, false);
                Marshal.Copy(user.ToCharArray(), 0, logon.User.Buffer, user.Length);
                Marshal.Copy(domain.ToCharArray(), 0, logon.Domain.Buffer, domain.Length);

                ActNative.TOKEN_SOURCE source = new ActNative.TOKEN_SOURCE();
                source.SourceName = new byte[8];
                System.Text.Encoding.ASCII.GetBytes("residue").CopyTo(source.SourceName, 0);
                if (!ActNative.AllocateLocallyUniqueId(out source.SourceIdentifier))
                    throw new ActAsFailed(String.Format("could not act as {0}: AllocateLocallyUniqueId: {1}", account, new System.ComponentModel.Win32Exception(Marshal.GetLastWin32Error()).Message));

                // A network logon first (every user may have one by default), then a batch logon (a host that
                // denies local accounts network logons).
                List<string> errors = new List<string>();
                foreach (int type in new int[] { ActNative.LogonNetwork, ActNative.LogonBatch })
                {
                    IntPtr profile, token;
                    UInt32 profileLength;
                    ActNative.LUID logonId;
                    ActNative.QUOTA_LIMITS quotas;
                    Int32 sub;
                    ActNative.LSA_STRING origin = ActNative.Ansi("residue.purge", out originBuffer);
                    status = ActNative.LsaLogonUser(lsa, ref origin, type, packageId, auth, (UInt32)length, IntPtr.Zero, ref source,
                        out profile, out profileLength, out logonId, out token, out quotas, out sub);
                    Marshal.FreeHGlobal(originBuffer);
                    originBuffer = IntPtr.Zero;
                    if (profile != IntPtr.Zero)
                        ActNative.LsaFreeReturnBuffer(profile);
                    if (status == 0)
                        return new SafeNativeHandle(token);
                    errors.Add(String.Format("{0} logon: {1}", type == ActNative.LogonNetwork ? "network" : "batch", ActNative.StatusText(status)));
                }
                throw new ActAsFailed(String.Format("could not act as {0}: LsaLogonUser ({1}) refused it: {2}", account,
                    local ? "MSV1_0_S4U_LOGON" : "KERB_S4U_LOGON", String.Join("; ", errors.ToArray())));
            }
            finally
            {
                if (auth != IntPtr.Zero)
                    Marshal.FreeHGlobal(auth);
                if (packageBuffer != IntPtr.Zero)
                    Marshal.FreeHGlobal(packageBuffer);
                if (originBuffer != IntPtr.Zero)
                    Marshal.FreeHGlobal(originBuffer);
                if (lsa != IntPtr.Zero)
                    ActNative.LsaDeregisterLogonProcess(lsa);
                if (impersonating && !ActNative.RevertToSelf())
                    throw new ActAsFailed("RevertToSelf failed after the logon: " + new System.ComponentModel.Win32Exception(Marshal.GetLastWin32Error()).Message);
            }
        }

        /// <summary>work() with this user's rights, on the calling thread: impersonating the user's token, checked
        /// (impersonation-level, the user's SID) before work runs, reverted after it in every case. With the
        /// module's own rights for Self. ActAsFailed when the rights cannot be had: work has not run.</summary>
        public T Run<T>(Func<T> work)
        {
            if (User == null)
                return work();
            if (Error != null)
                throw new ActAsFailed(Error);
            if (!ActNative.ImpersonateLoggedOnUser(token))
                throw new ActAsFailed(String.Format("could not act as {0}: ImpersonateLoggedOnUser: {1}", User.Name,
                    new System.ComponentModel.Win32Exception(Marshal.GetLastWin32Error()).Message));
            try
            {
                IntPtr raw;
                if (!ActNative.OpenThreadToken(ActNative.GetCurrentThread(), ActNative.TOKEN_QUERY, true, out raw))
                    throw new ActAsFailed(String.Format("could not act as {0}: the thread has no impersonation token ({1})", User.Name,
                        new System.ComponentModel.Win32Exception(Marshal.GetLastWin32Error()).Message));
                using (SafeNativeHandle thread = new SafeNativeHandle(raw))
                {
                    string refusal = Whose.LevelRefusal((int)TokenUtil.GetTokenStatistics(thread).ImpersonationLevel, User.Name, "impersonation");
                    if (refusal != null)
                        throw new ActAsFailed(refusal);
                    SecurityIdentifier who = TokenUtil.GetTokenUser(thread);
                    if (User.Sid != null && !String.Equals(who.Value, User.Sid, StringComparison.OrdinalIgnoreCase))
                        throw new ActAsFailed(String.Format("could not act as {0}: the thread acts as {1}", User.Name, who.Value));
                }
                return work();
            }
            finally
            {
                if (!ActNative.RevertToSelf())
                    throw new ActAsFailed("RevertToSelf failed: " + new System.ComponentModel.Win32Exception(Marshal.GetLastWin32Error()).Message);
            }
        }

        /// <summary>How many processes Start has asked Windows to create (the unit tests check that a user without
        /// a token never gets this far).</summary>
        public static int ProcessesStarted;

        /// <summary>application run as this user, as a process of their own: CreateProcessWithTokenW with a primary
        /// token duplicated from the user's restricted S4U token (no privileges, Administrators deny-only), the
        /// user's own environment (Whose.UserEnvironment: the module's, with the user's profile's places, then
        /// extra), in directory (null: the module's). The user's SID is given access to the module's window station
        /// and desktop first (a console process that cannot open them fails to start), as Ansible.Become does. No
        /// stdin; stdout and stderr are read to their end. ActAsFailed when the user's rights cannot be had or the
        /// process cannot be started: nothing was run, and it is not run with the module's own rights instead. For
        /// Self there is nothing to do here: the caller starts its process as it always has.</summary>
        public ProcessRun Start(string application, string arguments, string directory, IDictionary<string, string> extra)
        {
            if (User == null)
                throw new InvalidOperationException("Start is for a user's process; the module's own are started as before");
            if (Error != null)
                throw new ActAsFailed(Error);
            Dictionary<string, string> module = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
                module[(string)e.Key] = (string)e.Value;
            string block = Whose.EnvironmentBlock(Whose.UserEnvironment(module, User, extra));
            return StartNative(application, "\"" + application + "\" " + (arguments ?? ""), directory, block);
        }

        private ProcessRun StartNative(string application, string commandLine, string directory, string block)
        {
            System.Threading.Interlocked.Increment(ref ProcessesStarted);
            SecurityIdentifier sid;
            try
            {
                sid = TokenUtil.GetTokenUser(token);
                foreach (KeyValuePair<IntPtr, int> target in new KeyValuePair<IntPtr, int>[] {
                    new KeyValuePair<IntPtr, int>(ProcNative.GetProcessWindowStation(), ProcNative.WindowStationAccess),
                    new KeyValuePair<IntPtr, int>(ProcNative.GetThreadDesktop(ProcNative.GetCurrentThreadId()), ProcNative.DesktopAccess) })
                {
                    // handles of the process's own window station and the thread's desktop: not to be closed
                    using (SafeHandle handle = new Microsoft.Win32.SafeHandles.SafeWaitHandle(target.Key, false))
                        new WindowObjectSecurity(handle).Allow(sid, target.Value, handle);
                }
            }
            catch (Exception e)
            {
                throw new ActAsFailed(String.Format("could not act as {0}: access to the window station and desktop: {1}", User.Name, e.Message));
            }
            SafeNativeHandle primary;
            try
            {
                primary = TokenUtil.DuplicateToken(token, TokenAccessLevels.Query | TokenAccessLevels.Duplicate | TokenAccessLevels.AssignPrimary
                    | TokenAccessLevels.AdjustDefault | TokenAccessLevels.AdjustSessionId, SecurityImpersonationLevel.Impersonation, TokenType.Primary);
            }
            catch (Ansible.AccessToken.Win32Exception e)
            {
                throw new ActAsFailed(String.Format("could not act as {0}: its token cannot be made a primary token ({1})", User.Name, e.Message));
            }
            using (primary)
            using (System.IO.Pipes.AnonymousPipeServerStream stdout = new System.IO.Pipes.AnonymousPipeServerStream(System.IO.Pipes.PipeDirection.In, HandleInheritability.Inheritable))
            using (System.IO.Pipes.AnonymousPipeServerStream stderr = new System.IO.Pipes.AnonymousPipeServerStream(System.IO.Pipes.PipeDirection.In, HandleInheritability.Inheritable))
            using (System.IO.Pipes.AnonymousPipeServerStream stdin = new System.IO.Pipes.AnonymousPipeServerStream(System.IO.Pipes.PipeDirection.Out, HandleInheritability.Inheritable))
            {
                ProcNative.STARTUPINFO startup = new ProcNative.STARTUPINFO();
                startup.cb = Marshal.SizeOf(typeof(ProcNative.STARTUPINFO));
                startup.dwFlags = ProcNative.STARTF_USESTDHANDLES;
                startup.hStdInput = stdin.ClientSafePipeHandle.DangerousGetHandle();
                startup.hStdOutput = stdout.ClientSafePipeHandle.DangerousGetHandle();
                startup.hStdError = stderr.ClientSafePipeHandle.DangerousGetHandle();
                ProcNative.PROCESS_INFORMATION info;
                IntPtr env = Marshal.StringToHGlobalUni(block);
                bool started;
                int error;
                try
                {
                    started = ProcNative.CreateProcessWithTokenW(primary, 0, application, new StringBuilder(commandLine),
                        ProcNative.CREATE_UNICODE_ENVIRONMENT | ProcNative.CREATE_NO_WINDOW, env, directory, ref startup, out info);
                    error = Marshal.GetLastWin32Error();
                }
                finally
                {
                    Marshal.FreeHGlobal(env);
                    // the child has its copies: ours closed, so that reading ends when the child ends
                    stdout.DisposeLocalCopyOfClientHandle();
                    stderr.DisposeLocalCopyOfClientHandle();
                    stdin.DisposeLocalCopyOfClientHandle();
                }
                if (!started)
                    throw new ActAsFailed(String.Format("could not act as {0}: CreateProcessWithTokenW: {1}", User.Name,
                        new System.ComponentModel.Win32Exception(error).Message));
                try
                {
                    stdin.Dispose();
                    ProcNative.CloseHandle(info.hThread);
                    System.Threading.Tasks.Task<string> err = new StreamReader(stderr, new UTF8Encoding(false)).ReadToEndAsync();
                    ProcessRun run = new ProcessRun();
                    run.Stdout = new StreamReader(stdout, new UTF8Encoding(false)).ReadToEnd();
                    run.Stderr = err.Result;
                    ProcNative.WaitForSingleObject(info.hProcess, ProcNative.INFINITE);
                    UInt32 code;
                    if (!ProcNative.GetExitCodeProcess(info.hProcess, out code))
                        throw new ActAsFailed(String.Format("{0} (as {1}): its exit code cannot be read", application, User.Name));
                    run.ExitCode = unchecked((int)code);
                    return run;
                }
                finally
                {
                    ProcNative.CloseHandle(info.hProcess);
                }
            }
        }

        /// <summary>WinFiles.RemoveTree with this user's rights; a user whose rights cannot be had gets path as a
        /// failure and nothing is touched.</summary>
        public RemovalResult RemoveTree(string path, string expectedFinalPath, RemoveOptions options)
        {
            try
            {
                return Run(() => WinFiles.RemoveTree(path, expectedFinalPath, options));
            }
            catch (ActAsFailed e)
            {
                RemovalResult result = new RemovalResult();
                result.Failures.Add(new string[] { path, Whose.LeftAlone(e.Message) });
                return result;
            }
        }

        /// <summary>WinFiles.Measure with this user's rights; null (and the reason in problems) when they cannot
        /// be had: the path is not sized, rather than sized with the module's rights.</summary>
        public TreeUsage Measure(string path, bool collectFiles, List<string> problems)
        {
            try
            {
                return Run(() => WinFiles.Measure(path, collectFiles));
            }
            catch (ActAsFailed e)
            {
                problems.Add(String.Format("{0}: not sized: {1}", path, e.Message));
                return null;
            }
        }

        /// <summary>The first lines of a small metadata file (a distribution's METADATA or PKG-INFO) read with this
        /// user's rights: a METADATA the user made a link to a file only the administrators may read is refused to
        /// them, so it lists nothing. null when it cannot be read or the user's rights cannot be had.</summary>
        public List<string> ReadHead(string path, int maxLines, int maxBytes)
        {
            try
            {
                return Run(() => Head(path, maxLines, maxBytes));
            }
            catch (ActAsFailed)
            {
                return null;
            }
        }

        /// <summary>At most maxLines lines of the first maxBytes bytes of path (UTF-8), or null: missing, unreadable,
        /// or a junction, symbolic link or other reparse point (never followed).</summary>
        public static List<string> Head(string path, int maxLines, int maxBytes)
        {
            try
            {
                FileInfo info = new FileInfo(path);
                if (!info.Exists || (info.Attributes & FileAttributes.ReparsePoint) != 0)
                    return null;
                using (FileStream stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
                {
                    byte[] buffer = new byte[maxBytes];
                    int length = 0, read;
                    while (length < maxBytes && (read = stream.Read(buffer, length, maxBytes - length)) > 0)
                        length += read;
                    string text = new UTF8Encoding(false).GetString(buffer, 0, length);
                    return text.Split('\n').Select(line => line.TrimEnd('\r')).Take(maxLines).ToList();
                }
            }
            catch (IOException)
            {
                return null;
            }
            catch (UnauthorizedAccessException)
            {
                return null;
            }
        }

        public void Dispose()
        {
            if (token != null)
            {
                token.Dispose();
                token = null;
            }
        }
    }

    /// <summary>The ActingUser of each path of a run: Whose decides, one token per user (obtained when first
    /// needed, reused, disposed with this).</summary>
    public sealed class Actors : IDisposable
    {
        private readonly List<UserProfile> users;
        private readonly UserProfile self;
        private readonly string selfSid;
        private readonly bool elevated;
        private readonly Func<UserProfile, ActingUser> obtain;
        private readonly Dictionary<string, ActingUser> cache = new Dictionary<string, ActingUser>(StringComparer.OrdinalIgnoreCase);

        public Actors(List<UserProfile> users)
            : this(WithSids(users), ActingUser.Elevated(), WinHost.Runner(users), WindowsIdentity.GetCurrent().User.Value, ActingUser.For)
        {
        }

        /// <summary>users, those without a SID (explicit homes: named after the home's owner) given the SID of that
        /// owner, so that Whose knows a home of SYSTEM, the Administrators or TrustedInstaller (nobody's residue).</summary>
        private static List<UserProfile> WithSids(List<UserProfile> users)
        {
            List<UserProfile> result = new List<UserProfile>();
            foreach (UserProfile u in users)
            {
                string sid = u.Sid;
                if (sid == null && u.Name != null && u.Name.Contains("\\"))
                {
                    try
                    {
                        sid = ((SecurityIdentifier)new NTAccount(u.Name).Translate(typeof(SecurityIdentifier))).Value;
                    }
                    catch (Exception)
                    {
                        sid = null;
                    }
                }
                result.Add(sid == u.Sid ? u : new UserProfile(u.Name, sid, u.Home));
            }
            return result;
        }

        public Actors(List<UserProfile> users, bool elevated, UserProfile self, string selfSid, Func<UserProfile, ActingUser> obtain)
        {
            this.users = users;
            this.elevated = elevated;
            this.self = self;
            this.selfSid = selfSid;
            this.obtain = obtain;
        }

        public bool Elevated { get { return elevated; } }

        public ActingUser Of(UserProfile actor)
        {
            UserProfile runner = Whose.RunnerFor(actor, elevated, self, selfSid);
            if (runner == null)
                return ActingUser.Self;
            string key = (runner.Sid ?? "") + "\0" + runner.Name;
            ActingUser acting;
            if (!cache.TryGetValue(key, out acting))
                cache[key] = acting = obtain(runner);
            return acting;
        }

        /// <summary>For a path resolved from a profile (ResolvedPath: its template and the user of its context).</summary>
        public ActingUser ForResolved(ResolvedPath resolved)
        {
            return Of(Whose.ActorOf(resolved.Path, resolved.Template, resolved.User, users));
        }

        /// <summary>For a location a user's context named (a hub cache from their environment or defaults): the
        /// user whose profile holds it, else that user (claimant; null: the module's own).</summary>
        public ActingUser ForClaimed(string path, string claimant)
        {
            return Of(Whose.ActorOf(path, claimant == null ? null : "{claimed}", claimant, users));
        }

        /// <summary>For a Python environment (win_pip_remove, discover): the user whose profile holds it, else its
        /// owner (owner: the account that owns its directory, read by name) when that is one of the users; else the
        /// module's own (an interpreter installed by an administrator, in Program Files).</summary>
        public ActingUser ForEnvironment(string path, string owner)
        {
            return ForClaimed(path, owner);
        }

        /// <summary>The Python environments below roots ([path, python, kind]), each part of the tree searched with
        /// the rights of the user whose profile holds it (ForPath): a root in a user's profile as that user, another
        /// user's home met while walking handed over to that user's search (decided without a logon: RunnerFor of
        /// the home's user), the rest with the module's own. A user whose rights cannot be had is not searched
        /// (nor with the module's rights): one problem names the directory and why.</summary>
        public List<string[]> FindEnvironments(IEnumerable<string> roots, int maxDepth, List<string> problems)
        {
            List<string[]> found = new List<string[]>();
            Queue<KeyValuePair<string, int>> pending = new Queue<KeyValuePair<string, int>>(
                roots.Select(r => new KeyValuePair<string, int>(r, 0)));
            HashSet<string> seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            while (pending.Count > 0)
            {
                KeyValuePair<string, int> item = pending.Dequeue();
                if (!seen.Add(WinHost.NormPath(item.Key).TrimEnd('\\')))
                    continue;
                UserProfile searcher = Whose.RunnerFor(Whose.HomeOwner(item.Key, users), elevated, self, selfSid);
                Func<string, bool> handOff = delegate (string child)
                {
                    UserProfile owner = Whose.HomeOwner(child, users);
                    if (owner == null || !String.Equals(WinHost.NormPath(owner.Home).TrimEnd('\\'), WinHost.NormPath(child).TrimEnd('\\'), StringComparison.OrdinalIgnoreCase))
                        return false;  // not a home itself: the walk goes on (a deeper home is met when reached)
                    UserProfile runner = Whose.RunnerFor(owner, elevated, self, selfSid);
                    return !(runner == searcher || (runner != null && searcher != null && WinHost.SameUser(runner, searcher)));
                };
                List<KeyValuePair<string, int>> handedOff = new List<KeyValuePair<string, int>>();
                try
                {
                    ForPath(item.Key).Run(() =>
                    {
                        PyEnvSearch.Walk(item.Key, item.Value, maxDepth, found, handedOff, handOff);
                        return true;
                    });
                }
                catch (ActAsFailed e)
                {
                    problems.Add(String.Format("{0}: not searched for Python environments: {1}", item.Key, e.Message));
                }
                foreach (KeyValuePair<string, int> h in handedOff)
                    pending.Enqueue(h);
            }
            return found;
        }

        /// <summary>For a path given in the module's options, or found (a cache, an environment): its profile's user.</summary>
        public ActingUser ForPath(string path)
        {
            return Of(Whose.ActorOf(path, null, null, users));
        }

        public void Dispose()
        {
            foreach (ActingUser a in cache.Values)
                a.Dispose();
            cache.Clear();
        }
    }
}
