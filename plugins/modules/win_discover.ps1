#!powershell

# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinHost
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinFiles
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinHfCache
#AnsibleRequires -CSharpUtil ansible_collections.residue.purge.plugins.module_utils._WinActAs
#AnsibleRequires -PowerShell ansible_collections.residue.purge.plugins.module_utils._WinResidue

$spec = @{
    options = @{
        targets = @{ type = 'list'; elements = 'str'; default = @() }
        profiles = @{ type = 'dict'; default = @{} }
        homes = @{ type = 'list'; elements = 'path'; default = @() }
        users = @{ type = 'raw'; default = 'all' }
        extra_hf_caches = @{ type = 'list'; elements = 'path'; default = @() }
        scan_processes = @{ type = 'bool'; default = $true }
        older_than = @{ type = 'str' }
        one_file_system = @{ type = 'bool'; default = $true }
        search_roots = @{ type = 'list'; elements = 'path'; default = @() }
    }
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$module.Result.changed = $false

$problems = [System.Collections.Generic.List[String]]@()
try {
    $scope = Get-ResidueScope -Module $module -Targets $module.Params.targets
    $resolved = Resolve-ResiduePath -Scope $scope
    $cutoff = $null
    if ($module.Params.older_than) {
        $now = ([DateTime]::UtcNow - [DateTime]'1970-01-01').TotalSeconds
        $cutoff = $now - [ResiduePurge.WinHost]::ParseDuration($module.Params.older_than, 'older_than')
    }
}
catch {
    $module.FailJson((Get-ErrorText -ErrorRecord $_))
}
$problems.AddRange($scope.Problems)
foreach ($user in $scope.Users) {
    if (-not (Test-Path -LiteralPath $user.Home -PathType Container -ErrorAction SilentlyContinue)) {
        $problems.Add(("home {0} of user {1} is not readable here: its residues are not listed (run with become)" -f $user.Home, $user.Name))
    }
}

# A user's residue is sized with that user's rights (_WinActAs: the module impersonates the user's own token), so
# what their ACLs refuse them is named in problems and not counted; a user whose token cannot be had has those
# residues left out of the result, each named ('...: not sized: could not act as ...'), never sized as the module.
$residues = [System.Collections.Generic.List[Object]]@()
$usages = @{}
$actors = [ResiduePurge.Actors]::new($scope.Users)
foreach ($r in $resolved) {
    if (-not (Test-Path -LiteralPath $r.Path)) {
        continue
    }
    $key = $r.Path.ToLowerInvariant()
    if (-not $usages.ContainsKey($key)) {
        $measured = $actors.ForResolved($r).Measure($r.Path, $false, $problems)
        $usages[$key] = $measured
        if ($null -ne $measured) {
            $problems.AddRange($measured.Problems)
        }
    }
    $usage = $usages[$key]
    if ($null -eq $usage) {
        continue
    }
    $residues.Add([ordered]@{
            target = $r.Target
            kind = 'path'
            path = $r.Path
            user = [ResiduePurge.WinHost]::OwnerOf($r.Path)
            bytes = $usage.Bytes
            files = $usage.Files
            newest_mtime = $usage.NewestMtime
            last_access = $usage.LastAccess
        })
}

$caches = Find-HubCache -Scope $scope -Extra $module.Params.extra_hf_caches
foreach ($problem in $scope.Problems) {
    if (-not $problems.Contains($problem)) {
        $problems.Add($problem)
    }
}
$repoTargets = [ordered]@{}
foreach ($name in $scope.Selected) {
    $globs = [ResiduePurge.WinHost]::Field($scope.Profiles[$name], 'hf_repos', $null)
    if ($globs.Count -gt 0) {
        $repoTargets[$name] = $globs
    }
}
if ($repoTargets.Count -gt 0) {
    foreach ($cache in $caches) {
        # scanned with the rights of the cache's user; one whose token cannot be had is left out and named
        $scanProblems = [System.Collections.Generic.List[String]]@()
        $repos = [ResiduePurge.HfCache]::ScanAs($actors.ForClaimed($cache.path, $cache.claimant), $cache.path, $scanProblems, $scanProblems)
        $problems.AddRange($scanProblems)
        if ($null -eq $repos) {
            continue
        }
        foreach ($repo in $repos) {
            foreach ($name in $repoTargets.Keys) {
                if (-not [ResiduePurge.WinHost]::AnyGlob($repo.RepoId, $repoTargets[$name], $false)) {
                    continue
                }
                $residues.Add([ordered]@{
                        target = $name
                        kind = 'hf_repo'
                        path = $repo.Path
                        user = [ResiduePurge.WinHost]::OwnerOf($repo.Path)
                        bytes = $repo.DiskBytes
                        files = $repo.Files
                        newest_mtime = $repo.NewestMtime
                        last_access = $repo.LastAccess
                        repo_id = $repo.RepoId
                        repo_type = $repo.RepoType
                        blob_bytes = $repo.BlobBytes
                        revisions = @($repo.Revisions | ForEach-Object {
                                [ordered]@{ commit = $_.Commit; refs = @($_.Refs); bytes = $_.Bytes; last_modified = $_.LastModified }
                            })
                    })
            }
        }
    }
}

if ($null -ne $cutoff) {
    $residues = [System.Collections.Generic.List[Object]]@($residues | Where-Object {
            [Math]::Max($_.last_access, $_.newest_mtime) -lt $cutoff
        })
}
$counted = @{}
$total = 0
foreach ($r in $residues) {
    $key = $r.path.ToLowerInvariant()
    if (-not $counted.ContainsKey($key)) {
        $counted[$key] = $true
        $total += $r.bytes
    }
}

$processes = [System.Collections.Generic.List[Object]]@()
$all = @(Get-ResidueProcess)
$lineage = Get-ProcessLineage -Processes $all  # where each came from: verify names what brought a target back
foreach ($name in $scope.Selected) {
    $names = [ResiduePurge.WinHost]::Field($scope.Profiles[$name], 'processes', 'names')
    $cmdline = [ResiduePurge.WinHost]::Field($scope.Profiles[$name], 'processes', 'cmdline')
    if ($names.Count -eq 0 -and $cmdline.Count -eq 0) {
        continue
    }
    foreach ($p in $all) {
        if (Test-ProcessMatch -Process $p -Names $names -Cmdline $cmdline) {
            $owner = Get-CimInstance -ClassName Win32_Process -Filter "ProcessId = $($p.pid)" -ErrorAction SilentlyContinue |
                Invoke-CimMethod -MethodName GetOwner -ErrorAction SilentlyContinue
            $processes.Add([ordered]@{
                    pid = $p.pid
                    ppid = $p.ppid
                    name = $p.name
                    user = if ($owner -and $owner.User) { $owner.User } else { $null }
                    cmdline = @($p.cmdline)
                    target = $name
                    parents = $lineage[$p.pid].parents
                    restarted_by = $lineage[$p.pid].restarted_by
                })
        }
    }
}

$packages = [System.Collections.Generic.List[Object]]@()
$wanted = @{}
foreach ($name in $scope.Selected) {
    foreach ($dist in [ResiduePurge.WinHost]::Field($scope.Profiles[$name], 'pip', $null)) {
        $normal = ConvertTo-NormalizedName -Name $dist
        if (-not $wanted.ContainsKey($normal)) {
            $wanted[$normal] = [System.Collections.Generic.List[String]]@()
        }
        $wanted[$normal].Add($name)
    }
}
if ($wanted.Count -gt 0) {
    foreach ($environment in Find-PythonEnvironment -Scope $scope -SearchRoots $module.Params.search_roots -Actors $actors -Problems $problems) {
        # a user's environment (in their profile) is read with that user's rights: a METADATA they linked to a
        # file only the administrators may read lists nothing
        $envActor = $actors.ForPath($environment.path)
        if (-not $envActor.Usable) {
            $problems.Add(("{0}: packages not read: {1}" -f $environment.path, $envActor.Error))
            continue
        }
        foreach ($dist in Get-SiteDistribution -Environment $environment -Actor $envActor) {
            if (-not $wanted.ContainsKey($dist.name)) {
                continue
            }
            foreach ($target in $wanted[$dist.name]) {
                $packages.Add([ordered]@{
                        target = $target
                        name = $dist.name
                        version = $dist.version
                        environment = $environment.path
                        python = $environment.python
                        kind = $environment.kind
                        user = $environment.user
                    })
            }
        }
    }
}

$shown = @($problems | Select-Object -Unique)
if ($shown.Count -gt 100) {
    $shown = @($shown[0..99]) + @("... and $($shown.Count - 100) more problems")
}
foreach ($problem in $shown | Select-Object -First 20) {
    $module.Warn($problem)
}

$actors.Dispose()
$module.Result.residues = @($residues)
$module.Result.processes = @($processes)
$module.Result.packages = @($packages)
$module.Result.hf_caches = @($caches | ForEach-Object {
        [ordered]@{ path = $_.path; user = $_.user; source = $_.source; sources = @($_.sources) }
    })
$module.Result.users = @($scope.Users | ForEach-Object { $_.Name })
$module.Result.targets = @($scope.Selected)
$module.Result.total_bytes = $total
$module.Result.problems = $shown
$module.ExitJson()
