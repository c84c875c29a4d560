# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# What the Windows modules share: the profiles' scope on this host (users, their environments, protected
# paths), resolved residue paths, Hugging Face caches, processes and Python environments. The logic lives in
# the C# utils; these functions turn module options into their calls and their results into module results.

#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinHost
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinProcs
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinFiles

Function Get-ResidueScope {
    <#
    .SYNOPSIS
    The selected profiles, the covered users, their environment contexts and the protected paths.
    Profiles come merged and validated from the controller (plugins/plugin_utils/_windows_action.py).
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)]$Module,
        [AllowEmptyCollection()][Object[]]$Targets = @(),
        [Switch]$NoProfilesWhenEmpty
    )

    $profiles = $Module.Params.profiles
    if ($null -eq $profiles) {
        $profiles = @{}
    }
    $selected = @()
    if ($Targets.Count -gt 0 -or -not $NoProfilesWhenEmpty) {
        $selected = @([ResiduePurge.WinHost]::SelectTargets($profiles, [System.Collections.ArrayList]@($Targets)))
    }
    $problems = [System.Collections.Generic.List[String]]@()
    $homes = [System.Collections.ArrayList]@($Module.Params.homes)
    $users = [ResiduePurge.WinHost]::ListUsers($homes, $Module.Params.users)
    $contexts = [ResiduePurge.WinHost]::UserEnvironments($users, $problems)
    # Paths given by whoever runs the module are checked against what is protected for that user: no other
    # user's environment can make a given path refused (or allowed).
    $runner = [ResiduePurge.WinHost]::Runner($users)
    if ($runner) {
        $protected = [ResiduePurge.WinHost]::ProtectedPaths($users, $contexts, $runner)
    }
    else {
        $protected = [ResiduePurge.WinHost]::ProtectedPaths($users, [ResiduePurge.EnvContext[]]@())
    }
    [PSCustomObject]@{
        Profiles = $profiles
        Selected = $selected
        Users = $users
        Contexts = $contexts
        Protected = $protected
        Problems = $problems
    }
}

Function Resolve-ResiduePath {
    <#
    .SYNOPSIS
    The selected profiles' path residues for every context, one entry per (target, path), each checked against
    the protected paths of its own context's user ([ResiduePurge.WinHost]::ResolveAll): a bad profile fails
    before anything is read; a path a user's environment makes refused is left out and named in the problems.
    #>
    [CmdletBinding()]
    param ([Parameter(Mandatory = $true)]$Scope)

    try {
        $resolved = [ResiduePurge.WinHost]::ResolveAll($Scope.Profiles, [String[]]@($Scope.Selected), $Scope.Users,
            $Scope.Contexts, $Scope.Problems)
    }
    catch [System.Management.Automation.MethodInvocationException] {
        throw $_.Exception.InnerException.Message
    }
    , @($resolved)
}

Function Find-HubCache {
    <#
    .SYNOPSIS
    Every Hugging Face hub cache the contexts imply, plus explicit ones, once per real location.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)]$Scope,
        [AllowEmptyCollection()][String[]]$Extra = @(),
        [String]$ExtraSource = 'option extra_hf_caches'
    )

    $found = [ordered]@{}
    $candidates = [System.Collections.Generic.List[Object]]@()
    foreach ($context in $Scope.Contexts) {
        foreach ($pair in [ResiduePurge.WinHost]::HubCacheLocations($context)) {
            $candidates.Add(@($pair[0], $pair[1], $context.User.Name))
        }
    }
    foreach ($path in $Extra) {
        $candidates.Add(@($path, $ExtraSource, $null))
    }
    foreach ($candidate in $candidates) {
        $path, $source, $claimant = $candidate
        if (-not (Test-Path -LiteralPath $path -PathType Container)) {
            if ($source -like 'option*') {
                $Scope.Problems.Add(("{0}: {1} is not a directory" -f ($source -replace '^option ', ''), $path))
            }
            continue
        }
        # The configured root may itself be a junction (a cache moved to a data disk); inside it nothing is followed.
        $real = [ResiduePurge.WinFiles]::RealPath($path)
        if (-not $real) {
            $real = $path
        }
        $key = $real.ToLowerInvariant()
        if (-not $found.Contains($key)) {
            $found[$key] = [ordered]@{
                path = $real
                user = [ResiduePurge.WinHost]::OwnerOf($real)
                source = $source
                sources = [System.Collections.Generic.List[String]]@($source)
                # the user whose context named it first (null: an option): whose rights it is acted on with when
                # it is in no profile (_WinActAs Actors.ForClaimed)
                claimant = $claimant
            }
        }
        else {
            $entry = $found[$key]
            if (-not $entry.sources.Contains($source)) {
                $entry.sources.Add($source)
            }
            if ($entry.source -eq 'default' -and $source -ne 'default') {
                $entry.source = $source
            }
        }
    }
    , @($found.Values)
}

Function Get-ResidueProcess {
    <#
    .SYNOPSIS
    Running processes: pid, ppid, name, exe, argv, creation time (the pid's identity) and owner.
    #>
    [CmdletBinding()]
    param ([Switch]$WithOwner)

    foreach ($p in Get-CimInstance -ClassName Win32_Process) {
        if ($p.ProcessId -in @(0, 4)) {
            continue  # System Idle Process and System: the kernel's
        }
        $created = 0.0
        if ($p.CreationDate) {
            $created = ($p.CreationDate.ToUniversalTime() - [DateTime]'1970-01-01').TotalSeconds
        }
        $user = $null
        if ($WithOwner) {
            $owner = Invoke-CimMethod -InputObject $p -MethodName GetOwner -ErrorAction SilentlyContinue
            if ($owner -and $owner.User) {
                $user = if ($owner.Domain) { "$($owner.Domain)\$($owner.User)" } else { $owner.User }
            }
        }
        [PSCustomObject]@{
            pid = [int]$p.ProcessId
            ppid = [int]$p.ParentProcessId
            name = $p.Name
            exe = $p.ExecutablePath
            cmdline = @([ResiduePurge.WinProcs]::SplitCommandLine($p.CommandLine))
            create_time = $created
            user = $user
        }
    }
}

Function Test-ProcessMatch {
    <#
    .SYNOPSIS
    How a process matches: 'name' (its name, argv[0]'s or its executable's base name, with or without .exe,
    equals one of names), 'cmdline' (a pattern is found in its arguments joined by spaces, with '\' read as '/'
    so the profiles' POSIX-style patterns apply), or $null.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)]$Process,
        [AllowEmptyCollection()][String[]]$Names = @(),
        [AllowEmptyCollection()][String[]]$Cmdline = @()
    )

    $candidates = @($Process.name)
    if ($Process.cmdline.Count -gt 0) {
        $candidates += [System.IO.Path]::GetFileName($Process.cmdline[0])
    }
    if ($Process.exe) {
        $candidates += [System.IO.Path]::GetFileName($Process.exe)
    }
    foreach ($candidate in $candidates) {
        if (-not $candidate) {
            continue
        }
        $bare = $candidate -replace '\.exe$', ''
        foreach ($name in $Names) {
            if ($candidate -eq $name -or $bare -eq $name) {
                return 'name'
            }
        }
    }
    $argv = @($Process.cmdline)
    if ($argv.Count -gt 0) {
        $argv[0] = ($argv[0] -replace '\\', '/') -replace '\.exe$', ''
    }
    $joined = $argv -join ' '
    foreach ($pattern in $Cmdline) {
        if ([Regex]::IsMatch($joined, $pattern)) {
            return 'cmdline'
        }
    }
    $null
}

Function Get-ProtectedProcessId {
    <#
    .SYNOPSIS
    The module's own process and its ancestors (the Ansible exec wrapper, the WinRM or SSH host process):
    never stopped, whatever matches.
    #>
    [CmdletBinding()]
    param ([Parameter(Mandatory = $true)]$Processes)

    $byPid = @{}
    foreach ($p in $Processes) {
        $byPid[$p.pid] = $p
    }
    $protected = @{}
    $current = $PID
    while ($current -and -not $protected.ContainsKey($current)) {
        $protected[$current] = $true
        if (-not $byPid.ContainsKey($current)) {
            break
        }
        $current = $byPid[$current].ppid
    }
    $protected
}

Function Find-PythonEnvironment {
    <#
    .SYNOPSIS
    Python environments of the host: venvs (pyvenv.cfg + Scripts\python.exe) and conda environments
    (conda-meta) under the search roots, interpreters registered under PEP 514 (HKLM and each covered user),
    the py launcher's, and each user's %APPDATA%\Python user site (handled with the interpreter of the same
    version). Symlinks and junctions are never followed while searching.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)]$Scope,
        [AllowEmptyCollection()][String[]]$SearchRoots = @(),
        [Int32]$MaxDepth = 4,
        [Bool]$IncludeSystem = $true,
        $Actors = $null,
        $Problems = $null
    )

    $envs = [ordered]@{}
    $add = {
        param ($Path, $Python, $Kind, $User, $UserBase)
        $key = "$Path|$UserBase".ToLowerInvariant()
        if (-not $envs.Contains($key)) {
            $envs[$key] = [PSCustomObject]@{
                path = $Path
                python = $Python
                kind = $Kind
                user = $User
                user_base = $UserBase
            }
        }
    }
    $roots = @($SearchRoots)
    if ($roots.Count -eq 0) {
        $roots = @($Scope.Users | ForEach-Object { $_.Home }) + @($env:ProgramData)
    }
    $roots = @($roots | Where-Object { Test-Path -LiteralPath $_ -PathType Container })
    # each part of the tree is searched with the rights of the user whose home it is (_WinActAs
    # Actors.FindEnvironments: a user whose rights cannot be had is not searched, and named in the problems); the
    # module's own rights without -Actors
    $acting = if ($Actors) { $Actors } else { [ResiduePurge.Actors]::new($Scope.Users, $false, $null, $null, $null) }
    $searchProblems = [System.Collections.Generic.List[String]]::new()
    foreach ($found in $acting.FindEnvironments([String[]]$roots, $MaxDepth, $searchProblems)) {
        $dir, $python, $kind = $found
        & $add $dir $python $kind ([ResiduePurge.WinHost]::OwnerOf($dir)) $null
    }
    foreach ($problem in $searchProblems) {
        if ($null -ne $Problems) { $Problems.Add($problem) } else { $Scope.Problems.Add($problem) }
    }
    $interpreters = [ordered]@{}
    if ($IncludeSystem) {
        $keys = @('HKLM:\SOFTWARE\Python\PythonCore', 'HKLM:\SOFTWARE\WOW6432Node\Python\PythonCore')
        foreach ($user in $Scope.Users) {
            if ($user.Sid) {
                $keys += "Registry::HKEY_USERS\$($user.Sid)\Software\Python\PythonCore"
            }
        }
        foreach ($key in $keys) {
            foreach ($version in Get-ChildItem -LiteralPath $key -ErrorAction SilentlyContinue) {
                $install = Get-ItemProperty -LiteralPath (Join-Path $version.PSPath 'InstallPath') -ErrorAction SilentlyContinue
                $exe = if ($install -and $install.ExecutablePath) { $install.ExecutablePath }
                elseif ($install -and $install.'(default)') { Join-Path $install.'(default)' 'python.exe' }
                if ($exe -and (Test-Path -LiteralPath $exe)) {
                    $interpreters[$exe.ToLowerInvariant()] = $exe
                }
            }
        }
        foreach ($exe in $interpreters.Values) {
            $prefix = Split-Path -Parent $exe
            & $add $prefix $exe 'system' ([ResiduePurge.WinHost]::OwnerOf($prefix)) $null
        }
    }
    # user sites: %APPDATA%\Python\PythonXY, read by the interpreter of version X.Y with APPDATA pointing there
    foreach ($user in $Scope.Users) {
        $base = Join-Path $user.Home 'AppData\Roaming\Python'
        foreach ($site in Get-ChildItem -LiteralPath $base -Directory -ErrorAction SilentlyContinue) {
            $version = [Regex]::Match($site.Name, '^Python(\d)(\d+)(-32)?$')
            if (-not $version.Success) {
                continue
            }
            $dll = "python{0}{1}.dll" -f $version.Groups[1].Value, $version.Groups[2].Value
            $match = $interpreters.Values | Where-Object {
                Test-Path -LiteralPath (Join-Path (Split-Path -Parent $_) $dll)
            } | Select-Object -First 1
            & $add $site.FullName $match 'user-site' $user.Name (Join-Path $user.Home 'AppData\Roaming')
        }
    }
    , @($envs.Values)
}

# Run in an environment's own interpreter: its distributions with what they require (markers evaluated there by
# pip's vendored packaging), whether they were installed on request, and who installed them.
$script:DistributionsScript = @'
import json, sys
try:
    from importlib import metadata
except ImportError:
    import importlib_metadata as metadata
try:
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name
except ImportError:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
out = []
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if not name:
        continue
    requires = []
    for text in dist.requires or []:
        try:
            req = Requirement(text)
        except Exception:
            continue
        # counted when active without extras or with any extra the distribution offers: pip does not record
        # which extras were installed, and counting more keeps more shared dependencies (the safe side)
        extras = [""] + list(dist.metadata.get_all("Provides-Extra") or [])
        try:
            active = req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras)
        except Exception:
            active = True
        if active:
            requires.append(canonicalize_name(req.name))
    out.append({"name": canonicalize_name(name), "version": dist.version, "requires": sorted(set(requires)),
                "requested": dist.read_text("REQUESTED") is not None,
                "installer": (dist.read_text("INSTALLER") or "").strip()})
json.dump(out, sys.stdout)
'@

Function Invoke-EnvironmentPython {
    <#
    .SYNOPSIS
    Run the environment's interpreter with arguments (and APPDATA pointing at a user site's base). With -Actor (a
    [ResiduePurge.ActingUser] that is not the module's own) the interpreter is started as that user, with the
    user's own token and environment (ActingUser.Start); a user whose rights cannot be had gets no process at
    all: ActAsFailed is thrown, and nothing is run with the module's own rights instead.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)]$Environment,
        [Parameter(Mandatory = $true)][String[]]$Arguments,
        $Actor = $null
    )

    $line = ($Arguments | ForEach-Object {
            if ($_ -match '[\s"]') { '"' + ($_ -replace '"', '\"') + '"' } else { $_ }
        }) -join ' '
    $extra = [System.Collections.Generic.Dictionary[String, String]]::new()
    $extra['PYTHONIOENCODING'] = 'utf-8'
    $extra['PIP_DISABLE_PIP_VERSION_CHECK'] = '1'
    if ($Environment.user_base) {
        $extra['APPDATA'] = $Environment.user_base
    }
    if ($Actor -and -not $Actor.IsSelf) {
        # throws (ActAsFailed, wrapped by PowerShell: Get-ErrorText unwraps it) when the user's rights cannot be had
        $run = $Actor.Start($Environment.python, $line, $Actor.User.Home, $extra)
        return [PSCustomObject]@{ rc = $run.ExitCode; stdout = $run.Stdout; stderr = $run.Stderr }
    }
    $info = [System.Diagnostics.ProcessStartInfo]::new($Environment.python)
    $info.UseShellExecute = $false
    $info.RedirectStandardOutput = $true
    $info.RedirectStandardError = $true
    $info.Arguments = $line
    foreach ($name in $extra.Keys) {
        $info.EnvironmentVariables[$name] = $extra[$name]
    }
    $proc = [System.Diagnostics.Process]::Start($info)
    $stderr = $proc.StandardError.ReadToEndAsync()
    $stdout = $proc.StandardOutput.ReadToEnd()
    $proc.WaitForExit()
    [PSCustomObject]@{ rc = $proc.ExitCode; stdout = $stdout; stderr = $stderr.Result }
}

Function Get-EnvironmentDistribution {
    <#
    .SYNOPSIS
    The environment's distributions as its own interpreter reports them; with -Actor run as that user
    (Invoke-EnvironmentPython).
    #>
    [CmdletBinding()]
    param ([Parameter(Mandatory = $true)]$Environment, $Actor = $null)

    $run = Invoke-EnvironmentPython -Environment $Environment -Actor $Actor -Arguments @('-I', '-c', $script:DistributionsScript)
    if ($Environment.user_base) {
        # -I drops the user site; a user site is read without it
        $run = Invoke-EnvironmentPython -Environment $Environment -Actor $Actor -Arguments @('-c', $script:DistributionsScript)
    }
    if ($run.rc -ne 0) {
        throw ("{0} failed ({1}): {2}" -f $Environment.python, $run.rc, ($run.stderr -split "`n" | Select-Object -Last 3) -join ' ')
    }
    $dists = @($run.stdout | ConvertFrom-Json)
    if ($Environment.user_base) {
        # only what lives in the user site: compare with what the interpreter sees without it
        $system = Invoke-EnvironmentPython -Environment ([PSCustomObject]@{ python = $Environment.python; user_base = $null }) -Actor $Actor -Arguments @('-I', '-c', $script:DistributionsScript)
        $systemNames = @(($system.stdout | ConvertFrom-Json) | ForEach-Object { "$($_.name)==$($_.version)" })
        $dists = @($dists | Where-Object { "$($_.name)==$($_.version)" -notin $systemNames })
    }
    , $dists
}

Function Get-SiteDistribution {
    <#
    .SYNOPSIS
    Name and version of the distributions in an environment's site-packages, from their *.dist-info and
    *.egg-info metadata, without running the interpreter. With -Actor (a [ResiduePurge.ActingUser]) each file is
    read with that user's rights (never through a link); without it with the module's own.
    #>
    [CmdletBinding()]
    param ([Parameter(Mandatory = $true)]$Environment, $Actor = $null)

    $site = if ($Environment.kind -eq 'user-site') { Join-Path $Environment.path 'site-packages' }
    else { Join-Path $Environment.path 'Lib\site-packages' }
    foreach ($dir in Get-ChildItem -LiteralPath $site -Directory -ErrorAction SilentlyContinue) {
        if ($dir.Name -notmatch '\.(dist|egg)-info$') {
            continue
        }
        $file = if ($dir.Name -like '*.dist-info') { 'METADATA' } else { 'PKG-INFO' }
        $name = $null
        $version = $null
        $path = Join-Path $dir.FullName $file
        $lines = if ($Actor) { @($Actor.ReadHead($path, 40, 65536)) }
        else { @(Get-Content -LiteralPath $path -TotalCount 40 -ErrorAction SilentlyContinue) }
        foreach ($line in $lines) {
            if (-not $name -and $line -match '^Name:\s*(.+)$') {
                $name = $Matches[1].Trim()
            }
            elseif (-not $version -and $line -match '^Version:\s*(.+)$') {
                $version = $Matches[1].Trim()
            }
            elseif ($line -eq '') {
                break
            }
        }
        if ($name) {
            [PSCustomObject]@{ name = (ConvertTo-NormalizedName -Name $name); version = $version }
        }
    }
}

Function Get-ErrorText {
    <#
    .SYNOPSIS
    The message of an error, without PowerShell's 'Exception calling "X" with "N" argument(s)' wrapping.
    #>
    [CmdletBinding()]
    param ([Parameter(Mandatory = $true)]$ErrorRecord)

    $e = $ErrorRecord.Exception
    while ($e -is [System.Management.Automation.MethodInvocationException] -and $e.InnerException) {
        $e = $e.InnerException
    }
    $e.Message
}

Function Get-ProcessLineage {
    <#
    .SYNOPSIS
    Each process's parent chain, nearest first, and the ancestor that started it (_procs.lineage and
    restarter_in: the nearest one created more than a second before it), keyed by pid.
    #>
    [CmdletBinding()]
    param ([Parameter(Mandatory = $true)][AllowEmptyCollection()][Object[]]$Processes)

    $rows = [System.Collections.Generic.List[ResiduePurge.ProcRow]]::new()
    foreach ($p in $Processes) {
        $row = [ResiduePurge.ProcRow]::new()
        $row.Pid = $p.pid
        $row.Ppid = $p.ppid
        $row.CreateTime = $p.create_time
        $row.Name = $p.name
        $rows.Add($row)
    }
    $table = [ResiduePurge.Stopper]::ByPid($rows)
    $result = @{}
    foreach ($row in $rows) {
        $by = [ResiduePurge.Stopper]::RestarterIn($row, $table)
        $result[$row.Pid] = [ordered]@{
            parents = @([ResiduePurge.Stopper]::Lineage($row, $table) | ForEach-Object { [ordered]@{ pid = $_.Pid; name = $_.Name } })
            restarted_by = if ($by) { [ordered]@{ pid = $by.Pid; name = $by.Name } } else { $null }
        }
    }
    $result
}

Function ConvertTo-NormalizedName {
    [CmdletBinding()]
    param ([Parameter(Mandatory = $true)][String]$Name)
    ($Name -replace '[-_.]+', '-').ToLowerInvariant()
}

$export_members = @{
    Function = 'Get-ResidueScope', 'Resolve-ResiduePath', 'Find-HubCache', 'Get-ResidueProcess', 'Test-ProcessMatch',
    'Get-ProtectedProcessId', 'Find-PythonEnvironment', 'Invoke-EnvironmentPython', 'Get-EnvironmentDistribution',
    'ConvertTo-NormalizedName', 'Get-SiteDistribution', 'Get-ErrorText', 'Get-ProcessLineage'
}
Export-ModuleMember @export_members
