; Inno Setup script for Sensorium Desktop on Windows (64-bit).
;
; Build on Windows, from the repository root:
;   1. py -3.11 -m venv .venv && .venv\Scripts\pip install -e .[dist]
;   2. put a redis-server.exe >= 6.2 on PATH (Memurai Developer, or a build of Redis for
;      Windows); the spec bundles it as redis\redis-server.exe. Without one the app needs
;      redis_url in sensorium.toml (a lab Redis server).
;   3. .venv\Scripts\pyinstaller --noconfirm sensorium.spec        -> dist\sensorium\
;   4. dist\sensorium\sensorium.exe selftest                        (must print 6/6)
;   5. "C:\Program Files (x86)\Inno Setup 6\ISCC.exe" /DAppVersion=0.1.0 installer\windows\sensorium.iss
;      -> dist\sensorium-0.1.0-windows-x64-setup.exe
;
; Installs per machine (Program Files, admin) or per user (the dialog offers both); the
; Start-menu group has the app, the self-test and the uninstaller. Recordings and settings
; live in %LOCALAPPDATA%\Sensorium and are kept on uninstall.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "Sensorium Desktop"
#define AppExe "sensorium-gui.exe"

[Setup]
AppId={{6F1C2A5E-3B8D-4C1E-9A7F-5E2D8B4C0A11}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=Sensorium Desktop
VersionInfoVersion={#AppVersion}
DefaultDirName={autopf}\Sensorium
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=admin
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=sensorium-{#AppVersion}-windows-x64-setup
SetupIconFile=..\..\resources\icons\sensorium.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "..\..\dist\sensorium\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "..\..\resources\sensorium.toml"; DestDir: "{app}"; DestName: "sensorium.toml.example"; Flags: ignoreversion

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{app}"
Name: "{group}\{#AppName} self-test"; Filename: "{cmd}"; Parameters: "/k ""{app}\sensorium.exe"" selftest"; WorkingDir: "{app}"
Name: "{group}\{cm:UninstallProgram,{#AppName}}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{app}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallRun]
; stop the embedded Redis if the app left one running, so its files can be removed
Filename: "{app}\sensorium.exe"; Parameters: "redis --stop"; Flags: runhidden waituntilterminated; RunOnceId: "StopEmbeddedRedis"
