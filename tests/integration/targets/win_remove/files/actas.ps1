# Builds (or cleans up) the act-as sandbox of the win_remove target and prints it as JSON: two local users, each
# with a home holding an open-autoglm residue. rp-actas's residue holds a directory only SYSTEM and the
# Administrators may touch (the module's own rights could delete it, the user's cannot); rp-actas-off is disabled,
# so no S4U logon can be made for it and its residue must be left whole.
param (
    [Parameter(Mandatory = $true)][String]$Root,
    [ValidateSet('build', 'clean')][String]$Action = 'build'
)

$ErrorActionPreference = 'Stop'
$names = 'rp-actas', 'rp-actas-off'
if (Test-Path -LiteralPath $Root) {
    Remove-Item -LiteralPath $Root -Recurse -Force
}
foreach ($name in $names) {
    if (Get-LocalUser -Name $name -ErrorAction SilentlyContinue) {
        Remove-LocalUser -Name $name
    }
}
if ($Action -eq 'clean') {
    return
}

$result = @{}
foreach ($name in $names) {
    # S4U needs no password; the account needs one that meets the password policy
    $password = ConvertTo-SecureString -String ('Rp1!' + [Guid]::NewGuid().ToString('N')) -AsPlainText -Force
    New-LocalUser -Name $name -Password $password -Description 'residue.purge win_remove target' | Out-Null
    $userHome = Join-Path $Root "home\$name"
    $cache = Join-Path $userHome 'AppData\Local\open-autoglm'
    $guarded = Join-Path $cache 'guarded'
    New-Item -ItemType Directory -Path $guarded -Force | Out-Null
    Set-Content -LiteralPath (Join-Path $cache 'mine.txt') -Value 'the user may delete this'
    Set-Content -LiteralPath (Join-Path $guarded 'kept.txt') -Value 'only SYSTEM and the Administrators may'
    & icacls.exe $userHome /setowner $name /T /C /Q | Out-Null
    & icacls.exe $userHome /inheritance:r /grant:r "${name}:(OI)(CI)F" '*S-1-5-18:(OI)(CI)F' '*S-1-5-32-544:(OI)(CI)F' /T /C /Q | Out-Null
    & icacls.exe $guarded /setowner '*S-1-5-18' /T /C /Q | Out-Null
    & icacls.exe $guarded /inheritance:r /grant:r '*S-1-5-18:(OI)(CI)F' '*S-1-5-32-544:(OI)(CI)F' /T /C /Q | Out-Null
    & icacls.exe $guarded /remove:g $name /T /C /Q | Out-Null
    $result[$name] = @{ home = $userHome; cache = $cache; guarded = $guarded }
}
Disable-LocalUser -Name 'rp-actas-off'
$result | ConvertTo-Json -Compress
