#!powershell

# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinHost
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinFiles
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinHfCache
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._RestartManager
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinActAs
#AnsibleRequires -PowerShell ansible_collections.residue.purge.plugins.module_utils._WinResidue

$spec = @{
    options = @{
        targets = @{ type = 'list'; elements = 'str'; default = @() }
        profiles = @{ type = 'dict'; default = @{} }
        homes = @{ type = 'list'; elements = 'path'; default = @() }
        users = @{ type = 'raw'; default = 'all' }
        cache_dirs = @{ type = 'list'; elements = 'path'; default = @() }
        discover = @{ type = 'bool' }
        repos = @{ type = 'list'; elements = 'str'; default = @() }
        repo_type = @{ type = 'str'; choices = 'model', 'dataset', 'space', 'any'; default = 'any' }
        revisions = @{ type = 'str'; choices = 'all', 'unreferenced' }
        older_than = @{ type = 'str' }
        age_by = @{ type = 'str'; choices = 'accessed', 'modified'; default = 'accessed' }
        max_size = @{ type = 'str' }
        keep = @{ type = 'list'; elements = 'str'; default = @() }
        incomplete_older_than = @{ type = 'str'; default = '1d' }
        force = @{ type = 'bool'; default = $false }
        one_file_system = @{ type = 'bool'; default = $true }
        store_orphans = @{ type = 'bool' }
    }
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$maxFailures = 50

# The selection, as hf_cache.build_selection makes it; bad input fails before any cache is read.
try {
    # Unlike other modules, empty targets means no profile here (huggingface's '*' would select every repo).
    $scope = Get-ResidueScope -Module $module -Targets $module.Params.targets -NoProfilesWhenEmpty
    $selection = [ResiduePurge.HfSelection]::new()
    $selection.Now = ([DateTime]::UtcNow - [DateTime]'1970-01-01').TotalSeconds
    foreach ($glob in $module.Params.repos) {
        $selection.Patterns.Add($glob)
    }
    foreach ($name in $scope.Selected) {
        foreach ($glob in [ResiduePurge.WinHost]::Field($scope.Profiles[$name], 'hf_repos', $null)) {
            $selection.Patterns.Add($glob)
        }
    }
    foreach ($pair in @(@('repos', $selection.Patterns), @('keep', $module.Params.keep))) {
        foreach ($glob in $pair[1]) {
            if (-not $glob -or -not $glob.Trim() -or $glob -ne $glob.Trim()) {
                throw ("{0}: '{1}' is not a repo pattern such as org/name or org/*" -f $pair[0], $glob)
            }
        }
    }
    foreach ($glob in $module.Params.keep) {
        $selection.Keep.Add($glob)
    }
    $selection.RepoType = $module.Params.repo_type
    $selection.AgeBy = $module.Params.age_by
    if ($module.Params.older_than) {
        $selection.OlderThan = [ResiduePurge.WinHost]::ParseDuration($module.Params.older_than, 'older_than')
    }
    if ($null -ne $module.Params.max_size) {
        $selection.MaxSize = [ResiduePurge.WinHost]::ParseSize($module.Params.max_size, 'max_size')
    }
    if ("$($module.Params.incomplete_older_than)".Trim().ToLowerInvariant() -eq 'never') {
        $selection.IncompleteOlderThan = -1
    }
    else {
        $selection.IncompleteOlderThan = [ResiduePurge.WinHost]::ParseDuration($module.Params.incomplete_older_than, 'incomplete_older_than')
    }
    $revisions = $module.Params.revisions
    if ($null -eq $revisions -and ($selection.Patterns.Count -gt 0 -or $selection.OlderThan -ge 0)) {
        $revisions = 'all'
    }
    if ($revisions -eq 'all' -and $selection.Patterns.Count -eq 0 -and $selection.OlderThan -lt 0 -and $selection.RepoType -eq 'any') {
        throw "revisions=all with no repos and no older_than would empty every cache; name the repos (repos: ['*'] for all of them)"
    }
    $selection.Revisions = $revisions

    $dirs = [System.Collections.Generic.List[String]]@()
    foreach ($path in $module.Params.cache_dirs) {
        if (-not [ResiduePurge.WinHost]::IsAbsolute($path) -or ($path -split '[\\/]') -contains '..' -or $path -match '^[A-Za-z]:[\\/]?$') {
            throw "cache_dirs: '$path' must be an absolute path to a hub cache, without '..'"
        }
        $dirs.Add([ResiduePurge.WinHost]::NormPath($path))
    }
    $discover = $module.Params.discover
    if ($null -eq $discover) {
        $discover = $dirs.Count -eq 0
    }
    $claimants = @{}
    if ($discover) {
        foreach ($cache in Find-HubCache -Scope $scope) {
            if (-not ($dirs -contains $cache.path)) {
                $dirs.Add($cache.path)
                $claimants[$cache.path.ToLowerInvariant()] = $cache.claimant
            }
        }
    }
    $actors = [ResiduePurge.Actors]::new($scope.Users)
}
catch {
    $module.FailJson((Get-ErrorText -ErrorRecord $_))
}

$problems = [System.Collections.Generic.List[String]]@()
$failures = [System.Collections.Generic.List[String]]@()
$deleted = [System.Collections.Generic.List[Object]]@()
$heldBack = [System.Collections.Generic.List[Object]]@()
$cacheResults = [System.Collections.Generic.List[Object]]@()
$before = [System.Collections.Generic.List[String]]@()
$after = [System.Collections.Generic.List[String]]@()
$totals = @{ freed = [long]0; blobs = [long]0; shared = [long]0 }
$seen = @{}

# Whether a repo may be touched now: a fresh partial download (always), a held lock, files open or mapped.
$heldOf = {
    param ($cachePath, $repo, $whole, $cacheActor)
    if ($whole) {
        foreach ($inc in $repo.Incomplete) {
            $mtime = [double]::Parse($inc[2], [Globalization.CultureInfo]::InvariantCulture)
            if ($selection.IncompleteOlderThan -lt 0 -or $mtime -ge $selection.Now - $selection.IncompleteOlderThan) {
                return @('in_use', ("{0}\blobs\{1} is a fresh partial download (modified {2} s ago)" -f $repo.Path, $inc[0], [int][Math]::Max(0, $selection.Now - $mtime)))
            }
        }
    }
    if ($module.Params.force) {
        return $null
    }
    $lock = [ResiduePurge.HfCache]::HeldLockAs($cacheActor, $cachePath, $repo)
    if ($lock) {
        return @('locked', "$lock is held by a running process (a download in progress)")
    }
    # listed with the rights of the cache's user; which processes hold them is asked with the module's (as root
    # reads /proc on POSIX: a user cannot see other users' processes)
    $listing = $cacheActor.Measure($repo.Path, $true, $problems)
    if ($null -eq $listing) {
        return @('in_use', ("{0} could not be listed with the rights of {1}" -f $repo.Path, $cacheActor.Name))
    }
    $files = $listing.FilePaths
    try {
        $holders = @([ResiduePurge.RestartManager]::Holders($files))
    }
    catch {
        return @('in_use', ("could not ask the Restart Manager which processes hold {0}: {1}" -f $repo.Path, (Get-ErrorText -ErrorRecord $_)))
    }
    if ($holders.Count -gt 0) {
        return @('in_use', ("{0} is open in {1}" -f $repo.Path, $holders[0].Describe()))
    }
    $null
}

foreach ($dir in $dirs) {
    $real = [ResiduePurge.WinFiles]::RealPath($dir)
    if (-not (Test-Path -LiteralPath $dir -PathType Container) -or -not $real) {
        $problems.Add("cache dir $dir does not exist")
        continue
    }
    if ($seen.ContainsKey($real.ToLowerInvariant())) {
        continue
    }
    $seen[$real.ToLowerInvariant()] = $true
    # A user's cache is scanned, listed and deleted with that user's rights (_WinActAs: the module impersonates the
    # user's own token); a cache whose user's token cannot be had is a failure and left as it was.
    $cacheActor = $actors.ForClaimed($real, $claimants[$dir.ToLowerInvariant()])
    $scanProblems = [System.Collections.Generic.List[String]]@()
    $repos = [ResiduePurge.HfCache]::ScanAs($cacheActor, $dir, $scanProblems, $failures)
    $problems.AddRange($scanProblems)
    if ($null -eq $repos) {
        continue
    }
    $cachePath = $dir
    $held = [Func[ResiduePurge.HfRepo, bool, string[]]] {
        param ($repo, $whole)
        & $heldOf $cachePath $repo $whole $cacheActor
    }.GetNewClosure()
    $plan = [ResiduePurge.HfCache]::Plan($dir, $repos, $selection, $held)
    foreach ($h in $plan.HeldBack) {
        $heldBack.Add([ordered]@{ cache = $dir; repo_id = $h[0]; repo_type = $h[1]; reason = $h[2]; detail = $h[3] })
    }
    $done = [System.Collections.Generic.List[Object]]@()
    foreach ($rp in $plan.Repos) {
        if (-not $module.CheckMode) {
            # a download may have started since the plan was made
            $late = if ($module.Params.force) { $null } else { [ResiduePurge.HfCache]::HeldLockAs($cacheActor, $dir, $rp.Repo) }
            if ($late) {
                $heldBack.Add([ordered]@{ cache = $dir; repo_id = $rp.Repo.RepoId; repo_type = $rp.Repo.RepoType; reason = 'locked'; detail = "$late is held by a running process (a download in progress)" })
                continue
            }
            $failures.AddRange([ResiduePurge.HfCache]::ExecuteAs($cacheActor, $dir, $rp))
        }
        $done.Add($rp)
        $gone = @($rp.Revisions)
        $head = "{0}/{1} {2}" -f $dir, $rp.Repo.RepoType, $rp.Repo.RepoId
        foreach ($rev in $rp.Repo.Revisions) {
            $line = "$head@$($rev.Commit)" + $(if ($rev.Refs.Count) { " [$($rev.Refs -join ', ')]" } else { '' })
            $before.Add($line)
            if (-not $rp.Whole -and $gone -notcontains $rev.Commit) {
                $after.Add($line)
            }
        }
        foreach ($inc in $rp.Incomplete) {
            $before.Add("$head blobs/$($inc[0])")
        }
        $incompleteBytes = [long]0
        foreach ($inc in $rp.Incomplete) {
            $incompleteBytes += [long]$inc[1]
        }
        $deleted.Add([ordered]@{
                cache = $dir
                repo_id = $rp.Repo.RepoId
                repo_type = $rp.Repo.RepoType
                path = $rp.Repo.Path
                revisions = @($rp.Revisions)
                whole_repo = $rp.Whole
                freed_bytes = $rp.FreedBytes
                blobs_deleted = $rp.Blobs.Count
                blobs_kept_shared = $rp.BlobsKeptShared
                refs_deleted = @($rp.Refs)
                incomplete_deleted = @($rp.Incomplete | ForEach-Object { $_[0] })
                incomplete_bytes = $incompleteBytes
                reason = @($rp.Reason)
            })
        $totals.freed += $rp.FreedBytes + $incompleteBytes
        $totals.blobs += $rp.Blobs.Count
        $totals.shared += $rp.BlobsKeptShared
    }
    $bytesAfter = $plan.BytesBefore
    foreach ($rp in $done) {
        $bytesAfter -= $rp.FreedBytes
    }
    $overBudget = $plan.MaxSize -ge 0 -and $bytesAfter -gt $plan.MaxSize
    $cacheResults.Add([ordered]@{
            path = $dir
            bytes_before = $plan.BytesBefore
            bytes_after = $bytesAfter
            max_size = if ($plan.MaxSize -ge 0) { $plan.MaxSize } else { $null }
            over_budget = $overBudget
            kept_over_budget = @($plan.KeptOverBudget)
        })
    if ($overBudget) {
        $problems.Add(("cache {0} stays over its budget ({1} > {2} bytes): what is left is kept, held back or out of scope ({3})" -f $dir, $bytesAfter, $plan.MaxSize, $(if ($plan.KeptOverBudget.Count) { $plan.KeptOverBudget -join ', ' } else { 'nothing' })))
        $module.Warn(("hf_cache: {0} is still over its budget of {1} bytes ({2} bytes)" -f $dir, $plan.MaxSize, $bytesAfter))
    }
}

$actors.Dispose()
foreach ($entry in $heldBack) {
    $module.Warn(("hf_cache: {0} {1} in {2} held back ({3}): {4}" -f $entry.repo_type, $entry.repo_id, $entry.cache, $entry.reason, $entry.detail))
}
if ($failures.Count -gt $maxFailures) {
    $more = $failures.Count - $maxFailures
    $failures.RemoveRange($maxFailures, $more)
    $failures.Add("... and $more more failures")
}
$module.Result.changed = $deleted.Count -gt 0
$module.Result.deleted = @($deleted)
$module.Result.freed_bytes = $totals.freed
$module.Result.blobs_deleted = $totals.blobs
$module.Result.blobs_kept_shared = $totals.shared
$module.Result.held_back = @($heldBack)
$module.Result.caches = @($cacheResults)
$module.Result.problems = @($problems)
$module.Result.failures = @($failures)
$module.Diff.before = ($before | ForEach-Object { "$_`n" }) -join ''
$module.Diff.after = ($after | ForEach-Object { "$_`n" }) -join ''
if ($failures.Count -gt 0) {
    $module.FailJson(("hf_cache: {0} removal(s) failed, first: {1}" -f $failures.Count, $failures[0]))
}
$module.ExitJson()
