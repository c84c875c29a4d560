# Builds (or cleans up) the act-as sandbox of the win_pip_remove target and prints it as JSON: two local users,
# each with a home holding a venv with residue-test-agent installed and a .pth file that records, at every start of
# the interpreter, the account its process token belongs to (GetUserNameW: the token, not the USERNAME variable)
# in a directory of its own. rp-pipas's pip must run as rp-pipas; rp-pipas-off is disabled, so no S4U logon can be
# made for it: its venv must be left whole and no interpreter of it started at all. Needs a Python 3 installed for
# all users (py launcher), so that a user may run it.
param (
    [Parameter(Mandatory = $true)][String]$Root,
    [ValidateSet('build', 'clean')][String]$Action = 'build'
)

$ErrorActionPreference = 'Stop'
$names = 'rp-pipas', 'rp-pipas-off'
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

$src = Join-Path $Root 'src'
New-Item -ItemType Directory -Path (Join-Path $src 'residue_test_agent') -Force | Out-Null
Set-Content -LiteralPath (Join-Path $src 'residue_test_agent\__init__.py') -Value ''
Set-Content -LiteralPath (Join-Path $src 'setup.py') -Value "from setuptools import setup; setup(name='residue-test-agent', version='1.0', packages=['residue_test_agent'])"

$result = @{}
foreach ($name in $names) {
    # S4U needs no password; the account needs one that meets the password policy
    $password = ConvertTo-SecureString -String ('Rp1!' + [Guid]::NewGuid().ToString('N')) -AsPlainText -Force
    New-LocalUser -Name $name -Password $password -Description 'residue.purge win_pip_remove target' | Out-Null
    $userHome = Join-Path $Root "home\$name"
    $venv = Join-Path $userHome 'venv'
    $who = Join-Path $Root "who\$name"
    # a profile's own temporary directory: pip, run as the user, gets it as TEMP
    New-Item -ItemType Directory -Path (Join-Path $userHome 'AppData\Local\Temp'), $who -Force | Out-Null
    & py -3 -m venv $venv
    if ($LASTEXITCODE) {
        throw "no Python 3 on this host (py -3 -m venv failed): the win_pip_remove target needs one"
    }
    & (Join-Path $venv 'Scripts\python.exe') -m pip install --no-index --no-build-isolation $src | Out-Null
    if ($LASTEXITCODE) {
        throw "pip install failed"
    }
    $site = Join-Path $venv 'Lib\site-packages'
    $record = "import ctypes, os; b = ctypes.create_unicode_buffer(257); n = ctypes.c_ulong(257); " +
        "ctypes.windll.advapi32.GetUserNameW(b, ctypes.byref(n)); " +
        "open(os.path.join(r'$who', '%d.txt' % os.getpid()), 'w').write(b.value)"
    Set-Content -LiteralPath (Join-Path $site 'zz_residue_who.pth') -Value $record -Encoding ASCII
    & icacls.exe $userHome /setowner $name /T /C /Q | Out-Null
    & icacls.exe $userHome /inheritance:r /grant:r "${name}:(OI)(CI)F" '*S-1-5-18:(OI)(CI)F' '*S-1-5-32-544:(OI)(CI)F' /T /C /Q | Out-Null
    & icacls.exe $who /grant "*S-1-1-0:(OI)(CI)M" /C /Q | Out-Null
    # the installation's own record of the agent: present while the agent is installed
    $dist = Get-ChildItem -LiteralPath $site -Directory -Filter 'residue_test_agent-*.dist-info' | Select-Object -First 1
    $result[$name] = @{ home = $userHome; venv = $venv; who = $who; dist = $dist.FullName }
}
# what building the venvs recorded (run as the administrator) is not the module's
Get-ChildItem -LiteralPath (Join-Path $Root 'who') -Recurse -File | Remove-Item -Force
Disable-LocalUser -Name 'rp-pipas-off'
$result | ConvertTo-Json -Compress
