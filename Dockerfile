# A reproducible export image: the same package and extras the README installs.
#   docker build -t edgecompress .
#   docker run --rm -v "$PWD:/work" -w /work edgecompress export model.keras --calibration data.npz
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 TF_CPP_MIN_LOG_LEVEL=2

RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-client curl gnupg ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# The Edge TPU compiler exists only for x86-64 Linux: install it there so `check --target coral-edgetpu`
# gets the compiler's own answer; elsewhere the profile's rules answer.
RUN if [ "$(dpkg --print-architecture)" = "amd64" ]; then \
      curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | gpg --dearmor -o /usr/share/keyrings/coral.gpg \
      && echo "deb [signed-by=/usr/share/keyrings/coral.gpg] https://packages.cloud.google.com/apt coral-edgetpu-stable main" \
         > /etc/apt/sources.list.d/coral-edgetpu.list \
      && apt-get update && apt-get install -y --no-install-recommends edgetpu-compiler \
      && rm -rf /var/lib/apt/lists/* ; \
    fi

WORKDIR /opt/edgecompress
COPY pyproject.toml README.md ./
COPY edgecompress ./edgecompress
RUN pip install ".[onnx,micro,vela]"

WORKDIR /work
ENTRYPOINT ["edgecompress"]
CMD ["--help"]
