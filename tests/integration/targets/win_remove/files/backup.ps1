# Checks a backup of win_remove independently of _WinBackup.cs and prints JSON: every manifest line has its zip
# member (drive letter or share as first component) with that size and sha256, nothing else is in the zip, and
# no member lies below the junction (its target must not be archived).
param ([Parameter(Mandatory = $true)][String]$Archive, [Parameter(Mandatory = $true)][String]$Manifest, [String]$Junction)

$ErrorActionPreference = 'Stop'
Add-Type -AssemblyName System.IO.Compression
Add-Type -AssemblyName System.IO.Compression.FileSystem
$zip = [System.IO.Compression.ZipFile]::OpenRead($Archive)
$problems = [System.Collections.Generic.List[String]]@()
try {
    $members = @($zip.Entries)
    $lines = @(Get-Content -LiteralPath $Manifest | Where-Object { $_ })
    if ($members.Count -ne $lines.Count) {
        $problems.Add("$($members.Count) members, $($lines.Count) manifest lines")
    }
    $sha = [System.Security.Cryptography.SHA256]::Create()
    for ($i = 0; $i -lt [Math]::Min($members.Count, $lines.Count); $i++) {
        $want = $lines[$i] | ConvertFrom-Json
        $name = ($want.path -replace '^([A-Za-z]):\\', '$1\' -replace '^\\\\', 'UNC\') -replace '\\', '/'
        if ($want.type -eq 'dir') {
            $name += '/'
        }
        $member = $members[$i]
        if ($member.FullName -ne $name) {
            $problems.Add("member $i is $($member.FullName), the manifest says $name")
            continue
        }
        if ($want.type -eq 'file') {
            $stream = $member.Open()
            try {
                $hex = -join ($sha.ComputeHash($stream) | ForEach-Object { $_.ToString('x2') })
            }
            finally {
                $stream.Dispose()
            }
            if ($member.Length -ne $want.size -or $hex -ne $want.sha256) {
                $problems.Add("$name differs from its manifest line")
            }
        }
        if ($Junction -and $want.path.StartsWith($Junction + '\', [StringComparison]::OrdinalIgnoreCase)) {
            $problems.Add("$($want.path) lies below the junction: its target was archived")
        }
    }
}
finally {
    $zip.Dispose()
}
@{ members = $members.Count; problems = @($problems) } | ConvertTo-Json -Compress
