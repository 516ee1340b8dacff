import Foundation
import Testing
import _TestSupport
import ArcFace

/// Small items of the last review: configuration errors name the key of a non-integer number;
/// `embed` refuses an output path that cannot take a file, in its own words.
@Suite struct ReviewFixesTests {
    func decodeError(_ json: String) -> ConfigurationError? {
        do { _ = try TrainingConfiguration.decode(json: Data(json.utf8), source: "c.json"); return nil } catch { return error }
    }

    @Test("a fractional or out-of-range number for an integer key names the key and the value")
    func nonIntegerNumbers() {
        #expect(decodeError(#"{"epochs": 2.5}"#) == .invalidValue(source: "c.json", key: "epochs", reason: "expected an integer, found 2.5"))
        #expect(decodeError(#"{"backbone": {"embeddingDimension": 1.5}}"#)
                == .invalidValue(source: "c.json", key: "backbone.embeddingDimension", reason: "expected an integer, found 1.5"))
        #expect(decodeError(#"{"stepDecayEpochs": [10, 2.5]}"#)
                == .invalidValue(source: "c.json", key: "stepDecayEpochs", reason: "expected an integer, found 2.5"))
        #expect(decodeError(#"{"backbone": {"stageChannels": [4, 8.5]}}"#)
                == .invalidValue(source: "c.json", key: "backbone.stageChannels", reason: "expected an integer, found 8.5"))
        #expect(decodeError(#"{"seed": -1}"#) == .invalidValue(source: "c.json", key: "seed", reason: "-1 is out of range for an integer ≥ 0"))
        #expect(decodeError(#"{"epochs": 1e30}"#)?.description.contains("'epochs'") == true)
        #expect(decodeError(#"{"validationIdentities": 0.5}"#)
                == .invalidValue(source: "c.json", key: "validationIdentities", reason: "expected an integer, found 0.5"))
        // Integral numbers are integers; strings still give the decoder's typed message with the key.
        #expect(decodeError(#"{"epochs": 30.0, "seed": 7}"#) == nil)
        #expect(decodeError(#"{"epochs": "3"}"#) == .invalidValue(source: "c.json", key: "epochs", reason: "expected Int"))
        // The whole range of the types is accepted (a 64-bit seed, Int.max).
        let wide = try? TrainingConfiguration.decode(json: Data(#"{"seed": 18446744073709551615, "checkpointEverySteps": 9223372036854775807}"#.utf8))
        #expect(wide?.seed == UInt64.max && wide?.checkpointEverySteps == Int.max)
        #expect(decodeError(#"{"epochs": 9223372036854775808}"#)?.description.contains("'epochs'") == true)
        // Non-integer keys accept fractions.
        #expect(decodeError(#"{"scale": 2.5, "backbone": {"dropout": 0.25}}"#) == nil)
    }

    @Test("embed: an existing folder or a missing parent folder as --output is our own error, before any work")
    func embedOutputPath() throws {
        let directory = TemporaryDirectory()
        let model = FaceRecognitionModel(configuration: tinyConfiguration(), classCount: 3)
        let list = ImageList(paths: ["/nonexistent/a.pgm"], labels: [""])  // never read: the output is checked first
        #expect(throws: EmbeddingError.badOutputPath(path: directory.path, reason: "it is a folder; give a file path such as \(directory.path)/embeddings.npy")) {
            try Experiment.exportEmbeddings(list, model: model, output: directory.path, flipSum: false)
        }
        let missing = directory.path + "/no/such/e.npy"
        #expect(throws: EmbeddingError.badOutputPath(path: missing, reason: "the folder \(directory.path)/no/such does not exist")) {
            try Experiment.exportEmbeddings(list, model: model, output: missing, flipSum: false)
        }
        #expect(EmbeddingError.badOutputPath(path: "/x", reason: "it is a folder").description == "cannot write the embeddings to /x: it is a folder")
    }
}
