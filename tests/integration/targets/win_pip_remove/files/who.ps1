# Prints, as JSON, the accounts the .pth file of actas.ps1 recorded in each given directory (one per interpreter
# start), and whether each given path exists.
param ([Parameter(Mandatory = $true)][String[]]$Who, [String[]]$Path = @())

$state = [ordered]@{ who = [ordered]@{}; exists = [ordered]@{} }
foreach ($dir in $Who) {
    $state.who[$dir] = @(Get-ChildItem -LiteralPath $dir -File -ErrorAction SilentlyContinue |
            ForEach-Object { (Get-Content -LiteralPath $_.FullName -Raw).Trim() })
}
foreach ($p in $Path) {
    $state.exists[$p] = Test-Path -LiteralPath $p
}
$state | ConvertTo-Json -Compress -Depth 4
