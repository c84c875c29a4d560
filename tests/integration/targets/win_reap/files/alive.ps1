# Prints whether a pid is running, as JSON.
param ([Parameter(Mandatory = $true)][Int32]$ProcessId)

@{ alive = [bool](Get-Process -Id $ProcessId -ErrorAction SilentlyContinue) } | ConvertTo-Json -Compress
