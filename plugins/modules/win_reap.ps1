#!powershell

# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinHost
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinFiles
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinProcs
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._RestartManager
#AnsibleRequires -PowerShell ansible_collections.residue.purge.plugins.module_utils._WinResidue

$spec = @{
    options = @{
        targets = @{ type = 'list'; elements = 'str'; default = @() }
        profiles = @{ type = 'dict'; default = @{} }
        homes = @{ type = 'list'; elements = 'path'; default = @() }
        users = @{ type = 'raw'; default = 'all' }
        names = @{ type = 'list'; elements = 'str'; default = @() }
        cmdline = @{ type = 'list'; elements = 'str'; default = @() }
        holding = @{ type = 'list'; elements = 'path'; default = @() }
        signal = @{ type = 'str'; default = 'TERM' }
        grace = @{ type = 'float'; default = 10 }
        kill_after_grace = @{ type = 'bool'; default = $true }
        respawn_window = @{ type = 'float'; default = 5 }
        tree = @{ type = 'bool'; default = $true }
    }
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$maxRounds = 3
# Never stopped, whatever matches: the session manager, the service control manager, logon and security.
$systemNames = @('System', 'Registry', 'smss.exe', 'csrss.exe', 'wininit.exe', 'services.exe', 'lsass.exe',
    'winlogon.exe', 'svchost.exe', 'explorer.exe', 'sshd.exe', 'wsmprovhost.exe', 'dwm.exe', 'fontdrvhost.exe')

try {
    $direct = $module.Params.names.Count + $module.Params.cmdline.Count + $module.Params.holding.Count
    $targets = $module.Params.targets
    $scope = Get-ResidueScope -Module $module -Targets $targets -NoProfilesWhenEmpty:($direct -gt 0)
    foreach ($pattern in $module.Params.cmdline) {
        [void][Regex]::new($pattern)
    }
    $holding = [System.Collections.Generic.List[String]]@()
    foreach ($root in $module.Params.holding) {
        if (-not [ResiduePurge.WinHost]::IsAbsolute($root) -or $root -match '^[A-Za-z]:[\\/]?$') {
            throw "holding: '$root' must be an absolute path below a drive's root (a whole drive would match every process)"
        }
        $holding.Add([ResiduePurge.WinHost]::NormPath($root))
    }
    $signal = "$($module.Params.signal)".ToUpperInvariant() -replace '^SIG', ''
    $kill = switch ($signal) {
        { $_ -in @('TERM', 'INT', 'HUP', 'QUIT', '15', '2', '1', '3') } { $false; break }
        { $_ -in @('KILL', '9') } { $true; break }
        default { throw "signal: '$($module.Params.signal)' is not one of TERM, INT, HUP, QUIT, KILL (on Windows TERM asks the windows to close, KILL terminates)" }
    }
    $grace = [double]$module.Params.grace
    if ($grace -lt 0 -or $module.Params.respawn_window -lt 0) {
        throw "grace and respawn_window cannot be negative"
    }
}
catch {
    $module.FailJson((Get-ErrorText -ErrorRecord $_))
}

$problems = [System.Collections.Generic.List[String]]@($scope.Problems)
$wantedUsers = $null
if ($module.Params.homes.Count -gt 0 -or "$($module.Params.users)" -ne 'all') {
    $wantedUsers = @($scope.Users | ForEach-Object { $_.Name })
}

$matchers = [System.Collections.Generic.List[Object]]@()
foreach ($name in $scope.Selected) {
    $matchers.Add(@($name, [ResiduePurge.WinHost]::Field($scope.Profiles[$name], 'processes', 'names'),
            [ResiduePurge.WinHost]::Field($scope.Profiles[$name], 'processes', 'cmdline')))
}

$owners = @{}
Function Get-Owner($p) {
    $key = "$($p.pid)@$($p.create_time)"
    if (-not $owners.ContainsKey($key)) {
        $o = Get-CimInstance -ClassName Win32_Process -Filter "ProcessId = $($p.pid)" -ErrorAction SilentlyContinue |
            Invoke-CimMethod -MethodName GetOwner -ErrorAction SilentlyContinue
        $owners[$key] = if ($o -and $o.User) { if ($o.Domain) { "$($o.Domain)\$($o.User)" } else { $o.User } } else { $null }
    }
    $owners[$key]
}

Function ConvertTo-Entry($p, $matchedBy, $targetNames) {
    [ordered]@{
        pid = $p.pid
        ppid = $p.ppid
        name = $p.name
        user = Get-Owner $p
        cmdline = @($p.cmdline)
        create_time = $p.create_time
        matched_by = $matchedBy
        targets = @($targetNames)
    }
}

Function Find-Target($processes) {
    # the processes that match now: (process, matched_by, targets)
    $heldBy = @{}
    if ($holding.Count -gt 0) {
        foreach ($root in $holding) {
            if (-not (Test-Path -LiteralPath $root)) {
                continue
            }
            $files = [ResiduePurge.WinFiles]::Measure($root, $true).FilePaths
            try {
                foreach ($h in [ResiduePurge.RestartManager]::Holders($files)) {
                    $heldBy["$($h.Pid)"] = @($h.StartTime, $root)
                }
            }
            catch {
                $problems.Add(("holding {0}: the Restart Manager could not be asked: {1}" -f $root, (Get-ErrorText -ErrorRecord $_)))
            }
        }
    }
    foreach ($p in $processes) {
        $by = $null
        $names = [System.Collections.Generic.List[String]]@()
        foreach ($m in $matchers) {
            $how = Test-ProcessMatch -Process $p -Names $m[1] -Cmdline $m[2]
            if ($how) {
                $names.Add($m[0])
                if (-not $by) {
                    $by = $how
                }
            }
        }
        if (-not $by) {
            $by = Test-ProcessMatch -Process $p -Names $module.Params.names -Cmdline $module.Params.cmdline
        }
        if (-not $by -and $heldBy.ContainsKey("$($p.pid)")) {
            $held = $heldBy["$($p.pid)"]
            if ([Math]::Abs($held[0] - $p.create_time) -lt 0.001) {
                $by = "holding:$($held[1])"
            }
        }
        if (-not $by) {
            continue
        }
        if ($null -ne $wantedUsers) {
            $owner = Get-Owner $p
            $short = if ($owner) { $owner.Split('\')[-1] } else { $null }
            if (-not ($wantedUsers | Where-Object { $_ -eq $owner -or $_.Split('\')[-1] -eq $short })) {
                continue
            }
        }
        , @($p, $by, $names)
    }
}

Function ConvertTo-ProcRow($p, $matchedBy, $targetNames) {
    $row = [ResiduePurge.ProcRow]::new()
    $row.Pid = $p.pid
    $row.Ppid = $p.ppid
    $row.CreateTime = $p.create_time
    $row.Name = $p.name
    $row.Cmdline = [String[]]@($p.cmdline)
    $row.MatchedBy = $matchedBy
    $row.Targets = [System.Collections.Generic.List[String]]@($targetNames)
    $row.Source = $p
    $row
}

Function Get-ProcRow {
    # every process running now, or (-Matching) those that match the selection now
    param ([Switch]$Matching)

    $rows = [System.Collections.Generic.List[ResiduePurge.ProcRow]]::new()
    $now = @(Get-ResidueProcess)
    if ($Matching) {
        foreach ($item in @(Find-Target $now)) {
            $rows.Add((ConvertTo-ProcRow $item[0] $item[1] $item[2]))
        }
    }
    else {
        foreach ($p in $now) {
            $rows.Add((ConvertTo-ProcRow $p $null @()))
        }
    }
    , $rows
}

Function ConvertFrom-StopEntry($e) {
    $entry = ConvertTo-Entry $e.Proc.Source $e.Proc.MatchedBy $e.Proc.Targets
    if ($e.Outcome -eq 'spared') {
        $entry.reason = $e.Reason
        return $entry
    }
    $entry.signal = $e.Signal
    $entry.outcome = $e.Outcome
    if ($e.Error) {
        $entry.error = $e.Error
    }
    if ($e.Respawn) {
        $entry.parents = @($e.Parents | ForEach-Object { [ordered]@{ pid = $_.Pid; name = $_.Name } })
        $entry.restarted_by = if ($e.RestartedBy) { [ordered]@{ pid = $e.RestartedBy.Pid; name = $e.RestartedBy.Name } } else { $null }
    }
    $entry
}

# The rounds (_WinProcs.Stopper, the Windows side of _procs._Stopper): close or terminate everything matched at
# once, wait up to grace for all of it together, terminate what is left; then, once the last of them is gone,
# watch respawn_window seconds (not capped by grace) for what comes back and stop it, with tree together with the
# ancestor that restarted it, in the next round; after the last of at most three rounds, match once more: what
# runs then is a survivor with outcome respawned.
$processes = @(Get-ResidueProcess)
$processHost = [ResiduePurge.WindowsProcessHost]::new()
$processHost.TableSource = { Get-ProcRow }
$processHost.RematchSource = { Get-ProcRow -Matching }
$processHost.BeforeSignal = { param($row) $null = Get-Owner $row.Source }  # its owner, while it still runs
$stopper = [ResiduePurge.Stopper]::new($processHost)
$stopper.Kill = $kill
$stopper.Grace = $grace
$stopper.KillAfterGrace = $module.Params.kill_after_grace
$stopper.Tree = $module.Params.tree
$stopper.MaxRounds = $maxRounds
$stopper.RespawnWindow = [double]$module.Params.respawn_window
foreach ($id in (Get-ProtectedProcessId -Processes $processes).Keys) {
    [void]$stopper.Protected.Add([int]$id)
}
foreach ($n in $systemNames) {
    [void]$stopper.SystemNames.Add($n)
}

$matched = [System.Collections.Generic.List[Object]]@()
$first = [System.Collections.Generic.List[ResiduePurge.ProcRow]]::new()
foreach ($item in @(Find-Target $processes)) {
    $matched.Add((ConvertTo-Entry $item[0] $item[1] $item[2]))
    $first.Add((ConvertTo-ProcRow $item[0] $item[1] $item[2]))
}
try {
    if ($module.CheckMode) {
        $stopper.Plan($first)
    }
    else {
        $stopper.Run($first)
    }
}
catch {
    $module.FailJson((Get-ErrorText -ErrorRecord $_))
}
$terminated = @($stopper.Terminated | ForEach-Object { ConvertFrom-StopEntry $_ })
$survivors = @($stopper.Survivors | ForEach-Object { ConvertFrom-StopEntry $_ })
$spared = @($stopper.Spared | ForEach-Object { ConvertFrom-StopEntry $_ })

foreach ($problem in $problems) {
    $module.Warn($problem)
}
$module.Result.changed = $terminated.Count -gt 0
$module.Result.matched = @($matched)
$module.Result.terminated = @($terminated)
$module.Result.survivors = @($survivors)
$module.Result.spared = @($spared)
$module.Result.problems = @($problems)
$module.Diff.before = ($matched | ForEach-Object { "{0} {1} {2} {3}`n" -f $_.pid, $_.user, $_.name, ($_.cmdline -join ' ') }) -join ''
$module.Diff.after = ($survivors | ForEach-Object { "{0} {1} {2} {3}`n" -f $_.pid, $_.user, $_.name, ($_.cmdline -join ' ') }) -join ''
if ($survivors.Count -gt 0) {
    $s = $survivors[0]
    $module.FailJson(("{0} process(es) still running, first: {1} ({2}): {3}" -f $survivors.Count, $s.pid, $s.name, $s.error))
}
$module.ExitJson()
