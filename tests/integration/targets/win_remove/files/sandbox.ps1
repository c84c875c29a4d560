# Builds the sandbox of the win_remove target and prints it as JSON: a home with residues, a junction leading
# out of a residue to a sentinel outside it, a read-only file and a path longer than MAX_PATH.
param ([Parameter(Mandatory = $true)][String]$Root)

$ErrorActionPreference = 'Stop'
if (Test-Path -LiteralPath $Root) {
    Remove-Item -LiteralPath $Root -Recurse -Force
}
$userHome = Join-Path $Root 'home\ana'
$cache = Join-Path $userHome 'AppData\Local\open-autoglm'
$outside = Join-Path $Root 'outside'
New-Item -ItemType Directory -Path $cache, $outside, (Join-Path $userHome 'AppData\Roaming\open-autoglm') -Force | Out-Null
Set-Content -LiteralPath (Join-Path $cache 'weights.bin') -Value ('x' * 4096)
Set-Content -LiteralPath (Join-Path $userHome 'AppData\Roaming\open-autoglm\config.yaml') -Value 'model: x'
Set-Content -LiteralPath (Join-Path $outside 'sentinel.txt') -Value 'must survive'
New-Item -ItemType Junction -Path (Join-Path $cache 'escape') -Target $outside | Out-Null
$readonly = Join-Path $cache 'readonly.txt'
Set-Content -LiteralPath $readonly -Value 'ro'
(Get-Item -LiteralPath $readonly).IsReadOnly = $true
$deep = $cache
foreach ($i in 1..30) {
    $deep = Join-Path $deep ('d{0:D2}-long-directory-name' -f $i)
}
New-Item -ItemType Directory -Path "\\?\$deep" -Force | Out-Null
Set-Content -LiteralPath "\\?\$deep\deep.txt" -Value 'deep'
@{ home = $userHome; cache = $cache; outside = $outside; deep = $deep } | ConvertTo-Json -Compress
