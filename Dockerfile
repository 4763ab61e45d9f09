# CDS Hooks service image.  Build: docker build -t dah-cds .
# Runs with its defaults (tests/test_container.py runs this CMD with this ENV outside Docker): gunicorn
# workers from CDS_WORKERS/CDS_THREADS, JSON log lines with an access line per request, writable state in
# CDS_DATA_DIR owned by the image's user, a HEALTHCHECK on /health (README "Operations").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Install the package (with the PostgreSQL driver) before copying the guidance
# content, so content edits do not invalidate the dependency layer.
COPY pyproject.toml README.md ./
COPY service/ service/
COPY cards/ cards/
RUN pip install ".[postgres]"

COPY plandefinitions/ plandefinitions/

# The SQLite database (when CDS_DATABASE_URL is not set) lives in CDS_DATA_DIR, outside site-packages,
# in a directory the service's user owns; mount a volume there to keep it.
RUN useradd --system --uid 10001 --no-create-home cds \
    && install -d -o cds -g cds -m 0750 /var/lib/dah-cds

# Bound to every interface, so the service refuses to start without trusted CDS clients
# (CDS_TRUSTED_CLIENTS, a JSON file; see README "Trusting EHRs").  `dah-cds serve` runs gunicorn
# with threaded workers and a request read timeout (README "Serving").
ENV CDS_CONTENT_DIR=/app/plandefinitions \
    CDS_DATA_DIR=/var/lib/dah-cds \
    CDS_HOST=0.0.0.0 \
    CDS_PORT=8080 \
    CDS_WORKERS=2 \
    CDS_THREADS=8 \
    CDS_LOG_FORMAT=json
VOLUME ["/var/lib/dah-cds"]
USER cds
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CDS_PORT', '8080') + '/health', timeout=4)"]
CMD ["dah-cds", "serve"]
