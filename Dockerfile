# finmon application image. One image for every stage; the command picks the stage.
#   docker build -t finmon .                                   # CPU torch (default)
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 -t finmon:gpu .
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

RUN useradd --create-home --uid 10001 finmon
WORKDIR /app

# torch first, from the chosen index, so the package install below does not pull another build.
RUN pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY pipelines ./pipelines
COPY dashboards ./dashboards
COPY benchmarks ./benchmarks
RUN pip install . && python -c "import pipelines.cli"

USER finmon
ENV FINMON_DATA_DIR=/home/finmon/data
ENTRYPOINT ["finmon"]
CMD ["--help"]
