# The one image every taml-daily component runs in (pipeline.image in config).
#   docker build -t REGION-docker.pkg.dev/PROJECT/taml/taml-pipeline:0.1.0 .
#   docker push REGION-docker.pkg.dev/PROJECT/taml/taml-pipeline:0.1.0
# Built from the same lock file as `make`; torch==2.13.0 from PyPI is the CUDA build on Linux
# x86_64, so the same image trains on a GPU node and runs every other step on CPU.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DO_NOT_TRACK=1

WORKDIR /opt/taml

# Dependencies first, so code changes do not re-install the stack.
COPY requirements.lock ./
RUN pip install -r requirements.lock

COPY pyproject.toml README.md ./
COPY taml ./taml
COPY config ./config
COPY simulator ./simulator
COPY model ./model
COPY components ./components
COPY pipelines ./pipelines
COPY monitoring ./monitoring
COPY serving ./serving
COPY feature_repo ./feature_repo
# Editable: config/ and feature_repo/ are read from /opt/taml at run time.
RUN pip install --no-deps --no-build-isolation -e . && python -c "import taml.cli.main, pipelines.components"

# Components are invoked by the KFP launcher (python -m kfp.dsl.executor_main ...); serving too:
EXPOSE 8080
CMD ["taml", "--help"]
