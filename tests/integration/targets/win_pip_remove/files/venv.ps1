# Makes a virtual environment with two local packages, one requiring the other and both named by the target
# except the shared one, and prints its path. Needs a Python 3 registered on the host (py launcher).
param ([Parameter(Mandatory = $true)][String]$Root)

$ErrorActionPreference = 'Stop'
if (Test-Path -LiteralPath $Root) {
    Remove-Item -LiteralPath $Root -Recurse -Force
}
$venv = Join-Path $Root 'venv'
& py -3 -m venv $venv
if ($LASTEXITCODE) {
    throw "no Python 3 on this host (py -3 -m venv failed): the win_pip_remove target needs one"
}
foreach ($pkg in @(@('residue-test-shared', @()), @('residue-test-agent', @('residue-test-shared')), @('residue-test-other', @('residue-test-shared')))) {
    $name, $requires = $pkg
    $src = Join-Path $Root $name
    New-Item -ItemType Directory -Path (Join-Path $src ($name -replace '-', '_')) -Force | Out-Null
    Set-Content -LiteralPath (Join-Path $src (Join-Path ($name -replace '-', '_') '__init__.py')) -Value ''
    $deps = ($requires | ForEach-Object { "'$_'" }) -join ', '
    Set-Content -LiteralPath (Join-Path $src 'setup.py') -Value "from setuptools import setup; setup(name='$name', version='1.0', packages=['$($name -replace '-', '_')'], install_requires=[$deps])"
}
& (Join-Path $venv 'Scripts\python.exe') -m pip install --no-index --no-build-isolation (Join-Path $Root 'residue-test-shared') (Join-Path $Root 'residue-test-agent') (Join-Path $Root 'residue-test-other') | Out-Null
if ($LASTEXITCODE) {
    throw "pip install failed"
}
@{ venv = $venv } | ConvertTo-Json -Compress
