# One image for every marketfeed service; compose.yaml picks the service by its command
# (`python -m feed_publisher`, `python -m order_entry`, `python -m portfolio`, `python -m http_api`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin marketfeed

WORKDIR /app

# Dependencies come from pyproject.toml alone, so this layer is rebuilt only when they change,
# not on every source edit. All of them ship CPython 3.11 manylinux wheels (checked for x86_64),
# so slim needs no compiler.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Only the packages (and the README pyproject.toml names): no .dockerignore is needed to keep
# .venv, caches and tests out of the image.
COPY README.md ./
COPY common ./common
COPY feed_publisher ./feed_publisher
COPY order_entry ./order_entry
COPY portfolio ./portfolio
COPY order_flow ./order_flow
COPY http_api ./http_api
COPY marketfeed ./marketfeed
RUN pip install --no-deps . && rm -rf build ./*.egg-info

USER marketfeed

CMD ["marketfeed", "--help"]
