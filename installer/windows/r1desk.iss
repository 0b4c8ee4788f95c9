; Inno Setup script for r1desk on Windows: installs the app folder that installer/build made
; (dist\r1desk\, with r1desk.exe for the window and r1desk-cli.exe for a terminal) for the
; current user, without administrator rights, with a Start menu entry and an uninstaller.
;
;   iscc /DAppVersion=0.1.0 installer\windows\r1desk.iss
;
; installer/build runs this when iscc (Inno Setup 6) is on PATH; the setup program lands in
; dist\r1desk-<version>-windows-x64-setup.exe. Uninstalling keeps the user's data folder
; (%LOCALAPPDATA%\r1desk) unless they tick the box that removes it.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#define AppName "r1desk"
#define Root AddBackslash(SourcePath) + "..\.."

[Setup]
AppId={{6F1C2A94-7D3E-4B8A-9C51-2E0D4F7A1B36}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=r1desk
AppComments=Run DeepSeek-R1 and other GGUF models on your own computer
DefaultDirName={localappdata}\Programs\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#Root}\dist
OutputBaseFilename={#AppName}-{#AppVersion}-windows-x64-setup
SetupIconFile={#Root}\build\icons\r1desk.ico
UninstallDisplayIcon={app}\r1desk.exe
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ChangesEnvironment=no
CloseApplications=yes

[Languages]
Name: "en"; MessagesFile: "compiler:Default.isl"
Name: "zh_CN"; MessagesFile: "compiler:Languages\ChineseSimplified.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#Root}\dist\r1desk\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\r1desk.exe"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\r1desk.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\r1desk.exe"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; The app folder only: the data folder is the user's, removed only when they ask (below).
Type: filesandordirs; Name: "{app}\_internal"

[Code]
var
  RemoveData: Boolean;

function InitializeUninstall(): Boolean;
begin
  RemoveData := (not UninstallSilent) and
    (MsgBox('Also delete your conversations, settings and models in ' + ExpandConstant('{localappdata}\r1desk') + '?',
            mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES);
  Result := True;
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if (CurUninstallStep = usPostUninstall) and RemoveData then
  begin
    DelTree(ExpandConstant('{localappdata}\r1desk'), True, True, True);
    RegDeleteKeyIncludingSubkeys(HKEY_CURRENT_USER, 'Software\r1desk');
  end;
end;
