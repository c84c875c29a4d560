# Creates one entry of each kind that would start a throwaway agent again: a Run value of the current user,
# a Startup-folder shortcut and a scheduled task. Prints their names as JSON; -Check prints which exist.
param ([Parameter(Mandatory = $true)][String]$Name, [Switch]$Check)

$run = 'HKCU:\Software\Microsoft\Windows\CurrentVersion\Run'
$lnk = Join-Path ([Environment]::GetFolderPath('Startup')) "$Name.lnk"
if ($Check) {
    @{
        run = $null -ne (Get-ItemProperty -LiteralPath $run -Name $Name -ErrorAction SilentlyContinue)
        startup = Test-Path -LiteralPath $lnk
        task = $null -ne (Get-ScheduledTask -TaskName $Name -ErrorAction SilentlyContinue)
    } | ConvertTo-Json -Compress
    return
}
$ErrorActionPreference = 'Stop'
$exe = "C:\residue-purge-test\autostart\$Name.exe"
New-ItemProperty -LiteralPath $run -Name $Name -Value "`"$exe`" --serve" -PropertyType String -Force | Out-Null
$shell = New-Object -ComObject WScript.Shell
$link = $shell.CreateShortcut($lnk)
$link.TargetPath = $exe
$link.Save()
$action = New-ScheduledTaskAction -Execute $exe -Argument '--serve'
Register-ScheduledTask -TaskName $Name -Action $action -Trigger (New-ScheduledTaskTrigger -AtLogOn) -Force | Out-Null
@{ name = $Name; lnk = $lnk } | ConvertTo-Json -Compress
