"""All configuration, from the environment (and `.env`), in one place; nothing else reads it.

Names stay compatible with the earlier TypeScript server (`MIAW_SCRT_URL`, `MIAW_ORG_ID`,
`MIAW_ES_DEVELOPER_NAME`, `MCP_TRANSPORT`, `PORT`), so its users can switch by swapping the app.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.history import HISTORY_ENTRIES
from app.identity import CustomerIdentity, load_signing_key
from app.limits import LimitSettings, Rate
from app.prechat import parse_field_map
from app.signin import AuthMode, SignInSettings
from app.state.sealing import HOW_TO_MAKE_A_KEY, Sealer

ORG_ID = re.compile(r"^00D[0-9A-Za-z]{12}([0-9A-Za-z]{3})?$")
HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
DEPLOYMENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

REQUIRED_TO_SERVE = ("MIAW_SCRT_URL", "MIAW_ORG_ID", "MIAW_ES_DEVELOPER_NAME")
MIN_ADMIN_PASSWORD = 16


class ConfigError(Exception):
    """The configuration cannot work; the message names every offending setting."""


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


TOOLSETS = ("handoff", "crm")
DEFAULT_REDACTED = (
    "*SSN*",
    "*Social_Security*",
    "*Password*",
    "*Secret*",
    "*Token*",
    "*Tax_Id*",
    "*National_Id*",
    "*Passport*",
    "*Credit_Card*",
    "*Card_Number*",
    "*CVV*",
    "*Bank_Account*",
    "*IBAN*",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Salesforce (required to serve; see require_salesforce)
    miaw_scrt_url: str | None = None
    miaw_org_id: str | None = None
    miaw_es_developer_name: str | None = None
    miaw_capabilities_version: str = "1"
    miaw_platform: str = "Web"

    # HTTP server
    port: int = Field(default=8000, ge=1, le=65535)
    host: str = "0.0.0.0"
    mcp_transport: Literal["http", "stdio"] = "http"
    public_url: str | None = None
    mcp_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    mcp_allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    heroku_app_name: str | None = None
    """Set by Heroku's dyno metadata; allows `<name>.herokuapp.com`."""

    # Widget
    widget_domain: str | None = None
    """Dedicated origin for the widget's sandbox (`ui.domain` / `openai/widgetDomain`); ChatGPT
    requires one for app submission."""
    playground_enabled: bool = False
    """Serve `/playground` (env `PLAYGROUND_ENABLED`): a page that hosts the widget the way ChatGPT
    does, to run a whole handoff in a browser. Off in production; demo mode and tests turn it on."""

    # Waiting and sessions
    tool_deadline_seconds: float = Field(default=28.0, ge=5, le=28)
    """Every tool call answers within this many seconds, whatever Salesforce does: all the
    Salesforce requests of one call share it (Heroku's router gives up after 30 s)."""
    wait_default_seconds: float = Field(default=25.0, gt=0, lt=30)
    wait_max_seconds: float = Field(default=27.0, gt=0, lt=30)
    """Hard cap for `waitSeconds`; at most TOOL_DEADLINE_SECONDS - 1."""
    burst_window_seconds: float = Field(default=0.3, ge=0, le=5)
    """After a bot message, a read waits this long for more of a multi-part answer (and again
    after each part), so the model relays it whole."""
    poll_interval_seconds: float = Field(default=2.0, gt=0)
    """Entries-endpoint polling interval, used only while the event stream is down."""
    refuse_outside_business_hours: bool = True
    """create_conversation outside the deployment's business hours is refused (the model is told
    when support opens) unless the call says outsideBusinessHours; false for a deployment whose
    bot serves around the clock."""
    prechat_field_map: str = ""
    """Where create_conversation's context for the agent goes: `summary:ChatGPT_Summary__c,
    email:_email` sends the summary and the email to those pre-chat fields (names: summary, name,
    email, details); what is mapped nowhere goes in a first message marked as the assistant's."""
    history_entries: int = Field(default=HISTORY_ENTRIES, ge=10, le=100_000)
    """Entries of each conversation kept in memory; a reader asking for older ones gets them
    from Salesforce again (app/history.py)."""
    session_ttl_seconds: int = Field(default=4 * 3600, gt=0)
    max_sessions: int = Field(default=10_000, gt=0)
    scrt_timeout_seconds: float = Field(default=10.0, gt=0)
    scrt_max_connections: int = Field(default=100, ge=1, le=10_000)
    """Salesforce REST requests under way at once per process; more wait up to
    SCRT_POOL_WAIT_SECONDS. Event streams have connections of their own (up to MAX_SESSIONS)."""
    scrt_pool_wait_seconds: float = Field(default=5.0, gt=0, le=25)
    scrt_retry_total_seconds: float = Field(default=8.0, gt=0, lt=25)
    """Budget of one Salesforce request with its retries; at most TOOL_DEADLINE_SECONDS."""

    # Abuse limits (app/limits.py); each "off" or a rate such as "10/10m"
    rate_limit_per_user: str = "10/10m"
    """generate_guest_access_token and create_conversation, each, per ChatGPT user."""
    rate_limit_per_ip: str = "30/10m"
    """The same for calls that name no ChatGPT user, per client address."""
    max_open_conversations_per_user: int = Field(default=3, ge=1, le=1000)
    """Open conversations per ChatGPT user (per session for calls that name none)."""
    trusted_proxy_hops: int = Field(default=0, ge=0, le=10)
    """Proxies in front that append the client's address to X-Forwarded-For (Heroku: 1); 0 uses
    the connection's peer address."""

    # Toolsets: handoff (always) and crm (app/crm_tools.py, Salesforce REST for support staff)
    mcp_toolsets: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["handoff"])
    salesforce_instance_url: str | None = None
    """The org's My Domain URL (https://<domain>.my.salesforce.com): OAuth and REST calls."""
    salesforce_client_id: str | None = None
    salesforce_client_secret: SecretStr | None = None
    salesforce_refresh_token: SecretStr | None = None
    """With one: the refresh-token flow; without: the client-credentials flow."""
    salesforce_api_version: str = Field(default="62.0", pattern=r"^\d{2,3}\.0$")
    crm_access: Literal["read", "write", "admin"] = "read"
    """Which CRM tools exist: read (query, search, describe, get, list), write (also create and
    update), admin (also delete)."""
    redact_fields: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_REDACTED)
    )
    """Field API names (shell-style patterns, any letter case) masked in every CRM tool result."""
    crm_export_max_rows: int = Field(default=10_000, ge=1, le=100_000)
    """The most records salesforce_export puts in a file: a query matching more is refused
    (before its second page is read)."""
    crm_export_max_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    """The most bytes of an exported file, and of its cells' text: the file travels in one MCP
    response (an XLSX file base64-encoded, a third larger)."""
    crm_query_count_threshold: int = Field(default=2000, ge=0, le=1_000_000)
    """salesforce_query with neither a LIMIT nor `limit` counts first; past this many matches
    only the count comes back. 0: never count."""
    crm_required_scope: str | None = None
    """Over HTTP: the scope a signed-in user's token must carry to call the CRM tools (staff
    only; customers who sign in to chat do not get it)."""

    # Sign-in (app/signin.py)
    auth_mode: AuthMode = "none"
    """none: no sign-in; optional: anonymous users chat as guests, tokens are checked when sent;
    required: every /mcp call needs a valid access token."""
    auth_issuer: str | None = None
    """The identity provider's issuer URL (its OpenID or OAuth metadata names the keys)."""
    auth_audience: str | None = None
    """The audience tokens must carry: this server's resource URL (default PUBLIC_URL + /mcp)."""
    auth_required_scopes: Annotated[list[str], NoDecode] = Field(default_factory=list)

    identity_signing_key: SecretStr | None = None
    """Verified customers: the RSA private key (PEM) that signs customer identity tokens for
    signed-in users; its public key is at /.well-known/jwks.json for the org's key set."""
    identity_claims: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["email", "name"]
    )
    """Claims copied from the user's access token into the identity token (besides `sub`)."""

    # Shared state (Redis)
    redis_url: str | None = None
    """redis:// or rediss:// (Heroku Key-Value Store sets it): sessions, conversation logs and
    event-stream ownership live in Redis, so chats survive restarts and any process serves any
    call. Unset: one process, in memory."""
    state_encryption_key: SecretStr | None = None
    """Seals what is kept in Redis (tokens, records, messages); required with REDIS_URL. A Fernet
    key or a secret of 32+ characters; several, comma-separated, rotate (the first seals)."""
    redis_key_prefix: str = Field(default="miaw:", min_length=1, max_length=64)
    redis_tls_verify: bool = False
    """Verify the rediss:// certificate (Heroku Key-Value Store's is self-signed)."""
    redis_max_connections: int = Field(default=20, ge=2, le=1000)
    """Pooled Redis connections per process (waiting readers share one more)."""
    web_concurrency: int = Field(default=1, ge=1, le=64)
    """uvicorn worker processes (Heroku sets WEB_CONCURRENCY); more than 1 needs REDIS_URL."""

    # The operator page (app/admin/)
    admin_password: SecretStr | None = None
    """Serves /admin, the operator page, behind this password (at least 16 characters); unset:
    no /admin at all."""

    # Audit trail (app/audit.py): one record per tool call, in Redis with REDIS_URL, else memory
    audit_max_records: int = Field(default=10_000, ge=10, le=1_000_000)
    """The most audit records kept (across all processes with Redis); the oldest go first."""
    audit_retention_hours: float = Field(default=168, gt=0, le=24 * 366)
    """Audit records older than this are dropped (default a week)."""

    # Observability
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    @field_validator(
        "miaw_scrt_url",
        "miaw_org_id",
        "miaw_es_developer_name",
        "public_url",
        "heroku_app_name",
        "widget_domain",
        "redis_url",
        "state_encryption_key",
        "auth_issuer",
        "auth_audience",
        "identity_signing_key",
        "admin_password",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # An empty config var (a Heroku form left blank) means "not set", not "malformed".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("prechat_field_map")
    @classmethod
    def _field_map(cls, value: str) -> str:
        parse_field_map(value)  # a malformed map fails at start, naming the variable
        return value

    @property
    def field_map(self) -> dict[str, str]:
        return parse_field_map(self.prechat_field_map)

    @field_validator("rate_limit_per_user", "rate_limit_per_ip")
    @classmethod
    def _rate(cls, value: str) -> str:
        Rate.parse(value)  # a malformed rate fails at start, naming the variable
        return value

    @field_validator("auth_issuer", "auth_audience")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute URL such as https://login.example.com/")
        return value.strip()

    @field_validator("auth_mode", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("identity_signing_key")
    @classmethod
    def _signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            load_signing_key(value.get_secret_value())  # a bad key fails at start, named
        return value

    @field_validator(
        "redact_fields",
        "mcp_toolsets",
        "mcp_allowed_hosts",
        "mcp_allowed_origins",
        "auth_required_scopes",
        "identity_claims",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("salesforce_instance_url")
    @classmethod
    def _instance_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ValueError(
                "SALESFORCE_INSTANCE_URL must be an https:// URL (the client secret and tokens "
                "travel to it), e.g. https://acme.my.salesforce.com"
            )
        return value.strip().rstrip("/")

    @field_validator("mcp_toolsets")
    @classmethod
    def _toolsets(cls, value: list[str]) -> list[str]:
        names = [name.lower() for name in value]
        unknown = sorted(set(names) - set(TOOLSETS))
        if unknown:
            raise ValueError(
                f"MCP_TOOLSETS takes {', '.join(TOOLSETS)} (comma-separated), not "
                f"{', '.join(unknown)}"
            )
        return ["handoff", *(name for name in TOOLSETS if name in names and name != "handoff")]

    @field_validator("mcp_allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if "/" in host or not HOST.match(host):
                raise ValueError(f"{host!r} is not a host name (give e.g. chat.example.com)")
        return [host.lower() for host in value]

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("miaw_org_id")
    @classmethod
    def _org_id(cls, value: str | None) -> str | None:
        if value is not None and not ORG_ID.match(value.strip()):
            raise ValueError("must be a 15- or 18-character Salesforce org id starting with 00D")
        return value.strip() if value else value

    @field_validator("miaw_es_developer_name")
    @classmethod
    def _deployment(cls, value: str | None) -> str | None:
        if value is not None and not DEPLOYMENT_NAME.match(value.strip()):
            raise ValueError("must be the deployment's API name (letters, digits, underscores)")
        return value.strip() if value else value

    @field_validator("miaw_scrt_url")
    @classmethod
    def _scrt_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = value.strip().rstrip("/")
        parts = urlsplit(url if "://" in url else f"https://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be the SCRT host, e.g. acme.my.salesforce-scrt.com")
        return url

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute URL such as https://myapp.herokuapp.com")
        return value.strip().rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value.strip()).scheme not in ("redis", "rediss"):
            raise ValueError("must be a redis:// or rediss:// URL")
        return value.strip() if value else value

    @field_validator("admin_password")
    @classmethod
    def _admin_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_ADMIN_PASSWORD:
            raise ValueError(
                f"must be at least {MIN_ADMIN_PASSWORD} characters (the operator page shows "
                "every chat and error; e.g. `openssl rand -base64 24`)"
            )
        return value

    @field_validator("state_encryption_key")
    @classmethod
    def _state_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            Sealer(value.get_secret_value())  # a bad key fails at start, naming the variable
        return value

    @model_validator(mode="after")
    def _waits_fit(self) -> Settings:
        if self.wait_default_seconds > self.wait_max_seconds:
            raise ValueError(
                "WAIT_DEFAULT_SECONDS must not exceed WAIT_MAX_SECONDS "
                f"({self.wait_default_seconds:g} > {self.wait_max_seconds:g})"
            )
        # A read needs a second after its wait to fetch and answer inside the call's deadline.
        if self.wait_max_seconds > self.tool_deadline_seconds - 1:
            raise ValueError(
                "WAIT_MAX_SECONDS must be at most TOOL_DEADLINE_SECONDS - 1 "
                f"({self.wait_max_seconds:g} > {self.tool_deadline_seconds - 1:g})"
            )
        if self.redis_url and not self.state_encryption_key:
            raise ValueError(
                "REDIS_URL is set but STATE_ENCRYPTION_KEY is not: the server seals Salesforce "
                f"tokens and chat messages it keeps in Redis; {HOW_TO_MAKE_A_KEY}"
            )
        if self.web_concurrency > 1 and not self.redis_url:
            raise ValueError(
                f"WEB_CONCURRENCY={self.web_concurrency} needs REDIS_URL: without shared state "
                "each worker would know only its own chats. Set REDIS_URL or WEB_CONCURRENCY=1."
            )
        if self.auth_mode != "none" and not self.auth_issuer:
            raise ValueError(
                f"AUTH_MODE={self.auth_mode} needs AUTH_ISSUER, your identity provider's issuer URL"
            )
        if self.auth_mode != "none" and not (self.auth_audience or self.public_url):
            raise ValueError(
                f"AUTH_MODE={self.auth_mode} needs PUBLIC_URL (or AUTH_AUDIENCE): tokens are "
                "checked for this server's own resource URL"
            )
        if self.identity_signing_key is not None and self.auth_mode == "none":
            raise ValueError(
                "IDENTITY_SIGNING_KEY is set but AUTH_MODE is none: customers are verified only "
                "when they sign in; set AUTH_MODE=optional or required"
            )
        if self.crm_enabled:
            missing = [
                name
                for name in ("SALESFORCE_INSTANCE_URL", "SALESFORCE_CLIENT_ID")
                if not getattr(self, name.lower())
            ]
            if self.salesforce_client_secret is None:
                missing.append("SALESFORCE_CLIENT_SECRET")
            if missing:
                raise ValueError(
                    "MCP_TOOLSETS includes crm, which needs " + ", ".join(missing) + " (the "
                    "connected app the CRM tools call Salesforce with)"
                )
        if self.scrt_retry_total_seconds > self.tool_deadline_seconds:
            raise ValueError(
                "SCRT_RETRY_TOTAL_SECONDS must not exceed TOOL_DEADLINE_SECONDS "
                f"({self.scrt_retry_total_seconds:g} > {self.tool_deadline_seconds:g})"
            )
        return self

    @property
    def local_only(self) -> bool:
        """Bound to loopback: only this machine can reach the server."""
        return self.host in ("127.0.0.1", "localhost", "::1")

    @property
    def public_host_configured(self) -> bool:
        return bool(self.public_url or self.heroku_app_name or self.mcp_allowed_hosts)

    def require_salesforce(self) -> None:
        """Serving needs the three Salesforce settings; say which are missing."""
        missing = [name for name in REQUIRED_TO_SERVE if not getattr(self, name.lower())]
        if missing:
            raise ConfigError(
                "Missing required setting(s): "
                + ", ".join(missing)
                + ". Set them in the environment (Heroku: config vars) or in .env."
            )

    @property
    def admin_enabled(self) -> bool:
        """The operator page (`/admin`) is served: a password is set and there is HTTP."""
        return self.admin_password is not None and self.mcp_transport == "http"

    @property
    def crm_enabled(self) -> bool:
        return "crm" in self.mcp_toolsets

    def crm_refusal(self, transport: str, *, loopback_demo: bool = False) -> str | None:
        """Why the CRM toolset may not be served this way, or None. It reads and changes the
        org's records, so over HTTP only signed-in users may call it (AUTH_MODE=required); over
        stdio the local user is the one who configured it. `make demo` serves it on loopback
        without sign-in, against the simulator."""
        if not self.crm_enabled or transport == "stdio":
            return None
        if loopback_demo and self.local_only:
            return None
        if self.auth_mode == "required" and self.crm_required_scope:
            return None
        return (
            "MCP_TOOLSETS includes crm, but /mcp does not require a staff sign-in: the CRM tools "
            "read and change your org's records, so over HTTP they need AUTH_MODE=required and "
            "CRM_REQUIRED_SCOPE (the scope only staff tokens carry; customers may sign in too). "
            "Serve them to a local client over stdio (MCP_TRANSPORT=stdio) instead, or remove "
            "crm from MCP_TOOLSETS."
        )

    def signin_settings(self) -> SignInSettings | None:
        if self.auth_mode == "none":
            return None
        assert self.auth_issuer
        return SignInSettings(
            mode=self.auth_mode,
            issuer=self.auth_issuer,
            audience=self.auth_audience or f"{self.public_url}/mcp",
            required_scopes=tuple(self.auth_required_scopes),
        )

    def customer_identity(self) -> CustomerIdentity | None:
        if self.identity_signing_key is None:
            return None
        signin = self.signin_settings()
        assert signin is not None
        issuer = self.public_url or signin.audience.rsplit("/", 1)[0]
        return CustomerIdentity(
            load_signing_key(self.identity_signing_key.get_secret_value()),
            issuer,
            tuple(self.identity_claims),
        )

    def limit_settings(self) -> LimitSettings:
        return LimitSettings(
            per_user=Rate.parse(self.rate_limit_per_user),
            per_ip=Rate.parse(self.rate_limit_per_ip),
            open_per_user=self.max_open_conversations_per_user,
            max_sessions=self.max_sessions,
            proxy_hops=self.trusted_proxy_hops,
        )

    @property
    def wait_cap(self) -> float:
        return min(self.wait_max_seconds, self.tool_deadline_seconds - 1)

    def allowed_hosts(self) -> list[str]:
        """Host header patterns for the MCP endpoint's DNS-rebinding protection."""
        hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost"]
        names = list(self.mcp_allowed_hosts)
        if self.public_url:
            names.append(urlsplit(self.public_url).netloc.lower())
        if self.heroku_app_name:
            names.append(f"{self.heroku_app_name.lower()}.herokuapp.com")
        for name in names:
            hosts.append(name)
            if ":" not in name.rsplit("]", 1)[-1]:
                hosts.append(f"{name}:*")
        return list(dict.fromkeys(hosts))

    def allowed_origins(self) -> list[str]:
        origins = ["https://chatgpt.com", "https://chat.openai.com"]
        if self.local_only or self.playground_enabled:
            # A browser on this machine (the playground, a local client) may call /mcp only
            # when the server is itself local or in demo mode: in production a page served from
            # someone's localhost is not a trusted origin.
            origins += ["http://127.0.0.1:*", "http://localhost:*"]
        origins += self.mcp_allowed_origins
        if self.public_url:
            parts = urlsplit(self.public_url)
            origins.append(f"{parts.scheme}://{parts.netloc}")
        if self.heroku_app_name:
            origins.append(f"https://{self.heroku_app_name}.herokuapp.com")
        return list(dict.fromkeys(origins))


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a malformed value becomes a ConfigError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        ]
        raise ConfigError("Invalid setting(s): " + "; ".join(problems)) from None
