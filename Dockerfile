# One image for the api, the worker, the MLLP listener and the one-shot migration; the command picks the role
# (`iop api`, `iop worker`, `iop hl7 listen`, `iop db upgrade`). Built by docker-compose.yml.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY activities ./activities
COPY api ./api
COPY domain ./domain
COPY ingest ./ingest
COPY iop ./iop
COPY store ./store
COPY workflows ./workflows
RUN pip install . && useradd --system --uid 10001 --no-create-home iop \
    && install -d -o iop -g iop -m 0700 /var/lib/iop-audit
COPY deploy/healthcheck.py ./deploy/healthcheck.py
USER iop
# Production refuses to start without IOP_CODEC_KEYS; the API listens on all interfaces of its
# container (publish it only behind a TLS proxy).
ENV IOP_ENV=production IOP_API_HOST=0.0.0.0 IOP_API_PORT=8000
EXPOSE 8000 2575
CMD ["iop", "api"]
