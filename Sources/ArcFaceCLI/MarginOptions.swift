// `arcface train` / `compare` options of the margin's shape beyond its size (`--margin`).
import ArgumentParser
import ArcFace

/// Margin-shape options; each overrides the configuration file.
struct MarginOptions: ParsableArguments {
    @Option(help: "ArcFace past θ + m = π: hard (default, arcface_torch), easy (easy_margin: margin only where cos θ > 0) or none (plain cos(θ + m); non-monotone).")
    var marginFallback: MarginFallback?

    var isEmpty: Bool { marginFallback == nil }

    func apply(to configuration: inout TrainingConfiguration) {
        if let marginFallback { configuration.marginFallback = marginFallback }
    }
}

extension MarginFallback: ExpressibleByArgument {}
