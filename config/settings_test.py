"""The test overlay: production settings plus what makes tests fast and hermetic."""

import os
import tempfile

os.environ.setdefault(
    "PAYLAB_SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdefghij"
)
os.environ.setdefault("PAYLAB_VAR_DIR", tempfile.mkdtemp(prefix="paylab-test-"))

from config.settings import *  # noqa: F403
from config.settings import STORAGES

# Processors answer at once and never fail on their own, so the card decides
# every outcome; tests of processors turn these on. No cache: each test sees
# the processors and breakers its own transaction wrote.
PAYLAB_PROCESSOR_LATENCY = False
PAYLAB_PROCESSOR_FAULTS = False
PAYLAB_PROCESSOR_CACHE_SECONDS = 0.0

# Tests change keys and merchants' settings directly and expect the next
# request to see it; tests/accounts/test_api_key_cache.py turns the cache on.
PAYLAB_API_KEY_CACHE_SECONDS = 0.0

# Hashing passwords slowly protects nothing in a test database.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
os.makedirs(STATIC_ROOT, exist_ok=True)  # noqa: F405  (whitenoise warns when it is missing)
