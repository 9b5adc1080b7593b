# dnd-ledger as a container: `dnd-ledger serve` on port 8000, as an unprivileged user.
# Build: podman build -t dnd-ledger .    (or docker build)
# Run:   see compose.yaml (PostgreSQL, the service, the projection follower).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY src ./src
# Wheels of the project and of every pinned dependency; nothing is compiled in the image.
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/dnd-ledger --create-home ledger
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels dnd-ledger \
    && rm -rf /wheels
USER ledger
WORKDIR /var/lib/dnd-ledger
ENV DND_LEDGER_CONFIG=/etc/dnd-ledger/ledger.toml \
    PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
ENTRYPOINT ["dnd-ledger"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
