#!powershell

# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinHost
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinPip
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinFiles
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinActAs
#AnsibleRequires -PowerShell ansible_collections.residue.purge.plugins.module_utils._WinResidue

$spec = @{
    options = @{
        targets = @{ type = 'list'; elements = 'str'; default = @() }
        profiles = @{ type = 'dict'; default = @{} }
        homes = @{ type = 'list'; elements = 'path'; default = @() }
        users = @{ type = 'raw'; default = 'all' }
        packages = @{ type = 'list'; elements = 'str'; default = @() }
        environments = @{ type = 'list'; elements = 'path'; default = @() }
        search_roots = @{ type = 'list'; elements = 'path' }
        max_depth = @{ type = 'int'; default = 4 }
        include_system = @{ type = 'bool'; default = $true }
        orphans = @{ type = 'bool'; default = $false }
        keep = @{ type = 'list'; elements = 'str'; default = @() }
        allow_system = @{ type = 'bool'; default = $false }
        remove_required = @{ type = 'bool'; default = $false }
    }
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)

try {
    $named = @($module.Params.packages)
    $fromProfiles = $module.Params.targets.Count -gt 0 -or $named.Count -eq 0
    $scope = Get-ResidueScope -Module $module -Targets $module.Params.targets -NoProfilesWhenEmpty:(-not $fromProfiles)
    # whose rights each user's part of the search and each environment's pip run with (_WinActAs)
    $actors = [ResiduePurge.Actors]::new($scope.Users)
    $packages = [System.Collections.Generic.List[String]]@()
    foreach ($name in $named) {
        $packages.Add((ConvertTo-NormalizedName -Name $name))
    }
    if ($fromProfiles) {
        foreach ($target in $scope.Selected) {
            foreach ($name in [ResiduePurge.WinHost]::Field($scope.Profiles[$target], 'pip', $null)) {
                $packages.Add((ConvertTo-NormalizedName -Name $name))
            }
        }
    }
    $packages = @($packages | Select-Object -Unique)
    foreach ($name in @($packages) + @($module.Params.keep)) {
        if (-not [ResiduePurge.WinPip]::IsValidName($name)) {
            throw "'$name' is not a distribution name"
        }
    }
    if ($module.Params.max_depth -lt 0) {
        throw "max_depth cannot be negative"
    }
    $environments = [System.Collections.Generic.List[Object]]@()
    if ($module.Params.environments.Count -gt 0) {
        foreach ($given in $module.Params.environments) {
            if (Test-Path -LiteralPath $given -PathType Leaf) {
                $python = $given
                $prefix = Split-Path -Parent $given
                if ((Split-Path -Leaf $prefix) -eq 'Scripts') {
                    $prefix = Split-Path -Parent $prefix
                }
            }
            elseif (Test-Path -LiteralPath $given -PathType Container) {
                $prefix = $given
                $python = @((Join-Path $given 'Scripts\python.exe'), (Join-Path $given 'python.exe')) |
                    Where-Object { Test-Path -LiteralPath $_ } | Select-Object -First 1
            }
            else {
                throw "environments: $given does not exist"
            }
            $kind = if (Test-Path -LiteralPath (Join-Path $prefix 'pyvenv.cfg')) { 'venv' }
            elseif (Test-Path -LiteralPath (Join-Path $prefix 'conda-meta')) { 'conda' } else { 'system' }
            $environments.Add([PSCustomObject]@{ path = $prefix; python = $python; kind = $kind; user = [ResiduePurge.WinHost]::OwnerOf($prefix); user_base = $null })
        }
    }
    else {
        $roots = if ($null -ne $module.Params.search_roots) { @($module.Params.search_roots) } else { @() }
        foreach ($e in Find-PythonEnvironment -Scope $scope -SearchRoots $roots -MaxDepth $module.Params.max_depth -IncludeSystem $module.Params.include_system -Actors $actors) {
            $environments.Add($e)
        }
    }
}
catch {
    $module.FailJson((Get-ErrorText -ErrorRecord $_))
}

Function ConvertTo-Item($dist, $extra) {
    $item = [ordered]@{ name = $dist.Name; version = $dist.Version }
    if ($extra) {
        foreach ($k in $extra.Keys) {
            $item[$k] = $extra[$k]
        }
    }
    $item
}

Function Invoke-PipCheck($environment, $actor) {
    $run = Invoke-EnvironmentPython -Environment $environment -Actor $actor -Arguments @('-m', 'pip', 'check')
    @{ ok = $run.rc -eq 0; output = @(($run.stdout -split "`r?`n") | Where-Object { $_.Trim() }) }
}

Function Remove-EnvironmentPackage($Environment, $Entry, $Plan, $Planned, $Actor) {
    # pip uninstall of what was planned, with the actor's rights (null: the module's own); Entry is filled in
    # what pip check already reported is not ours: only what the removal adds is a problem
    $baseline = (Invoke-PipCheck $Environment $Actor).output
    $errors = [System.Collections.Generic.List[String]]@()
    $run = Invoke-EnvironmentPython -Environment $Environment -Actor $Actor -Arguments (@('-m', 'pip', 'uninstall', '-y') + @($Planned | ForEach-Object { $_.Name }))
    $remaining = @(Get-SiteDistribution -Environment $Environment -Actor $Actor | ForEach-Object { $_.name })
    if ($run.rc -ne 0) {
        foreach ($p in $Planned | Where-Object { $remaining -contains $_.Name }) {
            # pip stops at the first package it cannot remove: the rest one by one, for a per-package error
            $one = Invoke-EnvironmentPython -Environment $Environment -Actor $Actor -Arguments @('-m', 'pip', 'uninstall', '-y', $p.Name)
            if ($one.rc -ne 0) {
                $errors.Add("$($p.Name): pip uninstall failed (exit $($one.rc)): $((($one.stderr + $one.stdout) -split "`r?`n" | Where-Object { $_ } | Select-Object -Last 3) -join ' | ')")
            }
        }
        $remaining = @(Get-SiteDistribution -Environment $Environment -Actor $Actor | ForEach-Object { $_.name })
    }
    # what was removed is what is gone from disk, whatever pip said
    $Entry.removed = @($Plan.Remove | Where-Object { $remaining -notcontains $_.Name } | ForEach-Object { ConvertTo-Item $_ $null })
    $Entry.orphans_removed = @($Plan.Orphans | Where-Object { $remaining -notcontains $_.Name } | ForEach-Object { ConvertTo-Item $_ $null })
    $still = @($Planned | Where-Object { $remaining -contains $_.Name } | ForEach-Object { $_.Name })
    if ($still.Count -gt 0 -and $errors.Count -eq 0) {
        $errors.Add("still installed after pip uninstall: $($still -join ', ')")
    }
    $check = Invoke-PipCheck $Environment $Actor
    $Entry.pip_check = [ordered]@{ ok = $check.ok; output = $check.output; new = @($check.output | Where-Object { $baseline -notcontains $_ }) }
    if ($errors.Count -gt 0) {
        $Entry.status = 'failed'
        $Entry.error = $errors -join '; '
    }
    else {
        $Entry.status = if ($Entry.removed.Count -or $Entry.orphans_removed.Count) { 'changed' } else { 'unchanged' }
    }
}

$results = [System.Collections.Generic.List[Object]]@()
$problems = [System.Collections.Generic.List[String]]@($scope.Problems)
$changed = $false
$failed = [System.Collections.Generic.List[String]]@()
# a user's environment (in her profile, or owned by her) is read and uninstalled by pip started with her token
# (_WinActAs: Actors.ForEnvironment, ActingUser.Start); the module's own and an unprivileged run's as before
foreach ($environment in $environments) {
    $site = if ($environment.kind -eq 'user-site') { Join-Path $environment.path 'site-packages' } else { Join-Path $environment.path 'Lib\site-packages' }
    $marker = Join-Path $environment.path 'Lib\EXTERNALLY-MANAGED'
    $entry = [ordered]@{
        path = $environment.path
        python = $environment.python
        kind = $environment.kind
        user = $environment.user
        site_dirs = @($site)
        externally_managed = [bool](Test-Path -LiteralPath $marker)
        status = 'absent'
        found = @()
        removed = @()
        orphans_removed = @()
        kept_shared = @()
        kept = @()
        pip_check = $null
        error = $null
        problems = @()
    }
    $results.Add($entry)
    $actor = $actors.ForEnvironment($environment.path, $(if ($environment.user) { $environment.user } else { [ResiduePurge.WinHost]::OwnerOf($environment.path) }))
    if (-not $actor.Usable) {
        # no token, no pip: nothing of it is read or run with the module's own rights. Only the names of its
        # *.dist-info / *.egg-info directories are listed (names, as the search lists directories): an
        # environment where none of the packages is named (nor anything at all, with orphans) holds nothing to
        # act on, and is not a failure; any other is.
        $named = @(Get-ChildItem -LiteralPath $site -Directory -Force -ErrorAction SilentlyContinue |
                Where-Object { $_.Name -match '\.(dist|egg)-info$' } |
                ForEach-Object { ConvertTo-NormalizedName -Name (($_.Name -replace '\.(dist|egg)-info$', '').Split('-')[0]) })
        if (@($named | Where-Object { $packages -contains $_ }).Count -eq 0 -and -not ($module.Params.orphans -and $named.Count -gt 0)) {
            $entry.problems = @("not read: $($actor.Error) (none of the packages is named in it)")
            continue
        }
        $entry.status = 'failed'
        $entry.error = [ResiduePurge.Whose]::LeftAlone($actor.Error)
        $failed.Add("$($environment.path): $($entry.error)")
        continue
    }
    $actorArg = if ($actor.IsSelf) { $null } else { $actor }
    $installed = @(Get-SiteDistribution -Environment $environment -Actor $actorArg)
    $present = @($installed | Where-Object { $packages -contains $_.name })
    $entry.found = @($present | ForEach-Object { [ordered]@{ name = $_.name; version = $_.version } })
    if (-not $environment.python -or -not (Test-Path -LiteralPath $environment.python)) {
        $entry.status = 'broken'
        $entry.error = if (-not $environment.python) { 'no interpreter of this version for the user site' } else { "interpreter $($environment.python) does not exist (broken environment)" }
        $problems.Add("$($environment.path): $($entry.error)")
        continue
    }
    if ($present.Count -eq 0) {
        continue
    }
    if ($entry.externally_managed -and -not $module.Params.allow_system) {
        $entry.status = 'externally_managed'
        $entry.error = "EXTERNALLY-MANAGED: $(($present | ForEach-Object { $_.name }) -join ', ') reported, not removed; set allow_system: true to remove them"
        $problems.Add("$($environment.path): $($entry.error)")
        continue
    }
    try {
        $dists = [System.Collections.Generic.List[ResiduePurge.PipDist]]@()
        foreach ($d in Get-EnvironmentDistribution -Environment $environment -Actor $actorArg) {
            $pd = [ResiduePurge.PipDist]::new()
            $pd.Name = $d.name
            $pd.Version = $d.version
            $pd.Requested = [bool]$d.requested
            $pd.Installer = $d.installer
            foreach ($r in $d.requires) {
                $pd.Requires.Add($r)
            }
            $dists.Add($pd)
        }
    }
    catch {
        $entry.status = 'broken'
        $entry.error = Get-ErrorText -ErrorRecord $_
        $problems.Add("$($environment.path): $($entry.error)")
        continue
    }
    $plan = [ResiduePurge.WinPip]::PlanRemoval($dists, $packages, $module.Params.keep, $module.Params.orphans, $module.Params.remove_required)
    $entry.kept_shared = @($plan.KeptShared | ForEach-Object { ConvertTo-Item $_.Key @{ required_by = @($_.Value) } })
    $entry.kept = @($plan.Kept | ForEach-Object { ConvertTo-Item $_.Key @{ reason = $_.Value } })
    $entry.problems = @($plan.KeptShared | Where-Object { $packages -contains $_.Key.Name } | ForEach-Object {
            "$($_.Key.Name) not removed: required by $(@($_.Value) -join ', ') (remove_required: true removes it anyway)"
        })
    $planned = @($plan.Remove) + @($plan.Orphans)
    if ($planned.Count -eq 0) {
        $entry.status = 'unchanged'
        continue
    }
    if ($module.CheckMode) {
        $entry.status = 'planned'
        $entry.removed = @($plan.Remove | ForEach-Object { ConvertTo-Item $_ $null })
        $entry.orphans_removed = @($plan.Orphans | ForEach-Object { ConvertTo-Item $_ $null })
        $changed = $true
        continue
    }
    try {
        Remove-EnvironmentPackage -Environment $environment -Entry $entry -Plan $plan -Planned $planned -Actor $actorArg
    }
    catch {
        # pip could not be started as the environment's user: failed, and not started with the module's rights
        $entry.status = 'failed'
        $entry.error = Get-ErrorText -ErrorRecord $_
        if ($_.Exception.GetBaseException() -is [ResiduePurge.ActAsFailed]) {
            $entry.error = [ResiduePurge.Whose]::LeftAlone($entry.error)
        }
    }
    if ($entry.removed.Count -or $entry.orphans_removed.Count) {
        $changed = $true
    }
    if ($entry.status -eq 'failed') {
        $failed.Add("$($environment.path): $($entry.error)")
    }
}

foreach ($e in $results) {
    foreach ($p in $e.problems) {
        $problems.Add("$($e.path): $p")
    }
}
foreach ($problem in $problems | Select-Object -First 20) {
    $module.Warn($problem)
}
$module.Result.changed = $changed
$module.Result.packages = @($packages)
$module.Result.environments = @($results)
$module.Result.problems = @($problems)
$module.Diff.before = ($results | Where-Object { $_.removed.Count -or $_.orphans_removed.Count } | ForEach-Object {
        $env = $_
        @($_.removed) + @($_.orphans_removed) | ForEach-Object { "$($env.path): $($_.name)==$($_.version)`n" }
    }) -join ''
$module.Diff.after = ''
if ($failed.Count -gt 0) {
    $module.FailJson(("pip_remove: {0} environment(s) failed, first: {1}" -f $failed.Count, $failed[0]))
}
$module.ExitJson()
