# Builds two hub caches the way huggingface_hub writes them on Windows and prints their paths as JSON:
# one with symbolic links from snapshots to blobs (Developer Mode or an administrator), one with copies.
# Each holds a target repo whose two revisions share a blob, and a repo of another tool.
param ([Parameter(Mandatory = $true)][String]$Root)

$ErrorActionPreference = 'Stop'
if (Test-Path -LiteralPath $Root) {
    Remove-Item -LiteralPath $Root -Recurse -Force
}
Function New-Repo($Cache, $Name, $Links) {
    $repo = Join-Path $Cache $Name
    $blobs = Join-Path $repo 'blobs'
    New-Item -ItemType Directory -Path $blobs, (Join-Path $repo 'refs') -Force | Out-Null
    $shared = 'a' * 40
    $only = 'b' * 40
    Set-Content -LiteralPath (Join-Path $blobs $shared) -Value ('s' * 1000) -NoNewline
    Set-Content -LiteralPath (Join-Path $blobs $only) -Value ('o' * 2000) -NoNewline
    $revisions = @{ ('1' * 40) = @($shared, $only); ('2' * 40) = @($shared) }
    foreach ($commit in $revisions.Keys) {
        $snap = Join-Path $repo "snapshots\$commit"
        New-Item -ItemType Directory -Path $snap -Force | Out-Null
        $i = 0
        foreach ($blob in $revisions[$commit]) {
            $file = Join-Path $snap "file$i.bin"
            if ($Links) {
                New-Item -ItemType SymbolicLink -Path $file -Target (Join-Path $blobs $blob) | Out-Null
            }
            else {
                Copy-Item -LiteralPath (Join-Path $blobs $blob) -Destination $file
            }
            $i++
        }
    }
    if (-not $Links) {
        Get-ChildItem -LiteralPath $blobs | Remove-Item -Force  # the copy form keeps no blobs
    }
    Set-Content -LiteralPath (Join-Path $repo 'refs\main') -Value ('2' * 40) -NoNewline
}
$linked = Join-Path $Root 'linked\hub'
$copied = Join-Path $Root 'copied\hub'
foreach ($cache in @($linked, $copied)) {
    New-Item -ItemType Directory -Path $cache -Force | Out-Null
    New-Repo $cache 'models--zai-org--AutoGLM-Phone-9B' ($cache -eq $linked)
    New-Repo $cache 'models--other--kept' ($cache -eq $linked)
}
@{ linked = $linked; copied = $copied } | ConvertTo-Json -Compress
