#!powershell

# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinHost
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinProcs
#AnsibleRequires -PowerShell ansible_collections.residue.purge.plugins.module_utils._WinResidue

$spec = @{
    options = @{
        targets = @{ type = 'list'; elements = 'str'; default = @() }
        profiles = @{ type = 'dict'; default = @{} }
        homes = @{ type = 'list'; elements = 'path'; default = @() }
        users = @{ type = 'raw'; default = 'all' }
        system_wide = @{ type = 'bool'; default = $true }
    }
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$runKeys = @(
    'Software\Microsoft\Windows\CurrentVersion\Run',
    'Software\Microsoft\Windows\CurrentVersion\RunOnce',
    'Software\WOW6432Node\Microsoft\Windows\CurrentVersion\Run',
    'Software\WOW6432Node\Microsoft\Windows\CurrentVersion\RunOnce'
)

try {
    $scope = Get-ResidueScope -Module $module -Targets $module.Params.targets
    foreach ($name in $scope.Selected) {
        foreach ($pattern in [ResiduePurge.WinHost]::Field($scope.Profiles[$name], 'processes', 'cmdline')) {
            [void][Regex]::new($pattern)
        }
    }
}
catch {
    $module.FailJson((Get-ErrorText -ErrorRecord $_))
}

$problems = [System.Collections.Generic.List[String]]@($scope.Problems)
$failures = [System.Collections.Generic.List[Object]]@()
$services = [System.Collections.Generic.List[Object]]@()
$tasks = [System.Collections.Generic.List[Object]]@()
$runValues = [System.Collections.Generic.List[Object]]@()
$startup = [System.Collections.Generic.List[Object]]@()
$coveredUsers = @($scope.Users | ForEach-Object { $_.Name })

Function Get-MatchingTarget {
    <#
    .SYNOPSIS
    The profiles naming an entry: its name matches services.windows globs, or the program it starts matches the
    profile's process names or command line patterns (what reap would match once it runs).
    #>
    param ([String]$EntryName, [String[]]$Argv)

    $process = [PSCustomObject]@{
        name = if ($Argv.Count) { [IO.Path]::GetFileName($Argv[0]) } else { $null }
        exe = if ($Argv.Count) { $Argv[0] } else { $null }
        cmdline = $Argv
    }
    foreach ($name in $scope.Selected) {
        $prof = $scope.Profiles[$name]
        $globs = [ResiduePurge.WinHost]::Field($prof, 'services', 'windows')
        $names = [ResiduePurge.WinHost]::Field($prof, 'processes', 'names')
        $cmdline = [ResiduePurge.WinHost]::Field($prof, 'processes', 'cmdline')
        $bare = if ($EntryName) { [IO.Path]::GetFileNameWithoutExtension($EntryName) } else { $null }
        if (($EntryName -and [ResiduePurge.WinHost]::AnyGlob($EntryName, $globs, $true)) -or
            ($bare -and ($names | Where-Object { $_ -eq $bare })) -or
            ($Argv.Count -and (Test-ProcessMatch -Process $process -Names $names -Cmdline $cmdline))) {
            $name
        }
    }
}

Function Add-Failure($What, $Path, $Message) {
    $failures.Add([ordered]@{ what = $What; path = $Path; error = $Message })
}

# ---------------------------------------------------------------- services (system-wide)
if ($module.Params.system_wide) {
    foreach ($svc in Get-CimInstance -ClassName Win32_Service) {
        $argv = @([ResiduePurge.WinProcs]::SplitCommandLine($svc.PathName))
        $hits = @(Get-MatchingTarget -EntryName $svc.Name -Argv $argv)
        if (-not $hits -and $svc.DisplayName) {
            $hits = @(Get-MatchingTarget -EntryName $svc.DisplayName -Argv @())
        }
        if (-not $hits) {
            continue
        }
        $entry = [ordered]@{ name = $svc.Name; display_name = $svc.DisplayName; binary = $svc.PathName; state = $svc.State; targets = $hits }
        if (-not $module.CheckMode) {
            try {
                if ($svc.State -ne 'Stopped') {
                    Stop-Service -Name $svc.Name -Force -ErrorAction Stop -WarningAction SilentlyContinue
                }
                Set-Service -Name $svc.Name -StartupType Disabled -ErrorAction Stop
                $rc = (Invoke-CimMethod -InputObject $svc -MethodName Delete).ReturnValue
                if ($rc -ne 0) {
                    throw "Win32_Service.Delete returned $rc"
                }
            }
            catch {
                Add-Failure 'service' $svc.Name (Get-ErrorText -ErrorRecord $_)
                continue
            }
        }
        $services.Add($entry)
    }
}

# ---------------------------------------------------------------- scheduled tasks
$taskCmdlets = Get-Command -Name Get-ScheduledTask -ErrorAction SilentlyContinue
if ($taskCmdlets) {
    foreach ($task in Get-ScheduledTask -ErrorAction SilentlyContinue) {
        $hits = [System.Collections.Generic.List[String]]@()
        foreach ($name in Get-MatchingTarget -EntryName $task.TaskName -Argv @()) {
            $hits.Add($name)
        }
        foreach ($action in $task.Actions) {
            if (-not $action.Execute) {
                continue
            }
            $exe = [Environment]::ExpandEnvironmentVariables($action.Execute)
            $argv = @($exe) + @([ResiduePurge.WinProcs]::SplitCommandLine("x $($action.Arguments)") | Select-Object -Skip 1)
            foreach ($name in Get-MatchingTarget -EntryName $null -Argv $argv) {
                if (-not $hits.Contains($name)) {
                    $hits.Add($name)
                }
            }
        }
        if ($hits.Count -eq 0) {
            continue
        }
        $user = $task.Principal.UserId
        $mine = $module.Params.system_wide -or ($user -and ($coveredUsers | Where-Object { $_ -eq $user -or $_.Split('\')[-1] -eq $user.Split('\')[-1] }))
        if (-not $mine) {
            continue
        }
        $entry = [ordered]@{ path = $task.TaskPath; name = $task.TaskName; user = $user; targets = @($hits) }
        if (-not $module.CheckMode) {
            try {
                Stop-ScheduledTask -TaskPath $task.TaskPath -TaskName $task.TaskName -ErrorAction SilentlyContinue
                Unregister-ScheduledTask -TaskPath $task.TaskPath -TaskName $task.TaskName -Confirm:$false -ErrorAction Stop
            }
            catch {
                Add-Failure 'scheduled_task' "$($task.TaskPath)$($task.TaskName)" (Get-ErrorText -ErrorRecord $_)
                continue
            }
        }
        $tasks.Add($entry)
    }
}
else {
    $problems.Add('the ScheduledTasks module is not available here: scheduled tasks were not checked')
}

# ---------------------------------------------------------------- Run and RunOnce (HKLM and every user's hive)
Function Invoke-RunKey($Root, $RootName, $User) {
    foreach ($sub in $runKeys) {
        $key = $null
        try {
            $key = $Root.OpenSubKey($sub, (-not $module.CheckMode))
        }
        catch {
            Add-Failure 'run_key' "$RootName\$sub" (Get-ErrorText -ErrorRecord $_)
        }
        if (-not $key) {
            continue
        }
        try {
            foreach ($valueName in $key.GetValueNames()) {
                $command = [String]$key.GetValue($valueName, '', [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
                $argv = @([ResiduePurge.WinProcs]::SplitCommandLine([Environment]::ExpandEnvironmentVariables($command)))
                $hits = @(Get-MatchingTarget -EntryName $valueName -Argv $argv)
                if (-not $hits) {
                    continue
                }
                if (-not $module.CheckMode) {
                    try {
                        $key.DeleteValue($valueName)
                    }
                    catch {
                        Add-Failure 'run_key' "$RootName\$sub\$valueName" (Get-ErrorText -ErrorRecord $_)
                        continue
                    }
                }
                $runValues.Add([ordered]@{ key = "$RootName\$sub"; name = $valueName; command = $command; user = $User; targets = $hits })
            }
        }
        finally {
            $key.Dispose()
        }
    }
}

if ($module.Params.system_wide) {
    $hklm = [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine, [Microsoft.Win32.RegistryView]::Registry64)
    try {
        Invoke-RunKey $hklm 'HKLM' $null
    }
    finally {
        $hklm.Dispose()
    }
}
foreach ($user in $scope.Users) {
    if (-not $user.Sid) {
        continue  # explicit homes: no registry hive to go with them
    }
    $hive = $null
    try {
        $hive = [ResiduePurge.UserHive]::Open($user, (-not $module.CheckMode))
        if ($hive -and $hive.Root) {
            Invoke-RunKey $hive.Root "HKU\$($user.Sid)" $user.Name
        }
    }
    catch {
        $problems.Add(("Run keys of user {0} not read ({1})" -f $user.Name, (Get-ErrorText -ErrorRecord $_)))
    }
    finally {
        if ($hive) {
            $hive.Dispose()
        }
    }
}

# ---------------------------------------------------------------- Startup folders (Ollama's Ollama.lnk)
$folders = [System.Collections.Generic.List[Object]]@()
if ($module.Params.system_wide) {
    $folders.Add(@((Join-Path $env:ProgramData 'Microsoft\Windows\Start Menu\Programs\StartUp'), $null))
}
foreach ($user in $scope.Users) {
    $folders.Add(@((Join-Path $user.Home 'AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup'), $user.Name))
}
$shell = $null
foreach ($folder in $folders) {
    $dir, $owner = $folder
    foreach ($item in Get-ChildItem -LiteralPath $dir -File -Force -ErrorAction SilentlyContinue) {
        if ($item.Name -eq 'desktop.ini') {
            continue
        }
        $argv = @()
        if ($item.Extension -eq '.lnk' -and -not ($item.Attributes -band [IO.FileAttributes]::ReparsePoint)) {
            if (-not $shell) {
                $shell = New-Object -ComObject WScript.Shell
            }
            $link = $shell.CreateShortcut($item.FullName)
            if ($link.TargetPath) {
                $argv = @($link.TargetPath) + @([ResiduePurge.WinProcs]::SplitCommandLine("x $($link.Arguments)") | Select-Object -Skip 1)
            }
        }
        $hits = @(Get-MatchingTarget -EntryName $item.Name -Argv $argv)
        if (-not $hits) {
            continue
        }
        if (-not $module.CheckMode) {
            try {
                # a symbolic link here is removed itself, never its target
                [IO.File]::Delete($item.FullName)
            }
            catch {
                Add-Failure 'startup_item' $item.FullName (Get-ErrorText -ErrorRecord $_)
                continue
            }
        }
        $startup.Add([ordered]@{ path = $item.FullName; target = if ($argv.Count) { $argv[0] } else { $null }; user = $owner; targets = $hits })
    }
}

foreach ($problem in $problems) {
    $module.Warn($problem)
}
$changed = $services.Count + $tasks.Count + $runValues.Count + $startup.Count
$module.Result.changed = $changed -gt 0
$module.Result.services = @($services)
$module.Result.scheduled_tasks = @($tasks)
$module.Result.run_keys = @($runValues)
$module.Result.startup_items = @($startup)
$module.Result.units = @()
$module.Result.cron = @()
$module.Result.xdg = @()
$module.Result.launchd = @()
$module.Result.failures = @($failures)
$module.Result.problems = @($problems)
$lines = @($services | ForEach-Object { "service $($_.name)`n" }) + @($tasks | ForEach-Object { "scheduled task $($_.path)$($_.name)`n" }) +
@($runValues | ForEach-Object { "$($_.key)\$($_.name) = $($_.command)`n" }) + @($startup | ForEach-Object { "$($_.path)`n" })
$module.Diff.before = $lines -join ''
$module.Diff.after = ''
if ($failures.Count -gt 0) {
    $f = $failures[0]
    $module.FailJson(("{0} change(s) could not be made, first: {1} {2}: {3}" -f $failures.Count, $f.what, $f.path, $f.error))
}
$module.ExitJson()
