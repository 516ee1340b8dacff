// libFuzzer's driver entry point (compiler-rt `FuzzerInterface.h`), linked in by
// `-sanitize=fuzzer`. The harnesses call it from their own `main` because SwiftPM gives every
// executable target a renamed `main` of its own, which libFuzzer's built-in `main` cannot replace.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
