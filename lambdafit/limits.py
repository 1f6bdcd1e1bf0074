"""AWS Lambda's documented quotas that the measurements are held against.

From the Lambda developer guide's "Lambda quotas" page and its execution-environment lifecycle
page; written down once so the report, the plots and the verdicts agree.
"""

from __future__ import annotations

MB = 1024 * 1024

ZIP_UPLOAD_BYTES = 50 * MB  # .zip deployment package uploaded directly (console/API)
UNZIPPED_BYTES = 250 * MB  # deployment package + all layers, unzipped
IMAGE_BYTES = 10 * 1024 * MB  # container image, uncompressed
INIT_SECONDS = 10.0  # init phase of an on-demand function
TIMEOUT_SECONDS = 900.0  # one invocation
MEMORY_MB = 10_240  # largest memory setting (vCPUs scale with it, up to 6)
