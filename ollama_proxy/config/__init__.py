"""The configuration: the YAML file, the environment's overrides, and the frozen ``Settings`` kept on the app.

Each key is declared once, on the dataclass the app reads (``declare.py``): its
type, default, help and environment variable. The check of the file, the
overrides and the reference page (``python -m ollama_proxy.config.reference``)
are derived from those declarations.
"""

from ollama_proxy.config.access import AdminSettings, AuthSettings, RateLimitSettings
from ollama_proxy.config.backends import (
    DEFAULT_SERVER,
    ModelFacts,
    OllamaServerSettings,
    ProviderSettings,
    RetrySettings,
    RoutingSettings,
    SchedulingSettings,
)
from ollama_proxy.config.checks import SECONDS, MiB
from ollama_proxy.config.environment import ENV_OVERRIDES, apply_env
from ollama_proxy.config.errors import ConfigError
from ollama_proxy.config.loading import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    MULTIPROC_ENV,
    config_path,
    load_settings,
    parse_settings,
)
from ollama_proxy.config.models import ModelOverride, ModelsSettings
from ollama_proxy.config.paths import PROJECT_ROOT
from ollama_proxy.config.records import (
    BudgetSettings,
    ChatLogSettings,
    LoggingSettings,
    MetricsSettings,
    StoreSettings,
    UsageSettings,
)
from ollama_proxy.config.service import CorsSettings, ImageSettings, LimitSettings, ServiceSettings
from ollama_proxy.config.settings import Settings
from ollama_proxy.config.tokens import Token

__all__ = [
    "CONFIG_ENV", "DEFAULT_CONFIG", "DEFAULT_SERVER", "ENV_OVERRIDES", "MULTIPROC_ENV", "PROJECT_ROOT", "SECONDS",
    "AdminSettings", "AuthSettings", "BudgetSettings", "ChatLogSettings", "ConfigError", "CorsSettings",
    "ImageSettings",
    "LimitSettings", "LoggingSettings", "MetricsSettings", "MiB", "ModelFacts", "ModelOverride", "ModelsSettings",
    "OllamaServerSettings", "ProviderSettings", "RateLimitSettings", "RetrySettings", "RoutingSettings",
    "SchedulingSettings",
    "ServiceSettings", "Settings", "StoreSettings", "Token", "UsageSettings", "apply_env", "config_path",
    "load_settings", "parse_settings",
]
