# CDS Hooks service image.  Build: docker build -t dah-cds .
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
ENV CDS_CONTENT_DIR=/app/plandefinitions

RUN useradd --system --uid 10001 --no-create-home cds
USER cds

# Bound to every interface, so the service refuses to start without trusted CDS clients
# (CDS_TRUSTED_CLIENTS, a JSON file; see README "Trusting EHRs").  `dah-cds serve` runs gunicorn
# with threaded workers and a request read timeout (README "Serving").
ENV CDS_HOST=0.0.0.0 CDS_PORT=8080
EXPOSE 8080
CMD ["dah-cds", "serve"]
