# swift-arcface — common tasks. `make setup` is idempotent and installs only what is missing.
DATA ?= ../shared/data/att_faces
OUTPUT ?= runs/att_faces_arcface
SYSTEM_PACKAGES := libopenblas-dev liblapacke-dev pkg-config libturbojpeg0-dev libpng-dev zlib1g-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup setup-mpi test-mpi test-mpi-cli train-mpi build test train resume compare bench bench-avx512 bench-check docs clean fuzz test-asan test-tsan

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

# The distributed tests (issue 13) under mpirun: Open MPI from Debian, the package trait MPI, a
# build folder of its own (a trait changes every target's flags), the test bundle run directly on
# NP ranks (`swift test` under mpirun would build concurrently). The bundle asserts that the
# launcher gave ARCFACE_MPI_TEST_WORLD_SIZE ranks. The OMPI_ALLOW_* variables let mpirun run as root.
MPI_PACKAGES := libopenmpi-dev openmpi-bin
MPI_BUILD ?= .build/mpi
NP ?= 2
setup-mpi:
	@$(MAKE) --no-print-directory setup SYSTEM_PACKAGES="$(MPI_PACKAGES)"

test-mpi: setup setup-mpi
	swift build --build-tests --traits MPI --scratch-path $(MPI_BUILD)
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ARCFACE_MPI_TEST_WORLD_SIZE=$(NP) \
	  mpirun -np $(NP) --oversubscribe $(MPI_BUILD)/debug/swift-arcfacePackageTests.xctest \
	  --testing-library swift-testing --filter MPICommunicatorTests
	@out=$$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ARCFACE_MPI_TEST_ABORT=1 \
	  mpirun -np $(NP) --oversubscribe $(MPI_BUILD)/debug/swift-arcfacePackageTests.xctest \
	  --testing-library swift-testing --filter MPIAbortTests 2>&1); status=$$?; \
	if [ $$status -ne 0 ] && echo "$$out" | grep -q "rank $$(($(NP) - 1)): MPIAbortTests: the job ends here"; \
	then echo "MPI_Abort: mpirun exited $$status with the rank's message"; \
	else echo "$$out"; echo "MPI_Abort test FAILED (mpirun exited $$status)"; exit 1; fi

# Ctrl-C under mpirun end to end (scripts/test_mpi_interrupt.sh): SIGINT to mpirun after the first
# step; its checkpoint the newest, "stopped after step" once, mpirun non-zero (Open MPI sends the ranks SIGTERM,
# each exits 143; mpirun itself exits 1); then --resume under mpirun finishes the run.
test-mpi-cli: setup setup-mpi
	swift build -c release --traits MPI --scratch-path $(MPI_BUILD) --product arcface
	scripts/test_mpi_interrupt.sh $(MPI_BUILD)/release/arcface "$(DATA)" $(NP)

test: setup
	swift test

# train on NP ranks (issue 13): the MPI build of arcface under mpirun, one OpenBLAS thread per rank
# (ranks × threads ≤ cores), the global batch split over the ranks. Ctrl-C checkpoints once.
train-mpi: setup setup-mpi
	swift build -c release --traits MPI --scratch-path $(MPI_BUILD) --product arcface
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 \
	  mpirun -np $(NP) --oversubscribe -x OPENBLAS_NUM_THREADS $(MPI_BUILD)/release/arcface train \
	  --data "$(DATA)" --output "$(OUTPUT)" --resume-or-overwrite --threads 1

# train: continues an unfinished run in $(OUTPUT) (stopped by Ctrl-C, say) if it has the same
# settings, else starts afresh there, replacing a finished run. resume: continues the run in
# $(OUTPUT) with its stored settings (an error if there is none).
train: setup
	swift run -c release arcface train --data "$(DATA)" --output "$(OUTPUT)" --resume-or-overwrite

resume: setup
	swift run -c release arcface train --resume "$(OUTPUT)" --data "$(DATA)"

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

# libFuzzer harnesses for every reader (Fuzz/Package.swift): FUZZ_RUNS executions each from the
# committed seed corpus Fuzz/corpus/<reader>/ plus the PGM seeds that Fuzz/write-pgm-seeds.sh
# generates (no image of PGM format is tracked; new inputs go to a scratch folder, never into the
# corpus); any crash, hang (> 10 s) or leak fails the target. Add a reader: Fuzz/Package.swift.
FUZZ_RUNS ?= 20000
FUZZ_TARGETS := PGM:pgm Safetensors:safetensors Configuration:configuration NumPy:numpy VerificationBin:verification-bin LFWPairs:lfw-pairs Image:image RecordIO:recordio Landmarks:landmarks
FUZZ_WORK ?= .build/fuzz-work
fuzz: setup
	swift build --package-path Fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld
	@Fuzz/write-pgm-seeds.sh $(FUZZ_WORK)/pgm-seeds
	@for pair in $(FUZZ_TARGETS); do \
	  name=$${pair%%:*}; corpus=$${pair##*:}; mkdir -p $(FUZZ_WORK)/$$corpus; \
	  seeds=$(FUZZ_WORK)/pgm-seeds; [ -d Fuzz/corpus/$$corpus ] && seeds="Fuzz/corpus/$$corpus $$seeds"; \
	  echo "fuzz $$name: $(FUZZ_RUNS) runs from $$seeds"; \
	  if SWIFT_BACKTRACE=enable=no Fuzz/.build/debug/Fuzz$$name -runs=$(FUZZ_RUNS) -max_len=8192 -timeout=10 \
	    -artifact_prefix=$(FUZZ_WORK)/$$corpus- $(FUZZ_WORK)/$$corpus $$seeds > $(FUZZ_WORK)/$$corpus.log 2>&1; \
	  then grep -E "^Done" $(FUZZ_WORK)/$$corpus.log; \
	  else tail -40 $(FUZZ_WORK)/$$corpus.log; echo "fuzz $$name FAILED (reproducer in $(FUZZ_WORK)/$$corpus-*)"; exit 1; fi; \
	done

# The test suite under AddressSanitizer / ThreadSanitizer, each in its own build folder.
# Leaks inside the toolchain's libraries are suppressed (.ci/lsan-suppressions.txt says which).
test-asan: setup
	LSAN_OPTIONS=suppressions=$(CURDIR)/.ci/lsan-suppressions.txt:print_suppressions=0 \
	  swift test --sanitize=address --scratch-path .build/asan

test-tsan: setup
	swift test --sanitize=thread --scratch-path .build/tsan

clean:
	rm -rf .build Fuzz/.build
