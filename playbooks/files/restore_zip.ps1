# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# restore.yml's Windows branch, run by ansible.windows.win_powershell: compiles the collection's own backup code
# (_WinFiles.cs, _WinBackup.cs, handed over as text) with ResidueRestore.cs, then verifies the zip against its
# manifest (every member's name, type, size and sha256) before writing anything, and writes each entry where its
# manifest line says, never through a junction or symbolic link. $Ansible.Result: src, entries, files, refused.
[CmdletBinding()]
param (
    [Parameter(Mandatory = $true)][String]$Archive,
    [Parameter(Mandatory = $true)][String]$Manifest,
    [Parameter(Mandatory = $true)][String[]]$Sources,
    [Bool]$DryRun = $false
)

$ErrorActionPreference = 'Stop'
if (-not ('ResiduePurgeRestore.ZipRestore' -as [Type])) {
    Add-Type -AssemblyName System.IO.Compression
    $work = Join-Path -Path ([IO.Path]::GetTempPath()) -ChildPath ('residue-restore-' + [Guid]::NewGuid())
    [void][IO.Directory]::CreateDirectory($work)
    try {
        $files = for ($i = 0; $i -lt $Sources.Count; $i++) {
            $file = Join-Path -Path $work -ChildPath ('source{0}.cs' -f $i)
            [IO.File]::WriteAllText($file, $Sources[$i])
            $file
        }
        $references = @([System.IO.Compression.ZipArchive].Assembly.Location, [System.Linq.Enumerable].Assembly.Location)
        Add-Type -Path $files -ReferencedAssemblies $references
    }
    finally {
        Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
    }
}

$itself = [Func[String, String]] { param($path) $path }
$result = [ResiduePurgeRestore.ZipRestore]::Restore($Archive, $Manifest, $itself, $DryRun)
$Ansible.Result = @{
    src = $Archive
    manifest = $Manifest
    entries = $result.Entries
    files = @($result.Files)
    refused = @($result.Refused)
}
$Ansible.Changed = (-not $DryRun) -and $result.Files.Count -gt 0
