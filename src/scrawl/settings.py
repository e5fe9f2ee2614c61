"""Defaults and thresholds that more than one part of Scrawl uses, each in one place.

Plain constants, no imports: the CLI's --help, the web app and the Python API read them from here.
"""

# An answer below this confidence is flagged "uncertain". The bundled models are trained with label
# smoothing 0.05, so a sure answer scores about 0.95; 0.6 leaves room for honest doubt between two classes.
UNCERTAIN_BELOW = 0.6

# Top-k alternatives returned by default, and the most a request may ask for.
TOP_K = 3
MAX_TOP_K = 100

# `scrawl serve` / create_app.
SERVE_HOST = "127.0.0.1"  # this machine only, unless told otherwise
SERVE_PORT = 8000
MAX_BODY_MB = 10.0  # largest request body in MiB: a 12 Mpx phone JPEG is 3-6 MB
MAX_QUEUE = 32  # recognitions that may wait for a CPU; more get 503 + Retry-After
REQUEST_TIMEOUT = 30.0  # seconds a recognition may take, waiting included, before a 503
