#!powershell

# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinHost
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinFiles
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._RestartManager
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinBackup
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinActAs
#AnsibleRequires -PowerShell ansible_collections.residue.purge.plugins.module_utils._WinResidue

$spec = @{
    options = @{
        targets = @{ type = 'list'; elements = 'str'; default = @() }
        profiles = @{ type = 'dict'; default = @{} }
        homes = @{ type = 'list'; elements = 'path'; default = @() }
        users = @{ type = 'raw'; default = 'all' }
        paths = @{ type = 'list'; elements = 'str'; default = @() }
        older_than = @{ type = 'str' }
        time_field = @{ type = 'str'; choices = 'atime', 'mtime', 'ctime'; default = 'atime' }
        keep = @{ type = 'list'; elements = 'str'; default = @() }
        backup = @{ type = 'path' }
        backup_format = @{ type = 'str'; choices = 'tar.gz', 'tar.xz'; default = 'tar.gz' }
        cross_filesystems = @{ type = 'bool'; default = $false }
        scan_processes = @{ type = 'bool'; default = $true }
    }
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$maxListed = 200

# Everything that can be refused is refused before anything is read or removed.
try {
    $backupDir = $null
    if ($module.Params.backup) {
        $raw = $module.Params.backup
        if (-not [ResiduePurge.WinHost]::IsAbsolute($raw) -or ($raw -split '[\\/]') -contains '..') {
            throw "backup: '$raw' must be an absolute directory path without '..'"
        }
        $backupDir = [ResiduePurge.WinHost]::NormPath($raw)
    }
    $options = [ResiduePurge.RemoveOptions]::new()
    $options.TimeField = $module.Params.time_field
    $options.DryRun = $true
    if ($module.Params.older_than) {
        $now = ([DateTime]::UtcNow - [DateTime]'1970-01-01').TotalSeconds
        $options.Cutoff = $now - [ResiduePurge.WinHost]::ParseDuration($module.Params.older_than, 'older_than')
    }
    foreach ($glob in $module.Params.keep) {
        if (-not $glob -or -not $glob.Trim()) {
            throw "keep: every entry must be a non-empty glob, got '$glob'"
        }
        $options.Keep.Add($glob)
    }
    $wanted = [System.Collections.Generic.List[Object]]@()
    if ($module.Params.paths.Count -gt 0) {
        $scope = Get-ResidueScope -Module $module -Targets @() -NoProfilesWhenEmpty
        $actors = [ResiduePurge.Actors]::new($scope.Users)
        for ($i = 0; $i -lt $module.Params.paths.Count; $i++) {
            $raw = $module.Params.paths[$i]
            if ($raw -eq '~' -or $raw -like '~/*' -or $raw -like '~\*') {
                $raw = $env:USERPROFILE + $raw.Substring(1)
            }
            $path = [ResiduePurge.WinHost]::CheckPath($raw, $scope.Protected, "paths[$i]")
            $wanted.Add([PSCustomObject]@{ Path = $path; Target = $null; Actor = $actors.ForPath($path) })
        }
    }
    else {
        $scope = Get-ResidueScope -Module $module -Targets $module.Params.targets
        $actors = [ResiduePurge.Actors]::new($scope.Users)
        foreach ($r in Resolve-ResiduePath -Scope $scope) {
            $wanted.Add([PSCustomObject]@{ Path = $r.Path; Target = $r.Target; Actor = $actors.ForResolved($r) })
        }
    }
}
catch {
    $module.FailJson((Get-ErrorText -ErrorRecord $_))
}

# De-duplicated; a path inside another listed path goes with it.
$items = [System.Collections.Generic.List[Object]]@()
$sorted = @($wanted | Sort-Object -Property @('Path', 'Target'))
foreach ($w in $sorted) {
    $inside = $items | Where-Object {
        $w.Path -eq $_.Path -or $w.Path.StartsWith($_.Path.TrimEnd('\') + '\', [StringComparison]::OrdinalIgnoreCase)
    }
    if (-not $inside) {
        $items.Add($w)
    }
}

foreach ($item in $items) {
    if ($backupDir -and ($backupDir -eq $item.Path -or $backupDir.StartsWith($item.Path.TrimEnd('\') + '\', [StringComparison]::OrdinalIgnoreCase))) {
        $module.FailJson(("backup: '{0}' is inside '{1}', which is to be removed" -f $backupDir, $item.Path))
    }
}

Function New-BackupDirectory {
    <#
    .SYNOPSIS
    Create the backup directory (and its parents) when it does not exist: readable by SYSTEM, the
    Administrators and the module's own account only, as the POSIX backup directory is created 0700.
    #>
    param ([String]$Path)

    if (Test-Path -LiteralPath $Path -PathType Container) {
        return
    }
    $parent = Split-Path -Path $Path -Parent
    if ($parent -and -not (Test-Path -LiteralPath $parent -PathType Container)) {
        [void][IO.Directory]::CreateDirectory($parent)
    }
    $acl = New-Object -TypeName System.Security.AccessControl.DirectorySecurity
    $acl.SetAccessRuleProtection($true, $false)
    $inherit = [System.Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit'
    $owners = @(
        (New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-18'),
        (New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-32-544'),
        [System.Security.Principal.WindowsIdentity]::GetCurrent().User
    )
    foreach ($sid in $owners) {
        $acl.AddAccessRule((New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList @($sid, 'FullControl', $inherit, 'None', 'Allow')))
    }
    $info = New-Object -TypeName System.IO.DirectoryInfo -ArgumentList $Path
    if ($PSVersionTable.PSVersion.Major -ge 6) {
        [System.IO.FileSystemAclExtensions]::Create($info, $acl)
    }
    else {
        $info.Create($acl)
    }
}

$problems = [System.Collections.Generic.List[String]]@($scope.Problems)
$present = @($items | Where-Object { Test-Path -LiteralPath $_.Path })
$volumes = [ordered]@{}
$backupVolume = $null
if ($backupDir) {
    $probe = $backupDir
    while ($probe -and -not (Test-Path -LiteralPath $probe -PathType Container)) {
        $probe = Split-Path -Path $probe -Parent
    }
    $backupVolume = if ($probe) { [ResiduePurge.WinFiles]::VolumeOf($probe) } else { $null }
}
foreach ($volume in @($present | ForEach-Object { [ResiduePurge.WinFiles]::VolumeOf($_.Path) }) + @($backupVolume)) {
    if ($volume -and -not $volumes.Contains($volume)) {
        $volumes[$volume] = [ResiduePurge.WinFiles]::FreeBytes($volume)
    }
}

$removed = [System.Collections.Generic.List[Object]]@()
$failures = [System.Collections.Generic.List[Object]]@()
$counts = @{ failed = 0 }
$addFailure = {
    param ($Path, $Message)
    $counts.failed++
    if ($failures.Count -lt $maxListed) {
        $failures.Add([ordered]@{ path = $Path; error = $Message })
    }
}
$record = {
    param ($Item, $Result)
    [ordered]@{
        path = $Item.Path
        target = $Item.Target
        owner = [ResiduePurge.WinHost]::OwnerOf($Item.Path)
        bytes = $Result.Bytes
        files = $Result.Files
        dirs = $Result.Dirs
        kept = $Result.Kept
        whole = $Result.Whole
    }
}

# Plan every residue first: what check mode lists, what a backup archives, what is held back. A user's residue is
# planned, listed, read for the backup and removed with that user's rights (_WinActAs: the module impersonates the
# user's own token); a user whose token cannot be had has each residue named as a failure and left as it was.
$toRemove = [System.Collections.Generic.List[Object]]@()
foreach ($item in $present) {
    $options.DryRun = $true
    $plan = $item.Actor.RemoveTree($item.Path, $item.Path, $options)
    $problems.AddRange($plan.Problems)
    if ($plan.Failures.Count -gt 0 -and $plan.Files + $plan.Dirs -eq 0) {
        foreach ($f in $plan.Failures) {
            & $addFailure $f[0] $f[1]
        }
        continue
    }
    if ($plan.Files + $plan.Dirs -eq 0) {
        continue
    }
    # A file a process has open or mapped (a loaded .safetensors) cannot be deleted on Windows: rather than
    # delete half of the residue, hold all of it back and name the holders.
    $usage = $item.Actor.Measure($item.Path, $true, $problems)
    if ($null -eq $usage) {
        & $addFailure $item.Path ("not listed with the rights of {0}: held back, nothing removed" -f $item.Actor.Name)
        continue
    }
    $files = $usage.FilePaths
    $holders = @()
    try {
        $holders = @([ResiduePurge.RestartManager]::Holders($files))
    }
    catch {
        $problems.Add(("{0}: could not ask the Restart Manager which processes hold it: {1}" -f $item.Path, (Get-ErrorText -ErrorRecord $_)))
    }
    if ($holders.Count -gt 0) {
        $names = ($holders | Select-Object -First 5 | ForEach-Object { $_.Describe() }) -join ', '
        & $addFailure $item.Path ("held open by {0}: held back, nothing removed (stop them first, for example with residue.purge.reap)" -f $names)
        continue
    }
    $toRemove.Add([PSCustomObject]@{ Item = $item; Plan = $plan })
}

# The backup, verified, before anything is removed (as _remove.py's): a zip and its manifest (_WinBackup.cs).
$backup = $null
if ($backupDir -and $toRemove.Count -gt 0) {
    $paths = [System.Collections.Generic.List[String]]@()
    $pathActors = [System.Collections.Generic.List[ResiduePurge.ActingUser]]@()
    foreach ($entry in $toRemove) {
        $paths.Add($entry.Item.Path)
        $pathActors.Add($entry.Item.Actor)
    }
    $options.DryRun = $true
    $sizing = [ResiduePurge.WinBackup]::Plan($paths, $pathActors, $options)
    if ($sizing.Failures.Count -gt 0) {
        $module.FailJson(("backup: {0} could not be read completely ({1}); nothing was removed" -f $paths[0], $sizing.Failures[0]))
    }
    $available = if ($backupVolume) { [ResiduePurge.WinFiles]::FreeBytes($backupVolume) } else { -1 }
    if ($available -lt $sizing.Needed) {
        $module.FailJson(("backup: {0} has {1} bytes free, the backup of {2} entries needs up to {3}; nothing was removed" -f $backupDir, $available, $sizing.Entries, $sizing.Needed))
    }
    foreach ($p in $sizing.Problems | Select-Object -First $maxListed) {
        $problems.Add($p)
    }
    if ($module.CheckMode) {
        $backup = [ordered]@{ path = $null; manifest = $null; bytes = $null; sha256 = $null; entries = $sizing.Entries; needed_bytes = $sizing.Needed }
    }
    else {
        try {
            New-BackupDirectory -Path $backupDir
            $written = [ResiduePurge.WinBackup]::Write($backupDir, $paths, $pathActors, $options)
        }
        catch {
            $module.FailJson((Get-ErrorText -ErrorRecord $_))
        }
        $backup = [ordered]@{
            path = $written.Archive
            manifest = $written.Manifest
            bytes = (Get-Item -LiteralPath $written.Archive).Length
            sha256 = [ResiduePurge.ZipBackup]::Sha256Of($written.Archive)
            entries = $written.Entries
            needed_bytes = $sizing.Needed
        }
    }
}

foreach ($entry in $toRemove) {
    $item = $entry.Item
    if ($module.CheckMode) {
        $removed.Add((& $record $item $entry.Plan))
        # what the real run would be refused (with the rights it runs with) is a failure in check mode too
        foreach ($f in $entry.Plan.Failures) {
            & $addFailure $f[0] $f[1]
        }
        continue
    }
    $options.DryRun = $false
    $res = $item.Actor.RemoveTree($item.Path, $item.Path, $options)
    foreach ($p in $res.Problems) {
        if (-not $problems.Contains($p)) {
            $problems.Add($p)
        }
    }
    foreach ($f in $res.Failures) {
        & $addFailure $f[0] $f[1]
    }
    if ($res.Files + $res.Dirs -gt 0) {
        $removed.Add((& $record $item $res))
    }
}

$actors.Dispose()
$freed = 0
foreach ($r in $removed) {
    $freed += $r.bytes
}
$module.Result.changed = $removed.Count -gt 0
$module.Result.removed = @($removed)
$module.Result.freed_bytes = $freed
$module.Result.filesystems = @($volumes.Keys | ForEach-Object {
        $after = [ResiduePurge.WinFiles]::FreeBytes($_)
        [ordered]@{ mount = $_; free_before = $volumes[$_]; free_after = $after; freed = $after - $volumes[$_] }
    })
$module.Result.failures = @($failures)
$module.Result.failed_count = $counts.failed
$module.Result.backup = $backup
$module.Result.problems = @($problems | Select-Object -Unique | Select-Object -First $maxListed)
$module.Diff.before = ($removed | ForEach-Object { "{0} ({1} bytes)`n" -f $_.path, $_.bytes }) -join ''
$module.Diff.after = ($removed | Where-Object { -not $_.whole } | ForEach-Object { "{0} (kept {1} entries)`n" -f $_.path, $_.kept }) -join ''
foreach ($problem in $module.Result.problems | Select-Object -First 20) {
    $module.Warn($problem)
}
if ($counts.failed -gt 0) {
    $text = if ($module.CheckMode) { "{0} entries would be refused (first: {1}: {2}); the rest would be removed" }
    else { "{0} entries could not be removed (first: {1}: {2}); the rest was removed" }
    $module.FailJson(($text -f $counts.failed, $failures[0].path, $failures[0].error))
}
$module.ExitJson()
