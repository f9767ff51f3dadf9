"""The profile: one TOML file per desktop, plus secrets kept out of it.

The profile is found via ``--config FILE``, else ``$HELPDESK_CONFIG``, else
``<user config dir>/helpdesk/profile.toml``. Key names are part of the public
contract (other tools write these files), see README "Configuration".

Passwords never live in the profile, the database, logs or tracebacks: they come
from the OS keyring (service ``helpdesk``) or from a user-given
``password_command`` whose first output line is the password.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

from helpdesk.errors import ConfigError, SecretError

APP_NAME = "helpdesk"
KEYRING_SERVICE = "helpdesk"
SECURITY_MODES = ("tls", "starttls", "plain")
AUTH_MODES = ("password", "oauth2")
OAUTH_PROVIDERS = ("google", "microsoft", "custom")


@dataclass(frozen=True)
class ServerSettings:
    """Connection settings shared by IMAP and SMTP."""

    host: str = ""
    port: int = 0
    security: str = "tls"
    username: str = ""
    password_command: str | None = None
    ca_file: str | None = None
    #: "password" (LOGIN / AUTH PLAIN) or "oauth2" (SASL XOAUTH2 / OAUTHBEARER with a
    #: token from ``oauth_provider``; see helpdesk/auth/ and README "Signing in with OAuth2").
    auth: str = "password"
    oauth_provider: str = ""
    oauth_client_id: str = ""
    #: Only for providers that hand desktop apps a non-secret "client secret" (Google).
    oauth_client_secret: str = ""
    oauth_tenant: str = ""
    oauth_auth_url: str = ""
    oauth_token_url: str = ""
    oauth_device_url: str = ""
    oauth_revoke_url: str = ""
    oauth_scopes: tuple[str, ...] = ()

    @property
    def oauth(self) -> bool:
        return self.auth == "oauth2"

    def keyring_user(self, protocol: str) -> str:
        """The keyring entry name for this server's password."""
        return f"{protocol}:{self.username}@{self.host}"


@dataclass(frozen=True)
class ImapSettings(ServerSettings):
    port: int = 993
    folders: tuple[str, ...] = ("INBOX",)
    sent_folder: str | None = "Sent"
    # False: the profile names no Sent folder, and helpdesk.mail.folders finds the one
    # the server marks \Sent (sent_folder then holds the usual "Sent" for older callers).
    # True: sent_folder is the profile's own choice ("Sent" means Sent, mapped into the
    # server's namespace; None: no Sent folder).
    sent_folder_set: bool = False
    team_folder: str = "HelpDesk/Log"
    poll_seconds: int = 60
    batch_size: int = 200


@dataclass(frozen=True)
class SmtpSettings(ServerSettings):
    port: int = 465
    from_address: str = ""
    from_name: str = ""
    save_sent: bool = True


@dataclass(frozen=True)
class Profile:
    """Everything one desktop needs to know; built from the TOML file."""

    agent: str
    database: Path
    imap: ImapSettings
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    lease_minutes: int = 30
    survey: str = "ask"  # never | ask | always
    fcr_window_days: int = 7
    notify_unclaimed: bool = False
    #: The undo window: a reply waits this long in the outbox before it goes.
    send_delay_seconds: int = 10
    #: Attachments over this total (MB) are warned about before sending.
    max_attachment_mb: int = 20
    #: Propose a team-log snapshot once this many log entries followed the last one
    #: (plus a per-agent jitter, so not every desktop proposes at once); 0: never.
    snapshot_every: int = 10_000
    #: Move events older than the newest agreed snapshot to the log's archive folder.
    compact_team_log: bool = True
    source: Path | None = None

    @property
    def support_addresses(self) -> frozenset[str]:
        """Addresses that are 'us': mail from them is outgoing."""
        addrs = {self.smtp.from_address, self.imap.username, self.smtp.username}
        return frozenset(a.strip().lower() for a in addrs if a and "@" in a)


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "profile.toml"


def default_database_path() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME)) / "desk.sqlite3"


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the profile path by the documented precedence."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("HELPDESK_CONFIG")
    if env:
        return Path(env).expanduser()
    return default_config_path()


def _expect(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = table.get(key)
    if value is not None and not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"In {where}, '{key}' should be a {names}, not {value!r}.")
    return value


def _server(table: dict[str, Any], where: str, default_ports: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    host = _expect(table, "host", str, where)
    if not host:
        raise ConfigError(f"In {where}, 'host' is missing: name the mail server, e.g. "
                          f"host = \"mail.example.com\".")
    out["host"] = host
    security = _expect(table, "security", str, where) or "tls"
    if security not in SECURITY_MODES:
        raise ConfigError(f"In {where}, 'security' must be one of {', '.join(SECURITY_MODES)}, "
                          f"not {security!r}.")
    out["security"] = security
    port = _expect(table, "port", int, where)
    out["port"] = port if port else default_ports[security]
    out["username"] = _expect(table, "username", str, where) or ""
    out["password_command"] = _expect(table, "password_command", str, where)
    ca = _expect(table, "ca_file", str, where)
    if ca:
        ca_path = Path(ca).expanduser()
        if not ca_path.is_file():
            raise ConfigError(f"In {where}, 'ca_file' points to {ca_path}, which does not exist.")
        out["ca_file"] = str(ca_path)
    out.update(_auth(table, where))
    if out["auth"] == "oauth2" and not out["username"]:
        raise ConfigError(f"In {where}, auth = \"oauth2\" needs 'username': the mailbox "
                          f"address to sign in to (a shared mailbox's own address on "
                          f"Microsoft 365).")
    return out


_OAUTH_TEXT_KEYS = ("oauth_client_id", "oauth_client_secret", "oauth_tenant", "oauth_auth_url",
                    "oauth_token_url", "oauth_device_url", "oauth_revoke_url")


def auth_pairs(server: ServerSettings) -> list[tuple[str, Any]]:
    """The ``auth`` and ``oauth_*`` keys of ``server`` as a writer of the profile puts
    them (the setup dialog): nothing for a password side, which is the default."""
    if not server.oauth:
        return []
    pairs: list[tuple[str, Any]] = [("auth", "oauth2"), ("oauth_provider",
                                                         server.oauth_provider)]
    for key in _OAUTH_TEXT_KEYS:
        value = getattr(server, key)
        if value:
            pairs.append((key, value))
    if server.oauth_scopes:
        pairs.append(("oauth_scopes", list(server.oauth_scopes)))
    return pairs


def _auth(table: dict[str, Any], where: str) -> dict[str, Any]:
    """The ``auth`` and ``oauth_*`` keys of a server table (README "Signing in with OAuth2")."""
    auth = _expect(table, "auth", str, where) or "password"
    if auth not in AUTH_MODES:
        raise ConfigError(f"In {where}, 'auth' must be \"password\" or \"oauth2\", "
                          f"not {auth!r}.")
    out: dict[str, Any] = {"auth": auth}
    for key in _OAUTH_TEXT_KEYS:
        value = _expect(table, key, str, where)
        if value:
            out[key] = value.strip()
    scopes = _expect(table, "oauth_scopes", (list, str), where)
    if isinstance(scopes, str):
        scopes = scopes.split()
    if scopes is not None:
        if not all(isinstance(s, str) and s.strip() for s in scopes):
            raise ConfigError(f"In {where}, 'oauth_scopes' must be a list of scope names.")
        out["oauth_scopes"] = tuple(s.strip() for s in scopes)
    provider = _expect(table, "oauth_provider", str, where) or ""
    if provider:
        out["oauth_provider"] = provider
    if auth != "oauth2":
        return out
    if provider not in OAUTH_PROVIDERS:
        raise ConfigError(f"In {where}, auth = \"oauth2\" needs oauth_provider = \"google\", "
                          f"\"microsoft\" or \"custom\"" + (f", not {provider!r}." if provider
                                                        else "."))
    if not out.get("oauth_client_id"):
        raise ConfigError(f"In {where}, auth = \"oauth2\" needs oauth_client_id: the app's "
                          f"client id from the {provider} registration (README \"Signing in "
                          f"with OAuth2\").")
    for key in ("oauth_auth_url", "oauth_token_url", "oauth_device_url", "oauth_revoke_url"):
        url = out.get(key)
        if url and not url.startswith(("https://", "http://")):
            raise ConfigError(f"In {where}, '{key}' must be an https:// address, not {url!r}.")
    if provider == "custom":
        missing = [k for k in ("oauth_token_url", "oauth_scopes") if not out.get(k)]
        if not out.get("oauth_auth_url") and not out.get("oauth_device_url"):
            missing.insert(0, "oauth_auth_url (or oauth_device_url)")
        if missing:
            raise ConfigError(f"In {where}, oauth_provider = \"custom\" needs "
                              f"{', '.join(missing)}.")
    return out


def parse_profile(data: dict[str, Any], source: Path | None = None) -> Profile:
    """Build a :class:`Profile` from parsed TOML, with plain-language errors."""
    where = str(source) if source else "the profile"
    agent = _expect(data, "agent", str, where)
    if not agent or not agent.strip():
        raise ConfigError(f"{where} has no 'agent': set agent = \"your-name\" so teammates "
                          f"can see who handles a ticket.")
    database = _expect(data, "database", str, where)
    db_path = Path(database).expanduser() if database else default_database_path()
    if source is not None and not db_path.is_absolute():
        db_path = source.parent / db_path

    imap_table = _expect(data, "imap", dict, where)
    if not imap_table:
        raise ConfigError(f"{where} has no [imap] section: say which mailbox to watch.")
    imap_kw = _server(imap_table, f"[imap] of {where}", {"tls": 993, "starttls": 143, "plain": 143})
    folders = _expect(imap_table, "folders", list, f"[imap] of {where}") or ["INBOX"]
    if not all(isinstance(f, str) and f for f in folders):
        raise ConfigError(f"In [imap] of {where}, 'folders' must be a list of folder names.")
    imap_kw["folders"] = tuple(folders)
    if "sent_folder" in imap_table:
        sent = _expect(imap_table, "sent_folder", str, f"[imap] of {where}")
        imap_kw["sent_folder"] = sent or None
        imap_kw["sent_folder_set"] = True
    team = _expect(imap_table, "team_folder", str, f"[imap] of {where}")
    if team:
        imap_kw["team_folder"] = team
    poll = _expect(imap_table, "poll_seconds", int, f"[imap] of {where}")
    if poll is not None:
        if poll < 5:
            raise ConfigError(f"In [imap] of {where}, 'poll_seconds' must be at least 5.")
        imap_kw["poll_seconds"] = poll
    batch = _expect(imap_table, "batch_size", int, f"[imap] of {where}")
    if batch is not None:
        imap_kw["batch_size"] = max(1, batch)
    imap = ImapSettings(**imap_kw)

    smtp = SmtpSettings()
    smtp_table = _expect(data, "smtp", dict, where)
    if smtp_table:
        sw = f"[smtp] of {where}"
        smtp_kw = _server(smtp_table, sw, {"tls": 465, "starttls": 587, "plain": 25})
        smtp_kw["from_address"] = _expect(smtp_table, "from_address", str, sw) or imap.username
        smtp_kw["from_name"] = _expect(smtp_table, "from_name", str, sw) or ""
        save = _expect(smtp_table, "save_sent", bool, sw)
        if save is not None:
            smtp_kw["save_sent"] = save
        smtp = SmtpSettings(**smtp_kw)

    extra: dict[str, Any] = {}
    lease = _expect(data, "lease_minutes", int, where)
    if lease is not None:
        if lease < 1:
            raise ConfigError(f"In {where}, 'lease_minutes' must be at least 1.")
        extra["lease_minutes"] = lease
    survey = _expect(data, "survey", str, where)
    if survey is not None:
        if survey not in ("never", "ask", "always"):
            raise ConfigError(f"In {where}, 'survey' must be never, ask or always.")
        extra["survey"] = survey
    fcr = _expect(data, "fcr_window_days", int, where)
    if fcr is not None:
        extra["fcr_window_days"] = fcr
    notify = _expect(data, "notify_unclaimed", bool, where)
    if notify is not None:
        extra["notify_unclaimed"] = notify
    every = _expect(data, "snapshot_every", int, where)
    if every is not None:
        if every != 0 and every < 20:
            raise ConfigError(f"In {where}, 'snapshot_every' must be 0 (never) or at "
                              "least 20.")
        extra["snapshot_every"] = every
    compact = _expect(data, "compact_team_log", bool, where)
    if compact is not None:
        extra["compact_team_log"] = compact
    delay = _expect(data, "send_delay_seconds", int, where)
    if delay is not None:
        if isinstance(delay, bool) or not 0 <= delay <= 600:
            raise ConfigError(f"In {where}, 'send_delay_seconds' must be between 0 and 600.")
        extra["send_delay_seconds"] = delay
    limit = _expect(data, "max_attachment_mb", int, where)
    if limit is not None:
        if isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise ConfigError(f"In {where}, 'max_attachment_mb' must be between 1 and 1000.")
        extra["max_attachment_mb"] = limit
    return Profile(agent=agent.strip(), database=db_path, imap=imap, smtp=smtp, source=source,
                   **extra)


def load_profile(explicit: str | os.PathLike[str] | None = None) -> Profile:
    """Find and read the profile; raise :class:`ConfigError` with advice when absent."""
    path = find_config(explicit)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"No profile found at {path}. Create one (see README 'Configuration'), "
            f"pass --config FILE, or try the app with --demo."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Cannot read the profile {path}: {exc.strerror}.") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The profile {path} is not valid TOML: {exc}.") from None
    return parse_profile(data, path.resolve())


def with_agent(profile: Profile, agent: str) -> Profile:
    return replace(profile, agent=agent)


# --- secrets -----------------------------------------------------------------

def get_password(server: ServerSettings, protocol: str) -> str:
    """Return the password for ``server``: password_command first, else the keyring."""
    if server.password_command:
        return _run_password_command(server.password_command)
    try:
        import keyring
        import keyring.errors
    except ImportError:  # pragma: no cover - keyring is a dependency
        raise SecretError("The keyring library is missing; reinstall the app.") from None
    try:
        secret = keyring.get_password(KEYRING_SERVICE, server.keyring_user(protocol))
    except keyring.errors.KeyringError as exc:
        raise SecretError(
            f"No usable password store (OS keyring) was found ({type(exc).__name__}). "
            f"Either install and unlock a keyring (GNOME Keyring, KWallet, macOS Keychain, "
            f"Windows Credential Manager), or set password_command in the [{protocol}] section "
            f"of the profile, e.g. password_command = \"pass show support\"."
        ) from None
    if not secret:
        raise SecretError(
            f"No {protocol.upper()} password is stored for {server.username} on {server.host}. "
            f"Run 'python main.py set-password {protocol}' or set password_command in the "
            f"[{protocol}] section of the profile."
        )
    return secret


def set_password(server: ServerSettings, protocol: str, password: str) -> None:
    """Store a password in the OS keyring, with a plain error when there is none."""
    import keyring
    import keyring.errors

    try:
        keyring.set_password(KEYRING_SERVICE, server.keyring_user(protocol), password)
    except keyring.errors.KeyringError as exc:
        raise SecretError(
            f"Could not save the password in the OS keyring ({type(exc).__name__}). Install or "
            f"unlock a keyring, or use password_command in the profile instead."
        ) from None


def _run_password_command(command: str) -> str:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise SecretError(f"password_command cannot be parsed: {exc}.") from None
    if not argv:
        raise SecretError("password_command is empty.")
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    except FileNotFoundError:
        raise SecretError(f"password_command: program '{argv[0]}' was not found.") from None
    except subprocess.TimeoutExpired:
        raise SecretError("password_command did not finish within 60 seconds.") from None
    if proc.returncode != 0:
        # stderr may echo the secret in odd tools; report only the exit status.
        raise SecretError(f"password_command '{argv[0]}' failed with exit status "
                          f"{proc.returncode}.")
    lines = proc.stdout.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        raise SecretError(f"password_command '{argv[0]}' printed no password.")
    return lines[0]
