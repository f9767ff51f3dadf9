"""First run (and Settings): IMAP/SMTP fields, "Test connection", save the profile.

An address and the Google / Microsoft 365 / Find settings buttons fill the fields
(helpdesk/auth/discovery.py); a side that signs in with OAuth2 has a **Sign in** button
(ui/signin.py) that runs the browser flow off the main thread and keeps the refresh token
in the OS keyring; the profile then gets the ``auth`` / ``oauth_*`` keys and no secret.

The test runs :func:`helpdesk.mail.imap.check_connection` on a background thread
and shows its plain-language answer (DNS, TLS certificate, login, folder). Saving
writes the TOML profile with the documented keys and puts the passwords in the
OS keyring; without a keyring the person is told so and can give a password
command instead.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIntValidator
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from helpdesk.config import (
    ImapSettings,
    Profile,
    SmtpSettings,
    auth_pairs,
    find_config,
    load_profile,
    parse_profile,
    set_password,
)
from helpdesk.errors import HelpdeskError
from ui import style
from ui.signin import SignInRows
from ui.style import C
from ui.tasks import BackgroundCall

SECURITY = (("tls", "TLS (recommended)"), ("starttls", "STARTTLS"),
            ("plain", "None: local testing only"))
IMAP_PORTS = {"tls": 993, "starttls": 143, "plain": 143}
SMTP_PORTS = {"tls": 465, "starttls": 587, "plain": 25}


class PortEdit(QLineEdit):
    """A port number field (1-65535) with ``value()`` / ``setValue()``."""

    def __init__(self, value: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setValidator(QIntValidator(1, 65535, self))
        self.setFixedWidth(72)
        self.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.setValue(value)

    def value(self) -> int:
        text = self.text().strip()
        return int(text) if text.isdigit() else 0

    def setValue(self, value: int) -> None:
        self.setText(str(value))


class ServerBox(QGroupBox):
    """Host, port, security, user name, password (shared by IMAP and SMTP)."""

    def __init__(self, title: str, ports: dict[str, int], parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self.ports = ports
        self.form = QFormLayout(self)
        self.form.setHorizontalSpacing(12)
        self.form.setVerticalSpacing(7)
        self.host = QLineEdit()
        self.host.setPlaceholderText("mail.example.com")
        # Room for a real host name ("outlook.office365.com", "imap.mail.example.org").
        self.host.setMinimumWidth(self.host.fontMetrics().horizontalAdvance(
            "imap.mail.example-company.com") + 24)
        self.port = PortEdit(ports["tls"])
        self.security = QComboBox()
        for key, label in SECURITY:
            self.security.addItem(label, key)
        self.security.currentIndexChanged.connect(self._security_changed)
        self.username = QLineEdit()
        self.username.setPlaceholderText("support@example.com")
        self.username.setMinimumWidth(self.host.minimumWidth())
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("stored in the system keyring")
        row = QHBoxLayout()
        row.setSpacing(8)
        row.addWidget(self.host, 1)
        row.addWidget(QLabel("Port"))
        row.addWidget(self.port)
        self.form.addRow("Server", row)
        self.form.addRow("Security", self.security)
        self.form.addRow("User name", self.username)
        self.form.addRow("Password", self.password)

    def security_key(self) -> str:
        return str(self.security.currentData())

    def set_security(self, key: str) -> None:
        i = self.security.findData(key)
        if i >= 0:
            self.security.setCurrentIndex(i)

    def _security_changed(self, _i: int) -> None:
        if self.port.value() in self.ports.values():
            self.port.setValue(self.ports[self.security_key()])


class SetupDialog(QDialog):
    """See the module docstring. ``saved`` carries the profile read back from disk."""

    saved = Signal(object)
    tested = Signal(bool, str)
    #: (protocol, ok, message) after a Sign in click
    signed_in = Signal(str, bool, str)
    #: after Find settings / a provider button filled the fields
    suggested = Signal(str)

    def __init__(self, profile: Profile | None = None, path: str | Path | None = None,
                 problem: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("setupDialog")
        self.setWindowTitle("Set up Help desk")
        self.setMinimumWidth(900)
        self.path = Path(path) if path else (profile.source if profile and profile.source
                                             else find_config(None))
        self.profile: Profile | None = None
        self._calls: list[BackgroundCall] = []
        lay = QVBoxLayout(self)
        lay.setContentsMargins(24, 20, 24, 20)
        lay.setSpacing(12)
        title = QLabel("Connect to your team's support mailbox")
        title.setObjectName("sheetTitle")
        lay.addWidget(title)
        intro = QLabel("Everyone on the team uses the same mailbox. Passwords are kept in your "
                       "system keyring, never in the settings file.")
        intro.setObjectName("muted")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        if problem:
            warn = QLabel(problem)
            warn.setTextFormat(Qt.TextFormat.PlainText)
            warn.setObjectName("errorText")
            warn.setWordWrap(True)
            lay.addWidget(warn)

        me = QFormLayout()
        self.agent = QLineEdit()
        self.agent.setPlaceholderText("e.g. sam (how teammates see you)")
        me.addRow("Your name", self.agent)
        self.address = QLineEdit()
        self.address.setPlaceholderText("the support address, e.g. support@company.com")
        find = QHBoxLayout()
        find.setSpacing(8)
        find.addWidget(self.address, 1)
        self.google_button = QPushButton("Google")
        self.google_button.setToolTip("Gmail or Google Workspace: sign in with Google")
        self.microsoft_button = QPushButton("Microsoft 365")
        self.microsoft_button.setToolTip("Microsoft 365 or Outlook.com: sign in with Microsoft")
        self.find_button = QPushButton("Find settings")
        self.find_button.setToolTip("Look the address up: known providers, the domain's "
                                    "autoconfig document and DNS records")
        for b in (self.google_button, self.microsoft_button, self.find_button):
            find.addWidget(b)
        self.google_button.clicked.connect(lambda: self.use_preset("google"))
        self.microsoft_button.clicked.connect(lambda: self.use_preset("microsoft"))
        self.find_button.clicked.connect(self.find_settings)
        me.addRow("Mailbox", find)
        lay.addLayout(me)
        self._save_sent = True

        self.imap = ServerBox("Incoming mail (IMAP)", IMAP_PORTS)
        self.folders = QLineEdit("INBOX")
        self.folders.setToolTip("Folders to watch, separated by commas")
        self.sent_folder = QLineEdit("Sent")
        self.team_folder = QLineEdit("HelpDesk/Log")
        self.team_folder.setToolTip("A folder the app creates to coordinate the team")
        self.ca_file = QLineEdit()
        self.ca_file.setPlaceholderText("optional: your organisation's certificate authority")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_ca)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_file, 1)
        ca_row.addWidget(browse)
        self.password_command = QLineEdit()
        self.password_command.setPlaceholderText("optional, instead of the keyring: "
                                                 "e.g. pass show support")
        self.imap.form.addRow("Folders", self.folders)
        self.imap.form.addRow("Sent folder", self.sent_folder)
        self.imap.form.addRow("Team folder", self.team_folder)
        self.imap.form.addRow("CA file", ca_row)
        self.imap.form.addRow("Password command", self.password_command)
        boxes = QHBoxLayout()
        boxes.setSpacing(12)
        boxes.addWidget(self.imap, 1)
        lay.addLayout(boxes)

        self.smtp = ServerBox("Outgoing mail (SMTP)", SMTP_PORTS)
        self.smtp.username.setPlaceholderText("leave empty if the server needs no login")
        self.from_address = QLineEdit()
        self.from_address.setPlaceholderText("support@example.com")
        self.from_name = QLineEdit()
        self.from_name.setPlaceholderText("Example Support")
        self.smtp.form.addRow("From address", self.from_address)
        self.smtp.form.addRow("From name", self.from_name)
        boxes.addWidget(self.smtp, 1, Qt.AlignmentFlag.AlignTop)
        self.imap_signin = SignInRows(self.imap, "imap")
        self.smtp_signin = SignInRows(self.smtp, "smtp")
        self.imap_signin.sign_in_button.clicked.connect(lambda: self.sign_in("imap"))
        self.smtp_signin.sign_in_button.clicked.connect(lambda: self.sign_in("smtp"))
        # A sign-in side has no password, so no password command either.
        self.imap_signin.changed.connect(lambda: self.imap.form.setRowVisible(
            self.password_command, not self.imap_signin.oauth))

        self.result = QLabel()
        self.result.setTextFormat(Qt.TextFormat.PlainText)
        self.result.setObjectName("testResult")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result.hide()
        lay.addWidget(self.result)

        buttons = QHBoxLayout()
        buttons.setSpacing(8)
        buttons.setContentsMargins(0, 8, 0, 0)
        self.test_button = QPushButton("Test connection")
        self.test_button.setIcon(style.icon("refresh", C.muted))
        self.test_button.clicked.connect(self.test_connection)
        buttons.addWidget(self.test_button)
        buttons.addStretch(1)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.reject)
        self.save_button = QPushButton("Save")
        self.save_button.setObjectName("primary")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        buttons.addWidget(cancel)
        buttons.addWidget(self.save_button)
        lay.addLayout(buttons)
        if profile is not None:
            self._fill(profile)

    def _fill(self, p: Profile) -> None:
        self.agent.setText(p.agent)
        for box, s in ((self.imap, p.imap), (self.smtp, p.smtp)):
            box.set_security(s.security)
            box.host.setText(s.host)
            if s.port:
                box.port.setValue(s.port)
            box.username.setText(s.username)
            box.password.setPlaceholderText("unchanged (kept in the keyring)")
        self.folders.setText(", ".join(p.imap.folders))
        self.sent_folder.setText(p.imap.sent_folder or "")
        self.team_folder.setText(p.imap.team_folder)
        self.ca_file.setText(p.imap.ca_file or "")
        self.password_command.setText(p.imap.password_command or "")
        self.from_address.setText(p.smtp.from_address)
        self.from_name.setText(p.smtp.from_name)
        self.address.setText(p.imap.username if "@" in p.imap.username else "")
        self.imap_signin.fill(p.imap)
        self.smtp_signin.fill(p.smtp)
        self._save_sent = p.smtp.save_sent
        self._show_sign_in_state(p)

    def _browse_ca(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Certificate authority", str(Path.home()),
                                              "Certificates (*.pem *.crt *.cer);;All files (*)")
        if path:
            self.ca_file.setText(path)

    # --- settings from the fields -----------------------------------------------------

    def imap_settings(self) -> ImapSettings:
        folders = tuple(f.strip() for f in self.folders.text().split(",") if f.strip())
        return ImapSettings(
            host=self.imap.host.text().strip(), port=self.imap.port.value(),
            security=self.imap.security_key(), username=self.imap.username.text().strip(),
            password_command=self.password_command.text().strip() or None,
            ca_file=self.ca_file.text().strip() or None, folders=folders or ("INBOX",),
            sent_folder=self.sent_folder.text().strip() or None,
            team_folder=self.team_folder.text().strip() or "HelpDesk/Log",
            **self.imap_signin.kwargs())

    def smtp_settings(self) -> SmtpSettings:
        return SmtpSettings(
            host=self.smtp.host.text().strip(), port=self.smtp.port.value(),
            security=self.smtp.security_key(), username=self.smtp.username.text().strip(),
            from_address=self.from_address.text().strip(),
            from_name=self.from_name.text().strip(), save_sent=self._save_sent,
            **self.smtp_signin.kwargs())

    def _missing(self) -> str | None:
        if not self.agent.text().strip():
            return "Enter your name: teammates see it on the tickets you handle."
        if not self.imap.host.text().strip():
            return "Enter the IMAP server's name, e.g. imap.example.com."
        if not self.imap.username.text().strip():
            return "Enter the user name for the support mailbox."
        return None

    # --- test -----------------------------------------------------------------------

    def test_connection(self) -> None:
        """Check IMAP (login, folders), then SMTP if a server is given, off the main thread."""
        from helpdesk.mail import smtp as smtp_mail
        from helpdesk.mail.imap import check_connection

        if not self.imap.host.text().strip() or not self.imap.username.text().strip():
            self._show_result(False, "Enter the IMAP server and user name first.")
            return
        settings = self.imap_settings()
        password: str | None = self.imap.password.text()
        if settings.oauth:
            password = None  # the sign-in's token (Sign in first)
        elif not password and not settings.password_command:
            self._show_result(False, "Enter the password to test the connection.")
            return
        if settings.password_command and not settings.oauth:
            password = None
        outgoing = self.smtp_settings()
        smtp_password = self.smtp.password.text() or None
        self.test_button.setEnabled(False)
        self._show_result(None, f"Connecting to {settings.host}:{settings.port}…")
        call = BackgroundCall(self)
        self._calls.append(call)

        def check() -> tuple[bool, str]:
            # Both servers, each on its own line, whichever fails: two problems are
            # fixed in one go rather than one test at a time.
            ok = True
            try:
                check_connection(settings, password)  # type: ignore[arg-type]
                folders = ", ".join([*settings.folders, *([settings.sent_folder]
                                                         if settings.sent_folder else [])])
                imap_line = (f"Incoming mail (IMAP): connected to {settings.host} as "
                             f"{settings.username}. Found {folders}.")
            except HelpdeskError as exc:
                ok = False
                imap_line = f"Incoming mail (IMAP) failed: {exc}"
            except Exception as exc:  # shown to the person, never a crash
                ok = False
                imap_line = f"Incoming mail (IMAP) failed: {type(exc).__name__}: {exc}"
            if not outgoing.host:
                return ok, (imap_line + "\nOutgoing mail (SMTP): no server given yet, "
                            "replies cannot be sent.")
            try:
                smtp_line = ("Outgoing mail (SMTP): "
                             + smtp_mail.check_connection(outgoing, smtp_password))
            except HelpdeskError as exc:
                ok = False
                smtp_line = f"Outgoing mail (SMTP) failed: {exc}"
            except Exception as exc:
                ok = False
                smtp_line = f"Outgoing mail (SMTP) failed: {type(exc).__name__}: {exc}"
            return ok, f"{imap_line}\n{smtp_line}"

        call.finished.connect(lambda result: self._tested(call, bool(result[0]),
                                                          str(result[1])))
        call.failed.connect(lambda message: self._tested(call, False, message))
        call.start(check)

    def _tested(self, call: BackgroundCall, ok: bool, message: str) -> None:
        if call in self._calls:
            self._calls.remove(call)
        if not shiboken6.isValid(self):
            return
        self.test_button.setEnabled(True)
        self._show_result(ok, message)
        self.tested.emit(ok, message)

    def _show_result(self, ok: bool | None, message: str) -> None:
        self.result.setText(message)
        self.result.setProperty("kind", "" if ok is None else "ok" if ok else "error")
        self.result.style().unpolish(self.result)
        self.result.style().polish(self.result)
        self.result.show()

    # --- save -----------------------------------------------------------------------

    def save(self) -> None:
        problem = self._missing()
        if problem:
            self._show_result(False, problem)
            return
        imap, smtp = self.imap_settings(), self.smtp_settings()
        try:
            self._checked_profile()
            if self.imap.password.text() and not imap.password_command and not imap.oauth:
                set_password(imap, "imap", self.imap.password.text())
            if self.smtp.password.text() and smtp.host and smtp.username and not smtp.oauth:
                set_password(smtp, "smtp", self.smtp.password.text())
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                shutil.copy2(self.path, self.path.with_name(self.path.name + ".bak"))
            self.path.write_text(profile_toml(self.agent.text().strip(), imap, smtp),
                                 encoding="utf-8")
            self.profile = load_profile(self.path)
        except HelpdeskError as exc:
            self._show_result(False, str(exc))
            return
        except OSError as exc:
            self._show_result(False, f"Cannot write the settings file {self.path}: "
                                     f"{exc.strerror or exc}.")
            return
        self.saved.emit(self.profile)
        self.accept()

    # --- providers, discovery, sign-in -------------------------------------------------

    def _address(self) -> str:
        return (self.address.text().strip() or self.imap.username.text().strip()
                or self.from_address.text().strip())

    def use_preset(self, name: str) -> None:
        from helpdesk.auth.discovery import preset

        try:
            found = preset(name, self._address())
        except ValueError:
            self._show_result(False, "Enter the support mailbox's address first, e.g. "
                                     "support@company.com.")
            return
        self.apply_suggestion(found)

    def find_settings(self) -> None:
        """Fill the fields from the address (helpdesk/auth/discovery.py), off the main
        thread: looking a domain up may take a few seconds."""
        from helpdesk.auth.discovery import discover, split

        address = self._address()
        try:
            split(address)
        except ValueError:
            self._show_result(False, "Enter the support mailbox's address first, e.g. "
                                     "support@company.com.")
            return
        self.find_button.setEnabled(False)
        self._show_result(None, f"Looking up the settings for {address}…")
        call = BackgroundCall(self)
        self._calls.append(call)

        def done(found: Any) -> None:
            if call in self._calls:
                self._calls.remove(call)
            if not shiboken6.isValid(self):
                return
            self.find_button.setEnabled(True)
            if found is None:
                self._show_result(False, f"No settings are known for {address}: enter the "
                                         f"servers your provider gives.")
                self.suggested.emit("")
                return
            self.apply_suggestion(found)

        def failed(message: str) -> None:
            if call in self._calls:
                self._calls.remove(call)
            if shiboken6.isValid(self):
                self.find_button.setEnabled(True)
                self._show_result(False, message)

        call.finished.connect(done)
        call.failed.connect(failed)
        call.start(lambda: discover(address))

    def apply_suggestion(self, found: Any) -> None:
        """Put a :class:`helpdesk.auth.discovery.Suggestion` into the fields."""
        for box, rows, keys in ((self.imap, self.imap_signin, found.imap),
                                (self.smtp, self.smtp_signin, found.smtp)):
            if not keys:
                continue
            box.set_security(keys["security"])
            box.host.setText(keys["host"])
            box.port.setValue(int(keys["port"]))
            box.username.setText(keys["username"])
            rows.set_method(keys.get("oauth_provider") or "password"
                            if keys.get("auth") == "oauth2" else "password")
            if keys.get("oauth_tenant"):
                rows.tenant.setText(keys["oauth_tenant"])
        if found.imap.get("sent_folder"):
            self.sent_folder.setText(found.imap["sent_folder"])
        if found.imap.get("team_folder"):
            self.team_folder.setText(found.imap["team_folder"])
        if found.smtp.get("from_address"):
            self.from_address.setText(found.smtp["from_address"])
        self._save_sent = bool(found.smtp.get("save_sent", True))
        oauth = found.imap.get("auth") == "oauth2"
        then = (" Enter the client ID of your organisation's app registration, then click "
                "Sign in." if oauth else " Enter the password, then Test connection.")
        self._show_result(None, f"Filled in the settings for {found.title}."
                                f"{' ' + ' '.join(found.notes) if found.notes else ''}{then}")
        self.suggested.emit(found.provider)

    def _checked_profile(self) -> Profile:
        """The fields as a profile, checked as the app will read it (ConfigError)."""
        import tomllib

        text = profile_toml(self.agent.text().strip() or "me", self.imap_settings(),
                            self.smtp_settings())
        return parse_profile(tomllib.loads(text), self.path)

    def sign_in(self, protocol: str) -> None:
        """Run the browser sign-in for ``protocol`` (and the side sharing its account)."""
        from helpdesk.auth import sign_in

        rows = self.imap_signin if protocol == "imap" else self.smtp_signin
        try:
            profile = self._checked_profile()
        except HelpdeskError as exc:
            rows.show_state(str(exc), error=True)
            self.signed_in.emit(protocol, False, str(exc))
            return
        rows.sign_in_button.setEnabled(False)
        rows.show_state("Waiting for you to approve in your browser…")
        call = BackgroundCall(self)
        self._calls.append(call)

        def done(result: Any) -> None:
            if call in self._calls:
                self._calls.remove(call)
            if not shiboken6.isValid(self):
                return
            rows.sign_in_button.setEnabled(True)
            who = f" as {result.user}" if result.user else ""
            for side in result.sides:
                other = self.imap_signin if side == "imap" else self.smtp_signin
                other.show_state(f"Signed in{who}.")
            self.signed_in.emit(protocol, True, f"Signed in{who}.")

        def failed(message: str) -> None:
            if call in self._calls:
                self._calls.remove(call)
            if not shiboken6.isValid(self):
                return
            rows.sign_in_button.setEnabled(True)
            rows.show_state(message, error=True)
            self.signed_in.emit(protocol, False, message)

        call.finished.connect(done)
        call.failed.connect(failed)
        call.start(lambda: sign_in(profile, protocol))

    def _show_sign_in_state(self, profile: Profile) -> None:
        """Whether each OAuth2 side is signed in (read from the keyring, off the main
        thread: a keyring may ask to be unlocked)."""
        from helpdesk.auth import state

        sides = [s for s in ("imap", "smtp")
                 if (profile.imap if s == "imap" else profile.smtp).oauth]
        if not sides:
            return
        call = BackgroundCall(self)
        self._calls.append(call)

        def done(states: Any) -> None:
            if call in self._calls:
                self._calls.remove(call)
            if not shiboken6.isValid(self):
                return
            for side, st in states.items():
                rows = self.imap_signin if side == "imap" else self.smtp_signin
                if st.get("signed_in"):
                    who = f" as {st['user']}" if st.get("user") else ""
                    rows.show_state(f"Signed in{who}.")
                else:
                    rows.show_state(st.get("problem") or "Not signed in: click Sign in.",
                                    error=bool(st.get("problem")))

        call.finished.connect(done)
        call.failed.connect(lambda _m: None)
        call.start(lambda: {s: state(profile, s, check=False) for s in sides})


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def profile_toml(agent: str, imap: ImapSettings, smtp: SmtpSettings) -> str:
    """The profile as TOML, with the key names documented in the README."""
    imap_secret = ("a sign-in token (OAuth2) in the OS keyring after Sign in" if imap.oauth
                   else "from password_command below" if imap.password_command
                   else "in the OS keyring (service 'helpdesk')")
    if not smtp.host:
        smtp_secret = "no outgoing server yet"
    elif smtp.oauth:
        smtp_secret = "a sign-in token (OAuth2) in the OS keyring after Sign in"
    elif not smtp.username:
        smtp_secret = "none (the server needs no login)"
    else:
        smtp_secret = "in the OS keyring (service 'helpdesk')"
    lines = ["# Help desk profile, written by the setup dialog. No password is in this file.",
             f"# IMAP password: {imap_secret}.",
             f"# SMTP password: {smtp_secret}.",
             f"agent = {_toml(agent)}", "", "[imap]"]
    pairs: list[tuple[str, Any]] = [
        ("host", imap.host), ("port", imap.port), ("security", imap.security),
        ("username", imap.username), ("folders", list(imap.folders)),
        ("sent_folder", imap.sent_folder or ""), ("team_folder", imap.team_folder)]
    if imap.ca_file:
        pairs.append(("ca_file", imap.ca_file))
    if imap.password_command and not imap.oauth:
        pairs.append(("password_command", imap.password_command))
    pairs += auth_pairs(imap)
    lines += [f"{k} = {_toml(v)}" for k, v in pairs]
    if smtp.host:
        lines += ["", "[smtp]"]
        spairs: list[tuple[str, Any]] = [
            ("host", smtp.host), ("port", smtp.port), ("security", smtp.security),
            ("username", smtp.username)]
        if smtp.from_address:
            spairs.append(("from_address", smtp.from_address))
        if smtp.from_name:
            spairs.append(("from_name", smtp.from_name))
        if not smtp.save_sent:
            spairs.append(("save_sent", False))
        spairs += auth_pairs(smtp)
        lines += [f"{k} = {_toml(v)}" for k, v in spairs]
    return "\n".join(lines) + "\n"
