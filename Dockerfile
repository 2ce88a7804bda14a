FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY ingestion ingestion
COPY mapping mapping
COPY leads leads
COPY delivery delivery
COPY audit audit
COPY crmsync crmsync
COPY sandbox sandbox
RUN pip install --no-cache-dir .
COPY . .
RUN useradd --create-home crmsync && mkdir -p var && chown crmsync var
USER crmsync
EXPOSE 8000
