# One image for the api and the worker; the command picks the role.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY activities ./activities
COPY api ./api
COPY domain ./domain
COPY iop ./iop
COPY store ./store
COPY workflows ./workflows
RUN pip install . && useradd --system --uid 10001 iop
USER iop
ENV IOP_ENV=production
CMD ["iop", "api"]
