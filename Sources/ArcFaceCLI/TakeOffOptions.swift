// The command-line side of issue 10's recipe: `--scale auto`, `--margin-gradient`,
// `--on-no-progress`, and the take-off watchdog's lines.
import ArgumentParser
import ArcFace
import Foundation

/// `--scale`: a number, or `auto` for AdaCos's √2·ln(C − 1) with C the run's training classes.
enum ScaleOption: ExpressibleByArgument, Equatable {
    case value(Double)
    case auto

    init?(argument: String) {
        if argument.lowercased() == "auto" { self = .auto; return }
        guard let value = Double(argument) else { return nil }
        self = .value(value)
    }
}

/// `--margin-gradient straight-through|exact`.
struct MarginGradientOption: ExpressibleByArgument {
    let mode: MarginGradient
    init?(argument: String) {
        switch argument.lowercased() {
        case "straight-through", "straightthrough": mode = .straightThrough
        case "exact": mode = .exact
        default: return nil
        }
    }
    static var allValueStrings: [String] { ["straight-through", "exact"] }
}

extension NoProgressPolicy: ExpressibleByArgument {}

extension HyperparameterOptions {
    /// With `--scale auto`, sets `configuration.scale` to √2·ln(C − 1) for the classes the run
    /// learns (the training identities of `data`'s split minus the validation identities) and
    /// prints it. Loads the data set's split once to count them.
    func applyAutomaticScale(to configuration: inout TrainingConfiguration, data: String) throws {
        guard scale == .auto else { return }
        let classCount: Int
        do {
            let trainingIdentities = Experiment.isRecordIOPack(data)
                ? try Experiment.splitPack(recordPath: data, configuration: configuration).train.identityCount
                : try Experiment.split(directory: data, configuration: configuration).train.identities.count
            classCount = trainingIdentities - configuration.validationIdentities
        } catch { throw failure(error) }
        configuration.scale = TakeOffWatchdog.automaticScale(classCount: classCount)
        say(String(format: "scale auto: √2·ln(C − 1) = %.4f for C = %d training classes", configuration.scale, classCount))
    }
}

/// The start-of-training line (initial loss next to ln C) and the scale warning, if any.
func sayStart(_ start: TakeOffStart) {
    say(start.line)
    if let warning = start.scaleWarning { say("warning: " + warning) }
}
