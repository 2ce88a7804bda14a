FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY crmsync crmsync
COPY ingestion ingestion
COPY mapping mapping
COPY audit audit
RUN pip install --no-cache-dir .
COPY . .
RUN useradd --create-home crmsync && mkdir -p var && chown crmsync var
USER crmsync
EXPOSE 8000
