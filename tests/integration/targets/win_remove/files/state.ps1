# Prints which of the given paths exist (long paths included), as JSON.
param ([Parameter(Mandatory = $true)][String[]]$Path)

$state = [ordered]@{}
foreach ($p in $Path) {
    $state[$p] = Test-Path -LiteralPath "\\?\$p"
}
$state | ConvertTo-Json -Compress
