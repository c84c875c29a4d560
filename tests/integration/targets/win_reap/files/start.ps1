# Starts a throwaway process with a name unique to this run (a copy of ping.exe) and prints its pid and name.
param ([Parameter(Mandatory = $true)][String]$Dir)

$ErrorActionPreference = 'Stop'
New-Item -ItemType Directory -Path $Dir -Force | Out-Null
$name = 'residue-test-{0}' -f ([Guid]::NewGuid().ToString('N').Substring(0, 8))
$exe = Join-Path $Dir "$name.exe"
Copy-Item -LiteralPath "$env:SystemRoot\System32\PING.EXE" -Destination $exe
$proc = Start-Process -FilePath $exe -ArgumentList @('-n', '600', '127.0.0.1') -PassThru -WindowStyle Hidden
@{ pid = $proc.Id; name = $name } | ConvertTo-Json -Compress
