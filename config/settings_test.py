"""The test overlay: production settings plus what makes tests fast and hermetic."""

import os
import tempfile

os.environ.setdefault(
    "PAYLAB_SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdefghij"
)
os.environ.setdefault("PAYLAB_VAR_DIR", tempfile.mkdtemp(prefix="paylab-test-"))

from config.settings import *  # noqa: F403
from config.settings import STORAGES

# Hashing passwords slowly protects nothing in a test database.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
os.makedirs(STATIC_ROOT, exist_ok=True)  # noqa: F405  (whitenoise warns when it is missing)
