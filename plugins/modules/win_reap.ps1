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
    $window = [Math]::Min([double]$module.Params.respawn_window, $grace)
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

$processes = @(Get-ResidueProcess)
$protectedPids = Get-ProtectedProcessId -Processes $processes
$matched = [System.Collections.Generic.List[Object]]@()
$spared = [System.Collections.Generic.List[Object]]@()
$terminated = [System.Collections.Generic.List[Object]]@()
$survivors = [System.Collections.Generic.List[Object]]@()
$stoppedKeys = @{}

Function Test-Spared($p) {
    if ($protectedPids.ContainsKey($p.pid)) {
        return 'the module itself or one of its ancestors (the Ansible connection)'
    }
    if ($p.name -in $systemNames) {
        return 'a Windows system process'
    }
    $null
}

Function Expand-Tree($roots, $all) {
    # descendants of each root (children started after their parent: a reused ppid is not a child)
    $byParent = @{}
    foreach ($p in $all) {
        if (-not $byParent.ContainsKey($p.ppid)) {
            $byParent[$p.ppid] = [System.Collections.Generic.List[Object]]@()
        }
        $byParent[$p.ppid].Add($p)
    }
    $seen = @{}
    foreach ($r in $roots) {
        $seen["$($r[0].pid)"] = $true
    }
    $queue = [System.Collections.Generic.Queue[Object]]::new()
    foreach ($r in $roots) {
        $queue.Enqueue($r[0])
    }
    while ($queue.Count -gt 0) {
        $parent = $queue.Dequeue()
        if (-not $byParent.ContainsKey($parent.pid)) {
            continue
        }
        foreach ($child in $byParent[$parent.pid]) {
            if ($seen.ContainsKey("$($child.pid)") -or $child.create_time -lt $parent.create_time) {
                continue
            }
            $seen["$($child.pid)"] = $true
            , @($child, "child-of:$($parent.pid)", @())
            $queue.Enqueue($child)
        }
    }
}

Function Stop-Round($items) {
    # items: (process, matched_by, targets). Returns those still running after everything.
    $stops = [System.Collections.Generic.List[Object]]@()
    foreach ($item in $items) {
        $p = $item[0]
        $key = "$($p.pid)@$($p.create_time)"
        if ($stoppedKeys.ContainsKey($key)) {
            continue
        }
        $stoppedKeys[$key] = $true
        $reason = Test-Spared $p
        if ($reason) {
            $entry = ConvertTo-Entry $p $item[1] $item[2]
            $entry.reason = $reason
            $spared.Add($entry)
            continue
        }
        if ($module.CheckMode) {
            $entry = ConvertTo-Entry $p $item[1] $item[2]
            $entry.signal = $signal
            $entry.outcome = 'would_stop'
            $terminated.Add($entry)
            continue
        }
        $target = [ResiduePurge.StopTarget]::new()
        $target.Pid = $p.pid
        $target.CreateTime = $p.create_time
        $null = Get-Owner $p  # while it still runs
        if (-not [ResiduePurge.WinProcs]::Open($target)) {
            if ($target.Outcome -eq 'survived') {
                $entry = ConvertTo-Entry $p $item[1] $item[2]
                $entry.outcome = 'survived'
                $entry.error = $target.Error
                $survivors.Add($entry)
            }
            continue
        }
        $stops.Add(@($target, $item))
    }
    if ($stops.Count -eq 0) {
        return
    }
    $asked = $false
    foreach ($s in $stops) {
        if ($kill) {
            [ResiduePurge.WinProcs]::Kill($s[0])
        }
        else {
            $asked = [ResiduePurge.WinProcs]::AskToClose($s[0]) -or $asked
        }
    }
    # One wait for all of them together; without a window nothing was asked, so there is nothing to wait for.
    $wait = if ($kill) { [Math]::Max($grace, 2) } elseif ($asked) { $grace } else { 0 }
    $running = [ResiduePurge.WinProcs]::WaitAll([System.Collections.Generic.List[ResiduePurge.StopTarget]]@($stops | ForEach-Object { $_[0] }), $wait)
    if ($running.Count -gt 0 -and -not $kill -and $module.Params.kill_after_grace) {
        foreach ($t in $running) {
            [ResiduePurge.WinProcs]::Kill($t)
        }
        $running = [ResiduePurge.WinProcs]::WaitAll($running, 5)
    }
    foreach ($s in $stops) {
        $t, $item = $s
        $entry = ConvertTo-Entry $item[0] $item[1] $item[2]
        $entry.signal = $t.Signal
        if ($running.Contains($t)) {
            $entry.outcome = 'survived'
            $entry.error = if ($t.Error) { $t.Error } elseif ($module.Params.kill_after_grace) { 'still running after TerminateProcess' } else { "still running after $grace s (kill_after_grace is false)" }
            $survivors.Add($entry)
        }
        else {
            $entry.outcome = if ($t.Signal -eq 'KILL') { 'killed' } else { 'exited' }
            $terminated.Add($entry)
        }
        [ResiduePurge.WinProcs]::Close($t)
    }
}

$first = @(Find-Target $processes)
foreach ($item in $first) {
    $matched.Add((ConvertTo-Entry $item[0] $item[1] $item[2]))
}
$round = @($first)
if ($module.Params.tree) {
    $round += @(Expand-Tree $first $processes)
}
Stop-Round $round

# What comes back after each round, and the parent that brought it back (a supervisor loop).
$rounds = 1
while (-not $module.CheckMode -and $first.Count -gt 0 -and $rounds -le $maxRounds) {
    if ($window -gt 0) {
        Start-Sleep -Milliseconds ([int]($window * 1000))
    }
    $processes = @(Get-ResidueProcess)
    $again = @(Find-Target $processes | Where-Object { -not $stoppedKeys.ContainsKey("$($_[0].pid)@$($_[0].create_time)") })
    if ($again.Count -eq 0) {
        break
    }
    if ($rounds -eq $maxRounds) {
        foreach ($item in $again) {
            $entry = ConvertTo-Entry $item[0] $item[1] $item[2]
            $entry.outcome = 'respawned'
            $parent = $processes | Where-Object { $_.pid -eq $item[0].ppid } | Select-Object -First 1
            $entry.error = "started again after $maxRounds rounds by process $($item[0].ppid) ($(if ($parent) { $parent.name } else { 'gone' })): remove what restarts it first (residue.purge.autostart)"
            $survivors.Add($entry)
        }
        break
    }
    $next = [System.Collections.Generic.List[Object]]@()
    foreach ($item in $again) {
        $next.Add(@($item[0], "respawned-by:$($item[0].ppid)", $item[2]))
        if ($module.Params.tree) {
            $parent = $processes | Where-Object { $_.pid -eq $item[0].ppid -and $_.create_time -le $item[0].create_time } | Select-Object -First 1
            if ($parent -and -not (Test-Spared $parent)) {
                $next.Add(@($parent, "supervisor-of:$($item[0].pid)", @()))
            }
        }
    }
    if ($module.Params.tree) {
        $next.AddRange(@(Expand-Tree $next $processes))
    }
    Stop-Round $next
    $rounds++
}

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
