"""The sign-in rows of the setup dialog's server boxes: password or OAuth2, and Sign in.

:class:`SignInRows` adds to a server box (ui/setup_dialog.py ``ServerBox``) a choice of
how to log in ("Password", "Google", "Microsoft 365", "Other OAuth2 provider"), the app
registration's fields that choice needs, and a **Sign in** button whose state line says
whether this side is signed in. The flow itself runs in the core
(:func:`helpdesk.auth.sign_in`) on a background thread: the system browser opens, the
person approves there, and the refresh token goes to the OS keyring.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from helpdesk.config import ServerSettings

METHODS = (("password", "Password"), ("google", "Google (sign in with the browser)"),
           ("microsoft", "Microsoft 365 (sign in with the browser)"),
           ("custom", "Other OAuth2 provider"))


class SignInRows(QObject):
    """See the module docstring. ``changed`` fires when the method changes."""

    changed = Signal()

    def __init__(self, box: Any, protocol: str) -> None:
        super().__init__(box)
        self.box = box
        self.protocol = protocol
        self.method = QComboBox()
        for key, label in METHODS:
            self.method.addItem(label, key)
        self.method.currentIndexChanged.connect(self._update)
        self.client_id = QLineEdit()
        self.client_id.setPlaceholderText("the app registration's client id (README)")
        self.tenant = QLineEdit()
        self.tenant.setPlaceholderText("company.com, or the directory (tenant) id")
        self.client_secret = QLineEdit()
        self.client_secret.setPlaceholderText("the Desktop app client's secret (not confidential)")
        self.auth_url = QLineEdit()
        self.auth_url.setPlaceholderText("https://id.example.com/authorize")
        self.token_url = QLineEdit()
        self.token_url.setPlaceholderText("https://id.example.com/token")
        self.device_url = QLineEdit()
        self.device_url.setPlaceholderText("optional: device authorization endpoint")
        self.scopes = QLineEdit()
        self.scopes.setPlaceholderText("scopes, separated by spaces")
        self.sign_in_button = QPushButton("Sign in")
        self.state = QLabel("Not signed in")
        self.state.setObjectName("muted")
        self.state.setTextFormat(Qt.TextFormat.PlainText)
        self.state.setWordWrap(True)
        row = QWidget()
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.sign_in_button)
        lay.addWidget(self.state, 1)
        self.sign_in_row = row
        form = box.form
        at, _role = form.getWidgetPosition(box.password)
        for offset, (label, widget) in enumerate((
                ("Sign-in", self.method), ("Client ID", self.client_id),
                ("Tenant", self.tenant), ("Client secret", self.client_secret),
                ("Authorization URL", self.auth_url), ("Token URL", self.token_url),
                ("Device URL", self.device_url), ("Scopes", self.scopes),
                ("", self.sign_in_row))):
            form.insertRow(at + offset, label, widget)
        self._update()

    # --- state ----------------------------------------------------------------------

    def key(self) -> str:
        return str(self.method.currentData())

    @property
    def oauth(self) -> bool:
        return self.key() != "password"

    def set_method(self, key: str) -> None:
        i = self.method.findData(key)
        if i >= 0:
            self.method.setCurrentIndex(i)

    def _update(self, _i: int = 0) -> None:
        key = self.key()
        form = self.box.form
        form.setRowVisible(self.box.password, key == "password")
        form.setRowVisible(self.client_id, key != "password")
        form.setRowVisible(self.tenant, key == "microsoft")
        form.setRowVisible(self.client_secret, key == "google")
        for field in (self.auth_url, self.token_url, self.device_url, self.scopes):
            form.setRowVisible(field, key == "custom")
        form.setRowVisible(self.sign_in_row, key != "password")
        self.changed.emit()

    def fill(self, settings: ServerSettings) -> None:
        self.set_method(settings.oauth_provider if settings.oauth else "password")
        self.client_id.setText(settings.oauth_client_id)
        self.tenant.setText(settings.oauth_tenant)
        self.client_secret.setText(settings.oauth_client_secret)
        if settings.oauth_provider == "custom":
            self.auth_url.setText(settings.oauth_auth_url)
            self.token_url.setText(settings.oauth_token_url)
            self.device_url.setText(settings.oauth_device_url)
        self.scopes.setText(" ".join(settings.oauth_scopes))

    def kwargs(self) -> dict[str, Any]:
        """The ``auth`` / ``oauth_*`` fields of ImapSettings / SmtpSettings."""
        key = self.key()
        if key == "password":
            return {}
        out: dict[str, Any] = {"auth": "oauth2", "oauth_provider": key,
                               "oauth_client_id": self.client_id.text().strip()}
        if key == "microsoft" and self.tenant.text().strip():
            out["oauth_tenant"] = self.tenant.text().strip()
        if key == "google" and self.client_secret.text().strip():
            out["oauth_client_secret"] = self.client_secret.text().strip()
        if key == "custom":
            out.update(oauth_auth_url=self.auth_url.text().strip(),
                       oauth_token_url=self.token_url.text().strip(),
                       oauth_device_url=self.device_url.text().strip())
        scopes = tuple(self.scopes.text().split())
        if scopes:
            out["oauth_scopes"] = scopes
        return out

    def show_state(self, text: str, error: bool = False) -> None:
        self.state.setText(text)
        self.state.setObjectName("errorText" if error else "muted")
        self.state.style().unpolish(self.state)
        self.state.style().polish(self.state)
