# swift-arcface — common tasks. `make setup` is idempotent and installs only what is missing.
DATA ?= ../shared/data/att_faces
OUTPUT ?= runs/att_faces_arcface
SYSTEM_PACKAGES := libopenblas-dev liblapacke-dev pkg-config libturbojpeg0-dev libpng-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup build test train compare bench bench-avx512 bench-check docs clean

setup:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	else echo "system packages present: $(SYSTEM_PACKAGES)"; fi

build: setup
	swift build -c release

test: setup
	swift test

train: setup
	swift run -c release arcface train --data "$(DATA)" --output "$(OUTPUT)"

compare: setup
	swift run -c release arcface compare --data "$(DATA)"

bench: setup
	swift run -c release bench

bench-avx512: setup
	@grep -q avx512f /proc/cpuinfo || { echo "this CPU has no AVX-512"; exit 1; }
	OPENBLAS_CORETYPE=SkylakeX swift run -c release bench

docs:
	swift package --disable-sandbox generate-documentation --target ArcFace

# A few seconds of measurement: ratios (head / GEMM floor, chunked head, conv / its GEMMs)
# against Benchmarks/thresholds.json.
bench-check: setup
	swift run -c release bench --only head,conv --batch-sizes 128 --classes 10000 \
	  --chunked-batch-size 128 --chunked-classes 20000 --chunk-size 4096 --step-batch-sizes 32 \
	  --repetitions 5 --check Benchmarks/thresholds.json

clean:
	rm -rf .build
