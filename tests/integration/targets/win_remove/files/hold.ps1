# Starts a process that keeps a file open without delete sharing (as a model server keeps its weights) and
# prints its pid; the target stops it with residue.purge.reap afterwards.
param ([Parameter(Mandatory = $true)][String]$File)

$command = "`$f = [IO.File]::Open('$File', 'Open', 'Read', 'Read'); Start-Sleep -Seconds 600"
$proc = Start-Process -FilePath powershell.exe -ArgumentList @('-NoProfile', '-Command', $command) -PassThru -WindowStyle Hidden
Start-Sleep -Seconds 3
$proc.Id
