// Intentionally empty: SwiftPM needs one source file for the CLibFuzzer header target.
